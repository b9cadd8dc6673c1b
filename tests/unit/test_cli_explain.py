"""``kubectl risk explain``: every point of a score is shown with the signal and evidence behind it."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from identity_risk.cli.explain import as_json, render, target
from identity_risk.cli.inputs import InputError

TOKEN_REPLAY: dict[str, Any] = {
    "type": "TokenReplay",
    "points": 60,
    "confidence": "High",
    "summary": "token bound to pod checkout-7d9f used from 203.0.113.66, not the pod's IP",
    "evidence": {
        "credentialId": "JTI=4c1f0d0e-7a55-4a8e-9d2b-1e3f5a6b7c8d",
        "sourceIP": "203.0.113.66",
        "podIP": "10.244.1.17",
    },
    "owaspNhi": "NHI2",
    "nistCsf": "DE.CM-01",
    "observedAt": "2026-01-01T12:00:00Z",
}
HUMAN_USE: dict[str, Any] = {
    "type": "HumanUse",
    "points": 20,
    "confidence": "Medium",
    "summary": "kubectl used by an identity whose baseline is its application client",
    "evidence": {"userAgent": "kubectl/v1.31.0", "baselineUserAgent": "checkout/2.1"},
    "owaspNhi": "NHI10",
    "nistCsf": "DE.CM-03",
}
CREDENTIAL_ACCESS: dict[str, Any] = {
    "type": "CredentialAccess",
    "points": 5,
    "confidence": "Low",
    "summary": "listed secrets in payments for the first time",
    "evidence": {"verb": "list", "resource": "secrets"},
    "owaspNhi": "NHI2",
    "nistCsf": "DE.CM-03",
}


def make_wir(*signals: dict[str, Any], score: float | None = None, **status: Any) -> dict[str, Any]:
    """A WorkloadIdentityRisk as the API server returns it (scorer state included, as stored)."""
    signals = signals or (TOKEN_REPLAY, HUMAN_USE, CREDENTIAL_ACCESS)
    return {
        "apiVersion": "identityrisk.dev/v1alpha1",
        "kind": "WorkloadIdentityRisk",
        "metadata": {"name": "checkout", "namespace": "payments", "uid": "wir-1"},
        "spec": {"serviceAccountName": "checkout"},
        "status": {
            "score": sum(s["points"] for s in signals) if score is None else score,
            "band": "high",
            "confidence": "High",
            "policy": "payments-enforce",
            "owner": "team-payments",
            "enforcement": "Enforced",
            "lastDecision": "payments/checkout-high-1a2b3c4d5e",
            "lastEvaluated": "2026-01-01T12:00:05Z",
            "signals": [copy.deepcopy(s) for s in signals],
            "scorerState": {"ledger": [{"id": "internal-ledger-entry-7"}], "version": 3},
        }
        | status,
    }


def test_header_shows_identity_owner_policy_score_band_enforcement_and_decision() -> None:
    out = render(make_wir())
    for expected in [
        "identity:      payments/checkout",
        "owner:         team-payments",
        "policy:        payments-enforce",
        "score:         85/100",
        "band:          high",
        "confidence:    High",
        "enforcement:   Enforced",
        "last decision: payments/checkout-high-1a2b3c4d5e",
    ]:
        assert expected in out


def test_every_signal_is_listed_with_points_confidence_owasp_and_nist() -> None:
    out = render(make_wir())
    assert "SIGNALS (3)" in out
    assert "60 pts  TokenReplay  confidence High  OWASP NHI2  NIST CSF DE.CM-01" in out
    assert "20 pts  HumanUse  confidence Medium  OWASP NHI10" in out
    assert "5 pts  CredentialAccess  confidence Low  OWASP NHI2  NIST CSF DE.CM-03" in out
    assert TOKEN_REPLAY["summary"] in out


def test_signals_are_listed_largest_first() -> None:
    out = render(make_wir(CREDENTIAL_ACCESS, TOKEN_REPLAY, HUMAN_USE))
    assert out.index("TokenReplay") < out.index("HumanUse") < out.index("CredentialAccess")


def test_evidence_is_shown_as_key_value_pairs() -> None:
    out = render(make_wir())
    assert "sourceIP=203.0.113.66" in out
    assert "podIP=10.244.1.17" in out
    assert "credentialId=JTI=4c1f0d0e-7a55-4a8e-9d2b-1e3f5a6b7c8d" in out
    assert "userAgent=kubectl/v1.31.0" in out


def test_points_are_shown_to_add_up_to_the_score() -> None:
    assert "points: 60 + 20 + 5 = 85 = score 85" in render(make_wir())


def test_a_difference_between_points_and_score_is_explained_not_hidden() -> None:
    out = render(make_wir(TOKEN_REPLAY, score=100))
    assert "points: 60, score 100: the other 40 come from" in out
    assert "confirm-compromised" in out


def test_the_scorers_internal_state_is_never_shown() -> None:
    wir = make_wir()
    assert "internal-ledger-entry-7" not in render(wir)
    body = as_json(wir)
    assert "scorerState" not in body
    assert "internal-ledger-entry-7" not in str(body)


def test_json_carries_identity_signals_and_their_total() -> None:
    body = as_json(make_wir())
    assert body["identity"] == "payments/checkout"
    assert body["score"] == 85
    assert body["pointsTotal"] == 85
    assert [s["type"] for s in body["signals"]] == [
        "TokenReplay",
        "HumanUse",
        "CredentialAccess",
    ]
    assert body["signals"][0]["evidence"]["sourceIP"] == "203.0.113.66"


def test_a_record_not_yet_scored_says_so() -> None:
    wir = make_wir()
    del wir["status"]
    assert render(wir).startswith("payments/checkout: not scored yet")


@pytest.mark.parametrize(
    ("reference", "namespace", "expected"),
    [
        ("checkout", None, ("shop", "checkout")),
        ("checkout", "payments", ("payments", "checkout")),
        ("payments/checkout", None, ("payments", "checkout")),
        ("payments/checkout", "payments", ("payments", "checkout")),
    ],
    ids=["name-context-namespace", "name-with-n", "ns-slash-name", "both-agreeing"],
)
def test_the_target_comes_from_name_namespace_flag_or_context(
    reference: str, namespace: str | None, expected: tuple[str, str]
) -> None:
    assert target(reference, namespace=namespace, default_namespace="shop") == expected


@pytest.mark.parametrize(
    ("reference", "namespace", "message"),
    [
        ("payments/checkout", "shop", "names namespace 'payments' but -n says 'shop'"),
        ("/checkout", None, "expected NAME or NAMESPACE/NAME"),
        ("a/b/c", None, "expected NAME or NAMESPACE/NAME"),
    ],
    ids=["conflicting-namespace", "empty-namespace", "too-many-slashes"],
)
def test_a_confusing_target_is_refused(reference: str, namespace: str | None, message: str) -> None:
    with pytest.raises(InputError, match=message):
        target(reference, namespace=namespace, default_namespace="shop")
