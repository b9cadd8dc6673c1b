"""``kubectl risk release`` on the real control plane: a denied identity works again, and the
release is a verified link of the chain."""

from __future__ import annotations

import time
from typing import Any

import pytest
from harness import MODE_LABEL, Operated

from identity_risk.cli.kubectl_risk import main as kubectl_risk
from identity_risk.record.decisions import RELEASE_SUFFIX
from identity_risk.testing.scenario import (
    ATTACKER_IP,
    deploy_workload,
    pod_token,
    read_configmaps,
    running_pod,
    wait_for,
)

pytestmark = pytest.mark.integration

LABEL = "release"
QUARANTINE = "release-q"


@pytest.fixture(scope="module")
def releasing(operated: Operated) -> Operated:
    operated.api.create(
        "/apis/identityrisk.dev/v1alpha1/identityriskpolicies",
        {
            "apiVersion": "identityrisk.dev/v1alpha1",
            "kind": "IdentityRiskPolicy",
            "metadata": {"name": "e2e-release"},
            "spec": {
                "mode": "Enforce",
                "selector": {"namespaceSelector": {"matchLabels": {MODE_LABEL: LABEL}}},
                "safeguards": {
                    "maxActionsPerMinute": 1000,
                    "circuitBreaker": {"maxIdentities": 100},
                },
                "bands": [
                    {"name": "low", "minScore": 20, "actions": [{"type": "Notify"}]},
                    {
                        "name": "high",
                        "minScore": 60,
                        "minConfidence": "High",
                        "actions": [{"type": "DenyAPIAccess"}, {"type": "RevokeToken"}],
                    },
                ],
            },
        },
    )
    operated.api.create(
        "/apis/identityrisk.dev/v1alpha1/identityriskpolicies",
        {
            "apiVersion": "identityrisk.dev/v1alpha1",
            "kind": "IdentityRiskPolicy",
            "metadata": {"name": "e2e-release-quarantine"},
            "spec": {
                "mode": "Enforce",
                "selector": {"namespaceSelector": {"matchLabels": {MODE_LABEL: QUARANTINE}}},
                "safeguards": {
                    "maxActionsPerMinute": 1000,
                    "circuitBreaker": {"maxIdentities": 100},
                },
                "bands": [
                    {"name": "low", "minScore": 20, "actions": [{"type": "Notify"}]},
                    {
                        "name": "high",
                        "minScore": 60,
                        "minConfidence": "High",
                        "actions": [{"type": "QuarantinePods"}, {"type": "DenyAPIAccess"}],
                    },
                ],
            },
        },
    )
    time.sleep(1.5)
    return operated


def enforced(operated: Operated, namespace: str) -> dict[str, Any]:
    def found() -> dict[str, Any] | None:
        items = (operated.custom("riskdecisions", namespace) or {}).get("items", [])
        done = [d for d in items if (d.get("status") or {}).get("phase") == "Enforced"]
        return done[0] if done else None

    result: dict[str, Any] = wait_for("an Enforced RiskDecision", found, timeout=30)
    return result


def test_release_lets_the_identity_work_again_and_is_chained(
    releasing: Operated, capsys: pytest.CaptureFixture[str]
) -> None:
    api = releasing.api
    namespace = releasing.namespace(LABEL)
    deploy_workload(api, namespace=namespace, name="checkout", labels={MODE_LABEL: LABEL})
    pod = running_pod(api, namespace=namespace, app="checkout")
    token = pod_token(api, pod)
    pod_ip = pod["status"]["podIP"]
    for _ in range(3):
        assert read_configmaps(api, namespace=namespace, token=token, source_ip=pod_ip) == 200
    assert read_configmaps(api, namespace=namespace, token=token, source_ip=ATTACKER_IP) == 200
    decision = enforced(releasing, namespace)
    name = decision["metadata"]["name"]

    # Denied: even the replacement pod's fresh token gets 403.
    fresh = running_pod(api, namespace=namespace, app="checkout", exclude=pod["metadata"]["name"])
    fresh_token, fresh_ip = pod_token(api, fresh), fresh["status"]["podIP"]

    def status() -> int:
        return read_configmaps(api, namespace=namespace, token=fresh_token, source_ip=fresh_ip)

    wait_for("the identity to be denied", lambda: status() == 403, timeout=15)

    kubeconfig = f"--kubeconfig={releasing.state.kubeconfig}"
    code = kubectl_risk(["release", "serviceaccount/checkout", "-n", namespace, kubeconfig])
    out = capsys.readouterr().out
    assert code == 0, out
    assert f"riskdecision {namespace}/{name}: released" in out
    assert "DenyAPIAccess: authorization webhook no longer denies" in out

    wait_for("the identity to work again", lambda: status() == 200, timeout=15)
    wait_for(
        "the identity's enforcement to read Released",
        lambda: ((releasing.custom("workloadidentityrisks", namespace, "checkout") or {})
                 .get("status") or {}).get("enforcement") == "Released",
        timeout=15,
    )  # fmt: skip
    released = releasing.custom("riskdecisions", namespace, name)
    assert released["status"]["phase"] == "Released"
    phases = {a["type"]: a["phase"] for a in released["status"]["actions"]}
    assert phases == {"DenyAPIAccess": "Released", "RevokeToken": "Released"}
    release = released["status"]["release"]
    assert release["by"]  # who asked, as the API server authenticated them
    assert release["chain"]["index"] > released["status"]["chain"]["index"]
    events = api.get(
        f"/api/v1/namespaces/{namespace}/events?fieldSelector=reason%3DRiskDecisionReleased"
    )
    assert (events or {}).get("items")

    # The release is a link of the chain, in the log and as rebuilt from the cluster.
    log = releasing.operator.decision_log
    assert f'"decision":"{namespace}/{name}{RELEASE_SUFFIX}"' in log.read_text()
    assert kubectl_risk(["verify", kubeconfig]) == 0
    assert "chain intact" in capsys.readouterr().out
    assert kubectl_risk(["verify", "--log", str(log), kubeconfig]) == 0
    assert "chain intact" in capsys.readouterr().out

    # Asking again is harmless: nothing left to release.
    again = kubectl_risk(["release", "serviceaccount/checkout", "-n", namespace, kubeconfig])
    assert again == 0
    assert "nothing to release" in capsys.readouterr().out


def test_release_of_an_unknown_decision_says_what_to_do(
    releasing: Operated, capsys: pytest.CaptureFixture[str]
) -> None:
    kubeconfig = f"--kubeconfig={releasing.state.kubeconfig}"
    code = kubectl_risk(["release", "checkout", "-n", "default", kubeconfig])
    assert code == 1
    err = capsys.readouterr().err
    assert "RiskDecision default/checkout not found" in err
    assert "serviceaccount/checkout" in err


def test_release_restores_exactly_the_prior_state(
    releasing: Operated, capsys: pytest.CaptureFixture[str]
) -> None:
    """Quarantined and denied, then released: pods and NetworkPolicies are as they were."""
    api = releasing.api
    namespace = releasing.namespace(QUARANTINE)
    deploy_workload(api, namespace=namespace, name="checkout", labels={MODE_LABEL: QUARANTINE})
    pod = running_pod(api, namespace=namespace, app="checkout")
    pod_path = f"/api/v1/namespaces/{namespace}/pods/{pod['metadata']['name']}"
    policies_path = f"/apis/networking.k8s.io/v1/namespaces/{namespace}/networkpolicies"

    def state() -> dict[str, Any]:
        current = api.get(pod_path) or {}
        policies = (api.get(policies_path) or {}).get("items", [])
        return {
            "labels": current["metadata"].get("labels", {}),
            "annotations": current["metadata"].get("annotations", {}),
            "policies": sorted(p["metadata"]["name"] for p in policies),
        }

    before = state()
    token, pod_ip = pod_token(api, pod), pod["status"]["podIP"]
    for _ in range(3):
        assert read_configmaps(api, namespace=namespace, token=token, source_ip=pod_ip) == 200
    read_configmaps(api, namespace=namespace, token=token, source_ip=ATTACKER_IP)
    decision = enforced(releasing, namespace)
    during = state()
    assert any(k.startswith("identityrisk.dev/quarantined") for k in during["labels"])
    assert during["policies"]
    assert read_configmaps(api, namespace=namespace, token=token, source_ip=pod_ip) == 403

    kubeconfig = f"--kubeconfig={releasing.state.kubeconfig}"
    code = kubectl_risk(["release", decision["metadata"]["name"], "-n", namespace, kubeconfig])
    assert code == 0, capsys.readouterr().out
    assert state() == before
    wait_for(
        "the identity to work again",
        lambda: read_configmaps(api, namespace=namespace, token=token, source_ip=pod_ip) == 200,
        timeout=15,
    )
