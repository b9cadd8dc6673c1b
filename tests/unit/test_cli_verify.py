"""``kubectl risk verify``: an untouched chain passes; any edit fails naming the link and decision."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from test_policy import MIN, T0, run

from identity_risk.api import v1alpha1 as v1
from identity_risk.cli.kubectl_risk import main
from identity_risk.cli.verify import chain_from_decisions, report
from identity_risk.record.chain import Link, Signer, verify
from identity_risk.record.decisions import chain_payload, manifest, risk_decision
from identity_risk.record.log import DecisionLog

SIGNER = Signer.generate()
LINKS = 4


def make_decisions(count: int = LINKS) -> list[v1.RiskDecision]:
    """RiskDecisions as the executor creates them: one per band crossing, a minute apart."""
    return [risk_decision(run(40 + n, now=T0 + n * MIN)) for n in range(count)]


def make_log(path: Path, decisions: list[v1.RiskDecision], signer: Signer = SIGNER) -> list[Link]:
    log = DecisionLog(path, signer)
    return [log.append(chain_payload(d)) for d in decisions]


def write_public_key(path: Path, signer: Signer = SIGNER) -> Path:
    path.write_bytes(signer.public_pem())
    return path


@pytest.fixture
def log_file(tmp_path: Path) -> Path:
    path = tmp_path / "decisions.jsonl"
    make_log(path, make_decisions())
    return path


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    return write_public_key(tmp_path / "operator.pub")


def verify_cli(log: Path, key: Path) -> list[str]:
    return ["verify", "--log", str(log), "--public-key", str(key)]


def lines_of(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def rewrite(path: Path, entries: list[dict[str, Any]]) -> None:
    path.write_text("".join(json.dumps(e, sort_keys=True) + "\n" for e in entries))


# --- tampering, one way per row -------------------------------------------------------------


def edit_score(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    entries[2]["payload"]["spec"]["score"] = 1
    return entries


def drop_a_signal(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    entries[2]["payload"]["spec"]["signals"] = []
    return entries


def remove_entry(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    del entries[2]
    return entries


def swap_entries(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    entries[1], entries[2] = entries[2], entries[1]
    return entries


Tamper = Callable[[list[dict[str, Any]]], list[dict[str, Any]]]


def test_an_untouched_log_verifies(
    log_file: Path, key_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(verify_cli(log_file, key_file)) == 0
    out = capsys.readouterr().out
    assert out.strip() == f"chain intact: {LINKS} links verified (key {SIGNER.key_id})"


@pytest.mark.parametrize(
    ("tamper", "broken_at", "problem"),
    [
        (edit_score, 2, "the record was edited"),
        (drop_a_signal, 2, "the record was edited"),
        (remove_entry, 2, "a link is missing"),
        (swap_entries, 1, "a link is missing"),
    ],
    ids=["edited-score", "dropped-signal", "removed-entry", "swapped-entries"],
)
def test_a_tampered_log_fails_naming_the_link_and_its_decision(
    log_file: Path,
    key_file: Path,
    capsys: pytest.CaptureFixture[str],
    tamper: Tamper,
    broken_at: int,
    problem: str,
) -> None:
    entries = tamper(lines_of(log_file))
    rewrite(log_file, entries)
    assert main(verify_cli(log_file, key_file)) == 1
    out = capsys.readouterr().out
    decision = entries[broken_at]["payload"]["decision"]
    assert out.startswith(f"chain BROKEN at link {broken_at} ({decision}): ")
    assert problem in out


def test_an_edited_entry_names_the_decision_that_was_edited(
    log_file: Path, key_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    edited = make_decisions()[2]
    rewrite(log_file, edit_score(lines_of(log_file)))
    main(verify_cli(log_file, key_file))
    name = edited.metadata["name"]
    assert f"at link 2 (shop/{name})" in capsys.readouterr().out


def test_a_log_signed_with_another_key_fails_at_its_first_link(
    log_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    other = write_public_key(tmp_path / "other.pub", Signer.generate())
    assert main(verify_cli(log_file, other)) == 1
    assert "chain BROKEN at link 0 (shop/checkout-" in capsys.readouterr().out


def test_a_line_that_is_not_a_link_breaks_the_chain_there(
    log_file: Path, key_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = log_file.read_text().splitlines(keepends=True)
    lines[1] = "{not json\n"
    log_file.write_text("".join(lines))
    assert main(verify_cli(log_file, key_file)) == 1
    out = capsys.readouterr().out
    assert out.startswith("chain BROKEN at link 1 (unreadable entry): line 2 of ")


def test_a_torn_last_line_is_reported_but_does_not_count(
    log_file: Path, key_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with log_file.open("a") as handle:
        handle.write('{"index": 4, "prev')
    assert main(verify_cli(log_file, key_file)) == 0
    out = capsys.readouterr().out
    assert f"chain intact: {LINKS} links verified" in out
    assert "last line is incomplete" in out


def test_a_missing_log_is_a_clear_error(
    tmp_path: Path, key_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nope.jsonl"
    assert main(verify_cli(missing, key_file)) == 1
    err = capsys.readouterr().err
    assert err.strip() == f"kubectl risk verify: error: {missing}: no such file (--log)"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "no such file (--public-key)"),
        (b"hello", "not an Ed25519 public key in PEM"),
    ],
    ids=["missing", "not-pem"],
)
def test_a_bad_public_key_file_is_a_clear_error(
    log_file: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    content: bytes | None,
    message: str,
) -> None:
    key = tmp_path / "key.pem"
    if content is not None:
        key.write_bytes(content)
    assert main(verify_cli(log_file, key)) == 1
    assert message in capsys.readouterr().err


def test_the_signing_key_itself_is_accepted_as_the_verifying_key(
    log_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    private = tmp_path / "signing.pem"
    private.write_bytes(SIGNER.private_pem())
    assert main(verify_cli(log_file, private)) == 0
    assert "chain intact" in capsys.readouterr().out


# --- the cluster path's rebuild, from RiskDecision objects ----------------------------------


def as_stored(decision: v1.RiskDecision, link: Link | None) -> dict[str, Any]:
    """A RiskDecision as the API server returns it after the executor chained it."""
    body = manifest(decision)
    if link is not None:
        body["status"] = {
            "phase": "Executing",
            "chain": {
                "index": link.index,
                "hash": link.hash,
                "previousHash": link.previous_hash,
                "signature": link.signature,
                "keyId": link.key_id,
            },
        }
    return body


def stored_decisions(tmp_path: Path) -> list[dict[str, Any]]:
    decisions = make_decisions()
    links = make_log(tmp_path / "log.jsonl", decisions)
    # The API server lists by namespace and name, not in chain order.
    return sorted(
        (as_stored(d, link) for d, link in zip(decisions, links, strict=True)),
        key=lambda body: body["metadata"]["name"],
    )


def test_decisions_listed_in_any_order_rebuild_a_chain_that_verifies(tmp_path: Path) -> None:
    chain = chain_from_decisions(stored_decisions(tmp_path))
    result = verify(chain.links, SIGNER.public_key)
    assert result.ok
    assert result.links == LINKS


def test_a_decision_not_yet_chained_is_skipped_and_listed(tmp_path: Path) -> None:
    pending = risk_decision(run(90, now=T0 + 10 * MIN))
    chain = chain_from_decisions([*stored_decisions(tmp_path), as_stored(pending, None)])
    code, text = report(chain, verify(chain.links, SIGNER.public_key), key=SIGNER.key_id)
    assert code == 0
    assert f"chain intact: {LINKS} links verified" in text
    assert f"1 decision(s) not yet chained, skipped: shop/{pending.metadata['name']}" in text


def test_an_edited_risk_decision_fails_naming_it(tmp_path: Path) -> None:
    objects = stored_decisions(tmp_path)
    edited = next(o for o in objects if o["status"]["chain"]["index"] == 1)
    edited["spec"]["band"] = "low"
    chain = chain_from_decisions(objects)
    code, text = report(chain, verify(chain.links, SIGNER.public_key), key=SIGNER.key_id)
    assert code == 1
    assert text.startswith(f"chain BROKEN at link 1 (shop/{edited['metadata']['name']}): ")
    assert "the record was edited" in text
