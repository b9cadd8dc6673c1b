"""Argo CD health checks (deploy/argocd/health/*.lua), run in Lua 5.1 (Argo CD's gopher-lua
speaks 5.1) against sample objects in every state, the way Argo CD runs them: the object as the
global ``obj``, the script's return value as the health."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

lua51 = pytest.importorskip("lupa.lua51", reason="pip install -e '.[test]' (lupa)")

ROOT = Path(__file__).resolve().parents[2]
ARGOCD = ROOT / "deploy" / "argocd"


def health(kind: str, obj: dict[str, Any]) -> tuple[str, str]:
    runtime = lua51.LuaRuntime(unpack_returned_tuples=True)
    runtime.globals().obj = runtime.table_from(obj, recursive=True)
    result = runtime.execute((ARGOCD / "health" / f"{kind}.lua").read_text())
    return str(result["status"]), str(result["message"] or "")


def make(kind: str, *, status: dict[str, Any] | None = None, generation: int = 1) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "apiVersion": "identityrisk.dev/v1alpha1",
        "kind": kind,
        "metadata": {"name": "x", "namespace": "shop", "generation": generation},
        "spec": {},
    }
    if status is not None:
        obj["status"] = status
    return obj


def make_wir(enforcement: str | None = None, *, scored: bool = True) -> dict[str, Any]:
    if not scored:
        return make("WorkloadIdentityRisk")
    status: dict[str, Any] = {
        "score": 72.5,
        "band": "high",
        "lastEvaluated": "2026-12-04T21:00:00Z",
        "lastDecision": "checkout-high-1",
    }
    if enforcement is not None:
        status["enforcement"] = enforcement
    return make("WorkloadIdentityRisk", status=status)


def make_decision(phase: str | None, actions: list[tuple[str, str]] = ()) -> dict[str, Any]:  # type: ignore[assignment]
    if phase is None:
        return make("RiskDecision")
    return make(
        "RiskDecision",
        status={
            "phase": phase,
            "actions": [
                {"type": t, "phase": p, "message": "HTTP 403 Forbidden" if p == "Failed" else ""}
                for t, p in actions
            ],
        },
    )


CASES = [
    # IdentityRiskPolicy
    pytest.param(
        "IdentityRiskPolicy",
        make("IdentityRiskPolicy"),
        "Healthy",
        "accepted",
        id="policy-no-status",
    ),
    pytest.param(
        "IdentityRiskPolicy",
        make(
            "IdentityRiskPolicy",
            status={"observedGeneration": 3, "identitiesCovered": 12},
            generation=3,
        ),
        "Healthy",
        "covers 12 identities",
        id="policy-observed",
    ),
    pytest.param(
        "IdentityRiskPolicy",
        make("IdentityRiskPolicy", status={"observedGeneration": 2}, generation=3),
        "Progressing",
        "generation 3",
        id="policy-new-generation",
    ),
    pytest.param(
        "IdentityRiskPolicy",
        make(
            "IdentityRiskPolicy",
            status={
                "conditions": [{"type": "Ready", "status": "False", "message": "bad selector"}]
            },
        ),
        "Degraded",
        "bad selector",
        id="policy-not-ready",
    ),
    # WorkloadIdentityRisk
    pytest.param(
        "WorkloadIdentityRisk", make_wir(scored=False), "Progressing", "not scored", id="wir-new"
    ),
    pytest.param(
        "WorkloadIdentityRisk", make_wir(), "Healthy", "score 72.5, band high", id="wir-none"
    ),
    pytest.param(
        "WorkloadIdentityRisk", make_wir("AuditOnly"), "Healthy", "AuditOnly", id="wir-audit"
    ),
    pytest.param(
        "WorkloadIdentityRisk", make_wir("Released"), "Healthy", "Released", id="wir-released"
    ),
    pytest.param(
        "WorkloadIdentityRisk",
        make_wir("PendingApproval"),
        "Progressing",
        "approval",
        id="wir-approval",
    ),
    pytest.param(
        "WorkloadIdentityRisk",
        make_wir("Enforced"),
        "Degraded",
        "checkout-high-1",
        id="wir-enforced",
    ),
    pytest.param(
        "WorkloadIdentityRisk", make_wir("Paused"), "Degraded", "circuit breaker", id="wir-paused"
    ),
    # RiskDecision
    pytest.param("RiskDecision", make_decision(None), "Progressing", "Recorded", id="decision-new"),
    pytest.param(
        "RiskDecision",
        make_decision("Executing", [("RevokeToken", "Succeeded")]),
        "Progressing",
        "Executing: RevokeToken=Succeeded",
        id="decision-executing",
    ),
    pytest.param(
        "RiskDecision",
        make_decision("AwaitingApproval"),
        "Progressing",
        "AwaitingApproval",
        id="decision-approval",
    ),
    pytest.param(
        "RiskDecision",
        make_decision("Enforced", [("Notify", "Succeeded"), ("RevokeToken", "Succeeded")]),
        "Healthy",
        "RevokeToken=Succeeded",
        id="decision-enforced",
    ),
    pytest.param(
        "RiskDecision",
        make_decision("Audited", [("RevokeToken", "Skipped")]),
        "Healthy",
        "Skipped",
        id="decision-audited",
    ),
    pytest.param(
        "RiskDecision", make_decision("Released"), "Healthy", "Released", id="decision-released"
    ),
    pytest.param(
        "RiskDecision",
        make_decision("Failed", [("Notify", "Succeeded"), ("RevokeToken", "Failed")]),
        "Degraded",
        "RevokeToken=Failed (HTTP 403 Forbidden)",
        id="decision-failed",
    ),
    pytest.param(
        "RiskDecision",
        make_decision("Sideways"),
        "Unknown",
        "Sideways",
        id="decision-unknown-phase",
    ),
]


@pytest.mark.parametrize(("kind", "obj", "status", "message"), CASES)
def test_health(kind: str, obj: dict[str, Any], status: str, message: str) -> None:
    got_status, got_message = health(kind, obj)
    assert got_status == status
    assert message in got_message


def test_every_state_of_every_kind_is_covered() -> None:
    seen: dict[str, set[str]] = {}
    for case in CASES:
        kind, _, status, _ = case.values
        seen.setdefault(str(kind), set()).add(str(status))
    for kind in ("IdentityRiskPolicy", "WorkloadIdentityRisk", "RiskDecision"):
        assert {"Healthy", "Progressing", "Degraded"} <= seen[kind], kind


def test_argocd_cm_carries_exactly_the_scripts() -> None:
    cm = yaml.safe_load((ARGOCD / "argocd-cm.yaml").read_text())
    expected = {
        f"resource.customizations.health.identityrisk.dev_{p.stem}": p.read_text()
        for p in sorted((ARGOCD / "health").glob("*.lua"))
    }
    assert cm["data"] == expected
