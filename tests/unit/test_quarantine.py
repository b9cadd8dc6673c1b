"""QuarantinePods' pure half: the label value and the NetworkPolicy it creates."""

from __future__ import annotations

import pytest

from identity_risk.api import v1alpha1 as v1
from identity_risk.enforce.quarantine import QUARANTINE_LABEL, label_value, network_policy


def make_risk_decision(*, name: str, uid: str) -> v1.RiskDecision:
    return v1.RiskDecision.model_validate(
        {
            "metadata": {"name": name, "namespace": "shop", "uid": uid},
            "spec": {
                "identity": {"namespace": "shop", "serviceAccountName": "checkout"},
                "policy": "p",
                "mode": "Enforce",
                "score": 80,
                "confidence": "High",
                "band": "high",
                "actions": [{"type": "QuarantinePods"}],
                "decidedAt": "2026-12-04T12:00:00+00:00",
            },
        }
    )


@pytest.mark.parametrize(
    "name",
    ["checkout-high-0123456789", "a" * 63, "b" * 64, "c" * 120],
    ids=lambda n: f"{len(n)}-chars",
)
def test_label_values_are_valid_and_keep_distinct_decisions_apart(name: str) -> None:
    value = label_value(name)
    assert len(value) <= 63
    assert value[-1].isalnum()
    assert value == name or label_value(name + "x") != value


@pytest.mark.parametrize(("allow_dns", "egress"), [(False, []), (True, [53])], ids=["deny", "dns"])
def test_the_policy_denies_all_but_dns_when_asked(allow_dns: bool, egress: list[int]) -> None:
    obj = make_risk_decision(name="checkout-high-0123456789", uid="u-1")
    policy = network_policy(obj, allow_dns=allow_dns)
    spec = policy["spec"]
    assert spec["podSelector"] == {"matchLabels": {QUARANTINE_LABEL: "checkout-high-0123456789"}}
    assert spec["policyTypes"] == ["Ingress", "Egress"]
    assert spec["ingress"] == []
    assert sorted({p["port"] for rule in spec["egress"] for p in rule["ports"]}) == egress
    [owner] = policy["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["name"], owner["uid"]) == (
        "RiskDecision",
        "checkout-high-0123456789",
        "u-1",
    )
