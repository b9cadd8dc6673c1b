"""The chain of record: links verify, and any edit, removal, reorder or foreign key is caught."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from identity_risk.record.chain import GENESIS, Link, Signer, load_public_key, verify
from identity_risk.record.log import DecisionLog, read_links

SIGNER = Signer.generate()


def make_payload(n: int, **extra: Any) -> dict[str, Any]:
    return {"decision": f"payments/checkout-{n}", "score": 40 + n, "band": "high"} | extra


def make_chain(signer: Signer, count: int) -> list[Link]:
    links: list[Link] = []
    for n in range(count):
        links.append(signer.link(previous=links[-1] if links else None, payload=make_payload(n)))
    return links


def test_a_fresh_chain_verifies() -> None:
    signer = Signer.generate()
    links = make_chain(signer, 5)
    result = verify(links, signer.public_key)
    assert result.ok
    assert result.links == 5
    assert links[0].previous_hash == GENESIS
    assert [link.index for link in links] == [0, 1, 2, 3, 4]


def tamper_payload(links: list[Link]) -> list[Link]:
    edited = dataclasses.replace(links[2], payload=make_payload(2, score=1))
    return [*links[:2], edited, *links[3:]]


def remove_one(links: list[Link]) -> list[Link]:
    return [*links[:2], *links[3:]]


def swap_two(links: list[Link]) -> list[Link]:
    return [links[0], links[2], links[1], *links[3:]]


def forge_signature(links: list[Link]) -> list[Link]:
    other = Signer.generate()
    forged = other.link(previous=links[1], payload=links[2].payload)
    forged = dataclasses.replace(forged, key_id=links[2].key_id)
    return [*links[:2], forged, *links[3:]]


@pytest.mark.parametrize(
    ("tamper", "broken_at", "problem"),
    [
        (tamper_payload, 2, "edited"),
        (remove_one, 2, "missing"),
        (swap_two, 1, "missing"),
        (forge_signature, 2, "signature"),
    ],
    ids=["edited-payload", "removed-link", "reordered", "forged-signature"],
)
def test_tampering_is_detected_at_the_right_link(tamper: Any, broken_at: int, problem: str) -> None:
    signer = Signer.generate()
    result = verify(tamper(make_chain(signer, 5)), signer.public_key)
    assert not result.ok
    assert result.broken_at == broken_at
    assert problem in result.problem


def test_a_chain_checked_with_another_key_fails() -> None:
    links = make_chain(Signer.generate(), 2)
    result = verify(links, Signer.generate().public_key)
    assert not result.ok
    assert "not the verifying key" in result.problem


def test_keys_round_trip_through_pem() -> None:
    signer = Signer.generate()
    again = Signer.from_pem(signer.private_pem())
    assert again.key_id == signer.key_id
    links = make_chain(again, 2)
    assert verify(links, load_public_key(signer.public_pem())).ok


@given(st.lists(st.dictionaries(st.text(max_size=8), st.integers() | st.text(max_size=8))))
def test_any_payloads_make_a_verifiable_chain(payloads: list[dict[str, Any]]) -> None:
    links: list[Link] = []
    for payload in payloads:
        links.append(SIGNER.link(previous=links[-1] if links else None, payload=payload))
    assert verify(links, SIGNER.public_key).ok


def test_log_appends_and_reopens(tmp_path: Path) -> None:
    signer = Signer.generate()
    log = DecisionLog(tmp_path / "decisions.jsonl", signer)
    for n in range(3):
        log.append(make_payload(n))
    reopened = DecisionLog(tmp_path / "decisions.jsonl", signer)
    assert len(reopened) == 3
    reopened.append(make_payload(3))
    assert verify(read_links(tmp_path / "decisions.jsonl"), signer.public_key).links == 4


def test_log_append_is_idempotent_per_decision(tmp_path: Path) -> None:
    log = DecisionLog(tmp_path / "decisions.jsonl", Signer.generate())
    first = log.append(make_payload(7))
    again = log.append(make_payload(7))
    assert again == first
    assert len(list(read_links(tmp_path / "decisions.jsonl"))) == 1


def test_torn_last_line_after_a_crash_is_cut_and_the_chain_continues(tmp_path: Path) -> None:
    path = tmp_path / "decisions.jsonl"
    signer = Signer.generate()
    log = DecisionLog(path, signer)
    log.append(make_payload(0))
    log.append(make_payload(1))
    with path.open("ab") as handle:  # a crash in the middle of writing link 2
        handle.write(b'{"index":2,"hash":"ab')
    recovered = DecisionLog(path, signer)
    assert recovered.truncated_bytes == len(b'{"index":2,"hash":"ab')
    assert len(recovered) == 2
    recovered.append(make_payload(2))
    result = verify(read_links(path), signer.public_key)
    assert result.ok
    assert result.links == 3
