"""Safeguards on the real control plane: break-glass identities are decided but never acted on."""

from __future__ import annotations

import time
from typing import Any

import pytest
from harness import Operated

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
