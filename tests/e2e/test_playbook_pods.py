"""The playbook's pod- and credential-level actions, end to end: QuarantinePods, RotateSecrets,
RecreateServiceAccount.

Each test plays a stolen-token replay in a namespace whose mode label selects a policy ordering
the action (``harness.POLICIES``), then asserts on what the API server holds afterwards. The test
control plane has no network plugin: quarantine is checked by its objects (the NetworkPolicy and
the labels), not by dropped packets.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from harness import Operated

from identity_risk.api import v1alpha1 as v1
from identity_risk.enforce.actions import ActionContext, Blocks
from identity_risk.enforce.playbook import RELEASERS
from identity_risk.enforce.quarantine import QUARANTINE_LABEL
from identity_risk.kube import Kube, load_api_client
from identity_risk.testing.scenario import (
    ATTACKER_IP,
    deploy_workload,
    pod_token,
    read_configmaps,
    running_pod,
    wait_for,
)

pytestmark = pytest.mark.integration


def replayed(operated: Operated, mode: str, *, name: str = "checkout") -> dict[str, Any]:
    """A workload whose pod token is used normally, then replayed from the attacker."""
    api = operated.api
    namespace = operated.namespace(mode)
    deploy_workload(api, namespace=namespace, name=name, labels=operated.labels(mode))
    pod = running_pod(api, namespace=namespace, app=name)
    token = pod_token(api, pod)
    pod_ip = pod["status"]["podIP"]
    for _ in range(3):
        assert read_configmaps(api, namespace=namespace, token=token, source_ip=pod_ip) == 200
    return {"namespace": namespace, "pod": pod, "token": token, "pod_ip": pod_ip, "name": name}


def replay(operated: Operated, world: dict[str, Any]) -> dict[str, Any]:
    """Replay the token from the attacker's address; the finished RiskDecision."""
    read_configmaps(
        operated.api, namespace=world["namespace"], token=world["token"], source_ip=ATTACKER_IP
    )

    def finished() -> dict[str, Any] | None:
        items = (operated.custom("riskdecisions", world["namespace"]) or {}).get("items", [])
        done = [d for d in items if (d.get("status") or {}).get("phase") in ("Enforced", "Failed")]
        return done[0] if done else None

    decision: dict[str, Any] = wait_for("a finished RiskDecision", finished, timeout=30)
    return decision


def outcome(decision: dict[str, Any], action: str) -> dict[str, Any]:
    found: dict[str, Any] = {a["type"]: a for a in decision["status"]["actions"]}[action]
    return found


def admin_context(operated: Operated) -> ActionContext:
    kube = Kube(load_api_client(kubeconfig=str(operated.state.kubeconfig)))
    return ActionContext(
        kube=kube, blocks=Blocks(), clock=lambda: datetime.now(UTC), policies=lambda _: None
    )


# --- QuarantinePods ------------------------------------------------------------------------------


def test_quarantine_labels_the_pods_and_isolates_them_with_an_owned_network_policy(
    operated: Operated,
) -> None:
    api = operated.api
    world = replayed(operated, "quarantine")
    namespace, pod_name = world["namespace"], world["pod"]["metadata"]["name"]
    decision = replay(operated, world)
    assert outcome(decision, "QuarantinePods")["phase"] == "Succeeded"

    name = decision["metadata"]["name"]
    policies = api.get(f"/apis/networking.k8s.io/v1/namespaces/{namespace}/networkpolicies")
    assert policies is not None
    [policy] = policies["items"]
    assert policy["spec"]["podSelector"] == {"matchLabels": {QUARANTINE_LABEL: name}}
    assert sorted(policy["spec"]["policyTypes"]) == ["Egress", "Ingress"]
    assert not policy["spec"].get("ingress")
    # allowDNS: the only egress is port 53, UDP and TCP, to anywhere
    [egress] = policy["spec"]["egress"]
    assert "to" not in egress
    assert sorted((p["protocol"], p["port"]) for p in egress["ports"]) == [
        ("TCP", 53),
        ("UDP", 53),
    ]
    [owner] = policy["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["name"], owner["uid"]) == (
        "RiskDecision",
        name,
        decision["metadata"]["uid"],
    )
    # The pod is labelled and still there (kept for forensics), not evicted.
    pod = api.get(f"/api/v1/namespaces/{namespace}/pods/{pod_name}")
    assert pod is not None
    assert pod["metadata"]["labels"][QUARANTINE_LABEL] == name
    assert not pod["metadata"].get("deletionTimestamp")
    assert pod["metadata"]["uid"] == world["pod"]["metadata"]["uid"]


def test_releasing_a_quarantine_restores_the_pods_and_removes_the_policy(
    operated: Operated,
) -> None:
    api = operated.api
    world = replayed(operated, "quarantine")
    namespace, pod_name = world["namespace"], world["pod"]["metadata"]["name"]
    before = world["pod"]["metadata"]["labels"]
    decision = replay(operated, world)

    obj = v1.RiskDecision.model_validate(decision)
    assert obj.status is not None
    recorded = next(a for a in obj.status.actions if a.type.value == "QuarantinePods")
    released = RELEASERS[recorded.type](admin_context(operated), recorded, obj)
    assert released.phase is v1.ActionPhase.RELEASED

    pod = api.get(f"/api/v1/namespaces/{namespace}/pods/{pod_name}")
    assert pod is not None
    assert pod["metadata"]["labels"] == before
    policies = api.get(f"/apis/networking.k8s.io/v1/namespaces/{namespace}/networkpolicies")
    assert policies is not None
    assert policies["items"] == []
    # Releasing twice is harmless (a crash during release is replayed).
    again = RELEASERS[recorded.type](admin_context(operated), recorded, obj)
    assert again.phase is v1.ActionPhase.RELEASED
