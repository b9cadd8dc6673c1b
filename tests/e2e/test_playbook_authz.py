"""RestrictScope and ShortenTokenTTL on the real control plane.

The trigger is a stolen-token replay (TokenReplay, band ``high``); the namespace's mode label picks
the policy that orders the action. Assertions are on what the API server does next: which requests
it still serves, and what the pods it admits look like.
"""

from __future__ import annotations

from typing import Any

import pytest
from harness import Operated

from identity_risk.testing.scenario import (
    ATTACKER_IP,
    deploy_workload,
    pod_token,
    read_configmaps,
    running_pod,
    wait_for,
)

pytestmark = pytest.mark.integration


def replay_stolen_token(operated: Operated, mode: str, namespace: str = "") -> dict[str, Any]:
    """A workload uses its token normally, then the token is replayed from the attacker's
    address; returns the world once the resulting RiskDecision is finished."""
    api = operated.api
    namespace = namespace or operated.namespace(mode)
    deploy_workload(api, namespace=namespace, name="checkout", labels=operated.labels(mode))
    pod = running_pod(api, namespace=namespace, app="checkout")
    token = pod_token(api, pod)
    pod_ip = pod["status"]["podIP"]
    for _ in range(3):
        assert read_configmaps(api, namespace=namespace, token=token, source_ip=pod_ip) == 200
    read_configmaps(api, namespace=namespace, token=token, source_ip=ATTACKER_IP)
    return {
        "namespace": namespace,
        "pod": pod,
        "token": token,
        "pod_ip": pod_ip,
        "decision": finished_decision(operated, namespace),
    }


def finished_decision(operated: Operated, namespace: str) -> dict[str, Any]:
    def finished() -> dict[str, Any] | None:
        items = (operated.custom("riskdecisions", namespace) or {}).get("items", [])
        done = [d for d in items if (d.get("status") or {}).get("phase") == "Enforced"]
        return done[0] if done else None

    found: dict[str, Any] = wait_for("an Enforced RiskDecision", finished, timeout=30)
    return found


def outcome(decision: dict[str, Any], action: str) -> dict[str, Any]:
    found: dict[str, Any] = {a["type"]: a for a in decision["status"]["actions"]}[action]
    return found


def mark_released(operated: Operated, decision: dict[str, Any]) -> None:
    """What ``kubectl risk release`` does last: the decision's status says Released, and every
    replica rebuilds its authorization state and token clamps from that."""
    meta = decision["metadata"]
    status, body = operated.api.call(
        "PATCH",
        f"/apis/identityrisk.dev/v1alpha1/namespaces/{meta['namespace']}/riskdecisions/"
        f"{meta['name']}/status",
        {"status": {"phase": "Released"}},
        content_type="application/merge-patch+json",
    )
    assert status == 200, body


def token_lifetimes(pod: dict[str, Any]) -> list[int]:
    return [
        source["serviceAccountToken"].get("expirationSeconds", 3600)
        for volume in pod["spec"].get("volumes", [])
        for source in (volume.get("projected") or {}).get("sources", [])
        if "serviceAccountToken" in source
    ]


# --- RestrictScope ---------------------------------------------------------------------------


def test_restricted_identity_keeps_its_baseline_and_loses_the_rest(operated: Operated) -> None:
    api = operated.api
    world = replay_stolen_token(operated, "restrict")
    namespace, token, pod_ip = world["namespace"], world["token"], world["pod_ip"]
    decision = f"{namespace}/{world['decision']['metadata']['name']}"
    restricted = outcome(world["decision"], "RestrictScope")
    assert restricted["phase"] == "Succeeded"
    assert f"list /configmaps {namespace}" in restricted["allowedOperations"]

    # In the baseline: still served (RBAC decides, and allows it).
    assert read_configmaps(api, namespace=namespace, token=token, source_ip=pod_ip) == 200
    # Outside it, although the Role grants it: denied, naming the decision.
    status, body = api.call(
        "GET", f"/api/v1/namespaces/{namespace}/secrets", token=token, source_ip=pod_ip
    )
    assert status == 403
    assert decision in body["message"]
    assert f"list /secrets {namespace}" in body["message"]
    # The same verb and resource in another namespace is another operation.
    status, body = api.call(
        "GET", "/api/v1/namespaces/default/configmaps", token=token, source_ip=pod_ip
    )
    assert status == 403
    assert decision in body["message"]


def test_a_released_restriction_no_longer_denies(operated: Operated) -> None:
    api = operated.api
    world = replay_stolen_token(operated, "restrict")
    namespace, token, pod_ip = world["namespace"], world["token"], world["pod_ip"]
    path = f"/api/v1/namespaces/{namespace}/secrets"
    assert api.call("GET", path, token=token, source_ip=pod_ip)[0] == 403
    mark_released(operated, world["decision"])

    def served() -> bool:
        return api.call("GET", path, token=token, source_ip=pod_ip)[0] == 200

    wait_for("the released restriction to lift", served, timeout=15)


def test_a_restriction_leaves_other_identities_alone(operated: Operated) -> None:
    api = operated.api
    world = replay_stolen_token(operated, "restrict")
    namespace = world["namespace"]
    deploy_workload(api, namespace=namespace, name="ledger", labels=operated.labels("restrict"))
    other = running_pod(api, namespace=namespace, app="ledger")
    token = pod_token(api, other)
    status, _ = api.call(
        "GET",
        f"/api/v1/namespaces/{namespace}/secrets",
        token=token,
        source_ip=other["status"]["podIP"],
    )
    assert status == 200


# --- ShortenTokenTTL -------------------------------------------------------------------------


def bare_pod(api: Any, namespace: str, sa: str, *, seconds: int) -> dict[str, Any]:
    """Create a pod of ``sa`` asking for a projected token of ``seconds``; return it as stored."""
    body = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"generateName": f"{sa}-bare-"},
        "spec": {
            "serviceAccountName": sa,
            "containers": [{"name": "app", "image": "example.com/app:1"}],
            "volumes": [
                {
                    "name": "token",
                    "projected": {
                        "sources": [
                            {
                                "serviceAccountToken": {
                                    "path": "token",
                                    "expirationSeconds": seconds,
                                    "audience": "vault",
                                }
                            }
                        ]
                    },
                }
            ],
        },
    }
    status, created = api.call("POST", f"/api/v1/namespaces/{namespace}/pods", body)
    assert status == 201, created
    return created


def test_shorten_token_ttl_recreates_pods_with_clamped_tokens(operated: Operated) -> None:
    api = operated.api
    namespace = operated.namespace("ttl")
    deploy_workload(api, namespace=namespace, name="ledger", labels=operated.labels("ttl"))
    ledger = running_pod(api, namespace=namespace, app="ledger")
    world = replay_stolen_token(operated, "ttl", namespace)
    clamped = outcome(world["decision"], "ShortenTokenTTL")
    assert clamped["phase"] == "Succeeded"
    assert token_lifetimes(world["pod"]) == [3607]  # the default kube-api-access volume

    fresh = running_pod(
        api, namespace=namespace, app="checkout", exclude=world["pod"]["metadata"]["name"]
    )
    assert token_lifetimes(fresh) == [600]
    # Another identity's pod: neither evicted nor changed.
    assert (
        running_pod(api, namespace=namespace, app="ledger")["metadata"]["name"]
        == (ledger["metadata"]["name"])
    )
    assert token_lifetimes(ledger) == [3607]


def test_new_pods_of_a_clamped_identity_are_clamped_at_admission(operated: Operated) -> None:
    api = operated.api
    namespace = operated.namespace("ttl")
    deploy_workload(api, namespace=namespace, name="ledger", labels=operated.labels("ttl"))
    world = replay_stolen_token(operated, "ttl", namespace)
    decision = world["decision"]["metadata"]["name"]

    status, created = api.call(
        "POST",
        f"/api/v1/namespaces/{namespace}/pods",
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"generateName": "checkout-bare-", "labels": {"e2e": decision}},
            "spec": {
                "serviceAccountName": "checkout",
                "containers": [{"name": "app", "image": "example.com/app:1"}],
            },
        },
    )
    assert status == 201, created
    assert token_lifetimes(created) == [600]
    assert sorted(token_lifetimes(bare_pod(api, namespace, "checkout", seconds=7200))) == [
        600,
        600,
    ]
    assert sorted(token_lifetimes(bare_pod(api, namespace, "ledger", seconds=7200))) == [
        3607,
        7200,
    ]


def test_new_pods_are_not_clamped_once_the_decision_is_released(operated: Operated) -> None:
    api = operated.api
    namespace = operated.namespace("ttl")
    world = replay_stolen_token(operated, "ttl", namespace)
    assert token_lifetimes(bare_pod(api, namespace, "checkout", seconds=7200)) == [600, 600]
    mark_released(operated, world["decision"])

    def unclamped() -> bool:
        return sorted(token_lifetimes(bare_pod(api, namespace, "checkout", seconds=7200))) == [
            3607,
            7200,
        ]

    wait_for("the released clamp to lift", unclamped, timeout=15, every=0.5)
