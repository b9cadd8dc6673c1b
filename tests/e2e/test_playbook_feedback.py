"""``kubectl risk confirm-compromised`` and ``dismiss`` on the real control plane."""

from __future__ import annotations

from typing import Any

import pytest
from harness import Operated

from identity_risk.cli.kubectl_risk import main as kubectl_risk
from identity_risk.testing.scenario import (
    ATTACKER_IP,
    deploy_workload,
    pod_token,
    read_configmaps,
    running_pod,
    wait_for,
)

pytestmark = pytest.mark.integration


def workload(operated: Operated, mode: str) -> dict[str, Any]:
    api = operated.api
    namespace = operated.namespace(mode)
    deploy_workload(api, namespace=namespace, name="checkout", labels=operated.labels(mode))
    pod = running_pod(api, namespace=namespace, app="checkout")
    token, pod_ip = pod_token(api, pod), pod["status"]["podIP"]
    for _ in range(3):
        assert read_configmaps(api, namespace=namespace, token=token, source_ip=pod_ip) == 200
    return {"namespace": namespace, "token": token}


def wir(operated: Operated, namespace: str) -> dict[str, Any]:
    return operated.custom("workloadidentityrisks", namespace, "checkout") or {}


def test_confirm_compromised_goes_straight_to_the_top_band(
    operated: Operated, capsys: pytest.CaptureFixture[str]
) -> None:
    namespace = workload(operated, "enforce")["namespace"]
    kubeconfig = f"--kubeconfig={operated.state.kubeconfig}"
    assert kubectl_risk(["confirm-compromised", f"{namespace}/checkout", kubeconfig]) == 0
    assert "confirmed compromised by" in capsys.readouterr().out

    def decided() -> dict[str, Any] | None:
        items = (operated.custom("riskdecisions", namespace) or {}).get("items", [])
        return next((d for d in items if d["spec"]["band"] == "high"), None)

    decision: dict[str, Any] = wait_for("a decision in the top band", decided, timeout=20)
    assert decision["spec"]["score"] == 100
    assert any("confirmed compromised by" in r for r in decision["spec"]["reasons"])
    wait_for("the score pinned to 100", lambda: wir(operated, namespace).get("status", {}).get(
        "score") == 100, timeout=15)  # fmt: skip


def test_dismiss_stops_the_evidence_so_far_from_counting(
    operated: Operated, capsys: pytest.CaptureFixture[str]
) -> None:
    world = workload(operated, "audit")
    namespace = world["namespace"]
    code = read_configmaps(
        operated.api, namespace=namespace, token=world["token"], source_ip=ATTACKER_IP
    )
    assert code == 200

    def score() -> float:
        return float((wir(operated, namespace).get("status") or {}).get("score", 0))

    wait_for("the replay to be scored", lambda: score() >= 60, timeout=20)
    kubeconfig = f"--kubeconfig={operated.state.kubeconfig}"
    assert kubectl_risk(["dismiss", "checkout", "-n", namespace, kubeconfig]) == 0
    assert "dismissed by" in capsys.readouterr().out
    wait_for("the dismissed evidence to stop counting", lambda: score() < 20, timeout=20)
