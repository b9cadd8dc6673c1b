"""A Decision as a RiskDecision and a chain link: stable names, immutable facts, verifiable."""

from __future__ import annotations

from datetime import timedelta

from test_policy import T0, make_policy, run

from identity_risk.api import v1alpha1 as v1
from identity_risk.record.chain import Signer, verify
from identity_risk.record.decisions import chain_payload, decision_name, manifest, risk_decision


def test_the_same_decision_gets_the_same_name() -> None:
    assert decision_name(run(95)) == decision_name(run(95))


def test_another_time_or_band_gets_another_name() -> None:
    first = decision_name(run(95))
    assert decision_name(run(95, now=T0 + timedelta(seconds=1))) != first
    assert decision_name(run(40)) != first


def test_name_is_a_dns_label_even_for_long_names() -> None:
    name = decision_name(run(95))
    assert len(name) <= 63
    assert name.startswith("checkout-critical-")


def test_risk_decision_carries_score_band_signals_and_planned_actions() -> None:
    obj = risk_decision(run(95), service_account_uid="uid-1")
    body = manifest(obj)
    assert body["apiVersion"] == v1.API_VERSION
    assert body["kind"] == "RiskDecision"
    spec = body["spec"]
    assert spec["identity"] == {
        "namespace": "shop",
        "serviceAccountName": "checkout",
        "uid": "uid-1",
    }
    assert spec["band"] == "critical"
    assert spec["mode"] == "Enforce"
    assert [a["type"] for a in spec["actions"]] == ["RevokeToken", "QuarantinePods"]
    assert spec["signals"][0]["type"] == "TokenReplay"
    assert sum(s["points"] for s in spec["signals"]) == spec["score"]


def test_chain_payload_survives_a_round_trip_through_the_api_representation() -> None:
    obj = risk_decision(run(95))
    reread = v1.RiskDecision.model_validate(manifest(obj))
    assert chain_payload(reread) == chain_payload(obj)


def test_decisions_chain_and_verify() -> None:
    signer = Signer.generate()
    first = signer.link(previous=None, payload=chain_payload(risk_decision(run(40))))
    second = signer.link(previous=first, payload=chain_payload(risk_decision(run(95))))
    assert verify([first, second], signer.public_key).ok


def test_audit_mode_is_recorded_as_audit() -> None:
    decision = run(95, policy=make_policy(mode="Audit"))
    assert manifest(risk_decision(decision))["spec"]["mode"] == "Audit"
