"""Safeguards on the real control plane: break-glass identities are decided but never acted on."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest
from harness import MODE_LABEL, Operated

from identity_risk.policy.coverage import BREAK_GLASS_ANNOTATION
from identity_risk.testing.scenario import (
    ATTACKER_IP,
    deploy_workload,
    pod_token,
    read_configmaps,
    running_pod,
    wait_for,
)

pytestmark = pytest.mark.integration

MERGE = "application/merge-patch+json"


def annotate(operated: Operated, path: str, annotations: dict[str, str]) -> None:
    status, obj = operated.api.call(
        "PATCH", path, {"metadata": {"annotations": annotations}}, content_type=MERGE
    )
    assert status == 200, obj.get("message", obj)


@pytest.mark.parametrize("where", ["serviceaccount", "namespace"])
def test_a_break_glass_identity_is_never_acted_on(operated: Operated, where: str) -> None:
    api = operated.api
    namespace = operated.namespace("enforce")
    deploy_workload(api, namespace=namespace, name="checkout", labels=operated.labels("enforce"))
    path = (
        f"/api/v1/namespaces/{namespace}/serviceaccounts/checkout"
        if where == "serviceaccount"
        else f"/api/v1/namespaces/{namespace}"
    )
    annotate(operated, path, {BREAK_GLASS_ANNOTATION: "true"})
    pod = running_pod(api, namespace=namespace, app="checkout")
    token = pod_token(api, pod)
    pod_ip = pod["status"]["podIP"]
    time.sleep(1.5)  # the operator's watch sees the annotation
    for _ in range(3):
        assert read_configmaps(api, namespace=namespace, token=token, source_ip=pod_ip) == 200
    assert read_configmaps(api, namespace=namespace, token=token, source_ip=ATTACKER_IP) == 200

    def decided() -> dict[str, Any] | None:
        items = (operated.custom("riskdecisions", namespace) or {}).get("items", [])
        done = [d for d in items if (d.get("status") or {}).get("phase") == "Audited"]
        return done[0] if done else None

    decision: dict[str, Any] = wait_for("the decision to be recorded", decided, timeout=30)
    assert decision["spec"]["band"] == "high"
    assert decision["spec"]["disposition"] == "Protected"
    assert any("break-glass" in r for r in decision["spec"]["reasons"])
    outcomes = {a["type"]: a["phase"] for a in decision["status"]["actions"]}
    assert outcomes["RevokeToken"] == "Skipped"
    # nothing was done: the token still works from anywhere and the pod was not evicted
    time.sleep(1)
    assert read_configmaps(api, namespace=namespace, token=token, source_ip=ATTACKER_IP) == 200
    again = running_pod(api, namespace=namespace, app="checkout")
    assert again["metadata"]["name"] == pod["metadata"]["name"]


STORM = "storm"


def storm_policy() -> dict[str, Any]:
    return {
        "apiVersion": "identityrisk.dev/v1alpha1",
        "kind": "IdentityRiskPolicy",
        "metadata": {"name": "e2e-storm"},
        "spec": {
            "mode": "Enforce",
            "selector": {"namespaceSelector": {"matchLabels": {MODE_LABEL: STORM}}},
            "safeguards": {
                "maxActionsPerMinute": 1000,
                "circuitBreaker": {"maxIdentities": 2, "window": "10m"},
            },
            "bands": [
                {"name": "low", "minScore": 20, "actions": [{"type": "Notify"}]},
                {
                    "name": "high",
                    "minScore": 60,
                    "minConfidence": "High",
                    "actions": [{"type": "RevokeToken"}],
                },
            ],
        },
    }


def test_a_storm_of_crossings_trips_the_circuit_breaker(operated: Operated) -> None:
    api = operated.api
    api.create("/apis/identityrisk.dev/v1alpha1/identityriskpolicies", storm_policy())
    time.sleep(1.5)
    namespace = operated.namespace(STORM)
    workloads = [f"w{i}" for i in range(4)]
    tokens = {}
    for name in workloads:
        deploy_workload(api, namespace=namespace, name=name, labels={MODE_LABEL: STORM})
    for name in workloads:
        pod = running_pod(api, namespace=namespace, app=name)
        tokens[name] = (pod_token(api, pod), pod["status"]["podIP"])
        for _ in range(3):
            assert read_configmaps(api, namespace=namespace, token=tokens[name][0],
                                   source_ip=tokens[name][1]) == 200  # fmt: skip
    for name in workloads:
        read_configmaps(api, namespace=namespace, token=tokens[name][0], source_ip=ATTACKER_IP)

    def all_decided() -> list[dict[str, Any]] | None:
        items = (operated.custom("riskdecisions", namespace) or {}).get("items", [])
        done = [d for d in items if (d.get("status") or {}).get("phase") in ("Enforced", "Audited")]
        return done if len(done) == len(workloads) else None

    decisions: list[dict[str, Any]] = wait_for("every identity decided", all_decided, timeout=40)
    dispositions = [d["spec"]["disposition"] for d in decisions]
    # No action beyond the limit: at most maxIdentities identities were acted on.
    assert dispositions.count("Act") <= 2
    held = [d for d in decisions if d["spec"]["disposition"] == "CircuitOpen"]
    assert held
    for d in held:
        outcomes = {a["type"]: a for a in d["status"]["actions"]}
        assert outcomes["RevokeToken"]["phase"] == "Skipped"
        assert "circuit breaker open" in outcomes["RevokeToken"]["message"]
        assert any("circuit breaker open" in r for r in d["spec"]["reasons"])

    def event() -> bool:
        events = api.get(
            "/api/v1/namespaces/default/events?fieldSelector=reason%3DCircuitBreakerOpen"
        )
        return any("e2e-storm" in e["message"] for e in (events or {}).get("items", []))

    wait_for("a CircuitBreakerOpen Event", event, timeout=15)
    metrics = metrics_text(operated)
    assert "circuit_breaker_open 1.0" in metrics
    assert "enforcement_paused 1.0" in metrics


def metrics_text(operated: Operated) -> str:
    import ssl
    import urllib.request

    ctx = ssl.create_default_context(cafile=str(operated.pki.ca.cert))
    url = f"https://127.0.0.1:{operated.operator.port}/metrics"
    with urllib.request.urlopen(url, context=ctx, timeout=5) as response:
        return str(response.read().decode())


def test_a_pdb_that_allows_no_disruption_blocks_eviction_and_the_decision_says_why(
    operated: Operated,
) -> None:
    api = operated.api
    namespace = operated.namespace("enforce")
    deploy_workload(api, namespace=namespace, name="checkout", labels=operated.labels("enforce"))
    api.create(
        f"/apis/policy/v1/namespaces/{namespace}/poddisruptionbudgets",
        {
            "apiVersion": "policy/v1",
            "kind": "PodDisruptionBudget",
            "metadata": {"name": "checkout", "namespace": namespace},
            "spec": {"maxUnavailable": 0, "selector": {"matchLabels": {"app": "checkout"}}},
        },
    )
    pod = running_pod(api, namespace=namespace, app="checkout")
    token, pod_ip = pod_token(api, pod), pod["status"]["podIP"]
    for _ in range(3):
        assert read_configmaps(api, namespace=namespace, token=token, source_ip=pod_ip) == 200
    read_configmaps(api, namespace=namespace, token=token, source_ip=ATTACKER_IP)

    def decided() -> dict[str, Any] | None:
        items = (operated.custom("riskdecisions", namespace) or {}).get("items", [])
        done = [d for d in items if (d.get("status") or {}).get("phase") == "Enforced"]
        return done[0] if done else None

    decision: dict[str, Any] = wait_for("the decision to be carried out", decided, timeout=30)
    revoke = {a["type"]: a for a in decision["status"]["actions"]}["RevokeToken"]
    assert "blocked by a PodDisruptionBudget" in revoke["message"]
    # The pod is still there (never deleted), and the leaked token is denied all the same.
    again = running_pod(api, namespace=namespace, app="checkout")
    assert again["metadata"]["name"] == pod["metadata"]["name"]
    assert read_configmaps(api, namespace=namespace, token=token, source_ip=ATTACKER_IP) == 403

    # Once the budget allows, the operator evicts it after all (retried on its tick).
    status, _ = api.call(
        "DELETE", f"/apis/policy/v1/namespaces/{namespace}/poddisruptionbudgets/checkout"
    )
    assert status == 200
    name = decision["metadata"]["name"]

    def retried() -> bool:
        current = operated.custom("riskdecisions", namespace, name) or {}
        revoke = {a["type"]: a for a in current["status"]["actions"]}["RevokeToken"]
        return any("evicted (retried at" in line for line in revoke.get("changed", []))

    wait_for("the blocked eviction to be retried", retried, timeout=30)
    running_pod(api, namespace=namespace, app="checkout", exclude=pod["metadata"]["name"])


@pytest.mark.parametrize(
    ("expires_in", "acted"), [(3600, False), (-60, True)], ids=["active", "expired"]
)
def test_a_risk_exception_is_honoured_until_it_expires(
    operated: Operated, expires_in: int, acted: bool
) -> None:
    from datetime import UTC, datetime, timedelta

    api = operated.api
    namespace = operated.namespace("enforce")
    deploy_workload(api, namespace=namespace, name="checkout", labels=operated.labels("enforce"))
    expires = datetime.now(UTC) + timedelta(seconds=expires_in)
    api.create(
        f"/apis/identityrisk.dev/v1alpha1/namespaces/{namespace}/riskexceptions",
        {
            "apiVersion": "identityrisk.dev/v1alpha1",
            "kind": "RiskException",
            "metadata": {"name": "migration", "namespace": namespace},
            "spec": {
                "serviceAccountName": "checkout",
                "expires": expires.isoformat(),
                "owner": "team-checkout",
                "reason": "e2e: token migration",
            },
        },
    )
    pod = running_pod(api, namespace=namespace, app="checkout")
    token, pod_ip = pod_token(api, pod), pod["status"]["podIP"]
    time.sleep(1.5)  # the operator's watch sees the exception
    for _ in range(3):
        assert read_configmaps(api, namespace=namespace, token=token, source_ip=pod_ip) == 200
    read_configmaps(api, namespace=namespace, token=token, source_ip=ATTACKER_IP)

    def decided() -> dict[str, Any] | None:
        items = (operated.custom("riskdecisions", namespace) or {}).get("items", [])
        done = [d for d in items if (d.get("status") or {}).get("phase") in ("Enforced", "Audited")]
        return done[0] if done else None

    decision: dict[str, Any] = wait_for("the decision", decided, timeout=30)
    assert decision["spec"]["disposition"] == ("Act" if acted else "Exempt")
    time.sleep(1)
    code = read_configmaps(api, namespace=namespace, token=token, source_ip=ATTACKER_IP)
    assert code == (403 if acted else 200)


def test_a_protected_namespace_is_never_acted_on(operated: Operated) -> None:
    api = operated.api
    namespace = f"e2e-protected-{uuid.uuid4().hex[:6]}"
    api.create(
        "/apis/identityrisk.dev/v1alpha1/identityriskpolicies",
        {
            "apiVersion": "identityrisk.dev/v1alpha1",
            "kind": "IdentityRiskPolicy",
            "metadata": {"name": f"e2e-protect-{namespace[-6:]}"},
            "spec": {
                "mode": "Enforce",
                "selector": {"namespaceSelector": {"matchLabels": {MODE_LABEL: namespace}}},
                "safeguards": {"protectedNamespaces": [namespace]},
                "bands": [
                    {"name": "low", "minScore": 20, "actions": [{"type": "Notify"}]},
                    {"name": "high", "minScore": 60, "minConfidence": "High",
                     "actions": [{"type": "RevokeToken"}, {"type": "DenyAPIAccess"}]},
                ],
            },
        },
    )  # fmt: skip
    time.sleep(1.5)
    deploy_workload(api, namespace=namespace, name="checkout", labels={MODE_LABEL: namespace})
    pod = running_pod(api, namespace=namespace, app="checkout")
    token, pod_ip = pod_token(api, pod), pod["status"]["podIP"]
    for _ in range(3):
        assert read_configmaps(api, namespace=namespace, token=token, source_ip=pod_ip) == 200
    read_configmaps(api, namespace=namespace, token=token, source_ip=ATTACKER_IP)

    def decided() -> dict[str, Any] | None:
        items = (operated.custom("riskdecisions", namespace) or {}).get("items", [])
        return next((d for d in items if (d.get("status") or {}).get("phase") == "Audited"), None)

    decision: dict[str, Any] = wait_for("the decision", decided, timeout=30)
    assert decision["spec"]["disposition"] == "Protected"
    assert any(f"namespace {namespace} is protected" in r for r in decision["spec"]["reasons"])
    time.sleep(1)
    assert read_configmaps(api, namespace=namespace, token=token, source_ip=ATTACKER_IP) == 200
    assert (
        running_pod(api, namespace=namespace, app="checkout")["metadata"]["name"]
        == (pod["metadata"]["name"])
    )
