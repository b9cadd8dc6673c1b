"""RequireApproval: the approver is stamped at admission and checked against the policy."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from identity_risk.api import v1alpha1 as v1
from identity_risk.domain import ActionType
from identity_risk.enforce import admission
from identity_risk.enforce.approval import (
    APPROVED_BY,
    APPROVER_GROUPS,
    Approver,
    approver_of,
    judge,
    may_approve,
    stamp,
)
from identity_risk.enforce.executor import answered

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)


def make_request(*, user: str = "alice", groups: tuple[str, ...] = (), annotations: Any = None):
    meta: dict[str, Any] = {"name": "a1", "namespace": "shop"}
    if annotations is not None:
        meta["annotations"] = annotations
    return {
        "uid": "u1",
        "resource": {"group": "identityrisk.dev", "resource": "riskapprovals"},
        "userInfo": {"username": user, "groups": list(groups)},
        "object": {"metadata": meta, "spec": {"decision": "d1", "verdict": "Approve"}},
    }


def make_approval(*, user: str | None = "alice", groups: tuple[str, ...] = (), verdict="Approve"):
    annotations = {}
    if user is not None:
        annotations = {APPROVED_BY: user, APPROVER_GROUPS: json.dumps(list(groups))}
    return v1.RiskApproval.model_validate(
        {
            "metadata": {"name": "a1", "namespace": "shop", "annotations": annotations},
            "spec": {"decision": "d1", "verdict": verdict},
        }
    )


def make_decision(*, phase: v1.DecisionPhase = v1.DecisionPhase.AWAITING_APPROVAL, owner=None):
    return v1.RiskDecision.model_validate(
        {
            "metadata": {"name": "d1", "namespace": "shop"},
            "spec": {
                "identity": {"namespace": "shop", "serviceAccountName": "web"},
                "owner": owner,
                "policy": "p",
                "mode": "Enforce",
                "score": 70,
                "confidence": "High",
                "band": "high",
                "actions": [{"type": "RequireApproval", "timeout": "5m"}],
                "decidedAt": NOW.isoformat(),
            },
            "status": {"phase": phase.value},
        }
    )


def make_policy(**approvers: Any) -> v1.IdentityRiskPolicy:
    return v1.IdentityRiskPolicy.model_validate(
        {
            "metadata": {"name": "p"},
            "spec": {"bands": [{"name": "high", "minScore": 60}], "approvers": approvers},
        }
    )


def patched(body: dict[str, Any]) -> dict[str, Any]:
    """Apply the stamp's JSON patch the way the API server would (add only)."""
    response = admission.review({"request": body}, {"riskapprovals": stamp})["response"]
    obj = json.loads(json.dumps(body["object"]))
    for op in json.loads(base64.b64decode(response["patch"])):
        assert op["op"] == "add"
        parts = [p.replace("~1", "/").replace("~0", "~") for p in op["path"].split("/")[1:]]
        target = obj
        for part in parts[:-1]:
            target = target[part]
        target[parts[-1]] = op["value"]
    return obj


@pytest.mark.parametrize(
    "annotations",
    [None, {}, {APPROVED_BY: "alice", "keep": "me"}],
    ids=["no-annotations", "empty", "typed-approver-overwritten"],
)
def test_the_approver_is_stamped_from_user_info(annotations: Any) -> None:
    obj = patched(make_request(user="mallory", groups=("dev",), annotations=annotations))
    stamped = obj["metadata"]["annotations"]
    assert stamped[APPROVED_BY] == "mallory"
    assert json.loads(stamped[APPROVER_GROUPS]) == ["dev"]
    if annotations and "keep" in annotations:
        assert stamped["keep"] == "me"


def test_a_typed_approver_is_replaced_with_a_warning() -> None:
    answer = stamp(make_request(user="mallory", annotations={APPROVED_BY: "alice"}))
    assert answer.allowed
    assert any(APPROVED_BY in w for w in answer.warnings)


def test_an_anonymous_request_is_refused() -> None:
    answer = stamp(make_request(user=""))
    assert not answer.allowed
    assert "authenticated" in answer.message


@pytest.mark.parametrize(
    ("approver", "approvers", "owner", "allowed"),
    [
        (Approver("alice"), {"users": ["alice"]}, None, True),
        (Approver("bob", ("sec",)), {"groups": ["sec"]}, None, True),
        (Approver("carol"), {"allowOwners": True}, "carol", True),
        (Approver("carol"), {"allowOwners": False}, "carol", False),
        (Approver("mallory", ("dev",)), {"users": ["alice"], "groups": ["sec"]}, "carol", False),
    ],
    ids=["listed-user", "listed-group", "owner-allowed", "owner-not-allowed", "stranger"],
)
def test_may_approve(approver: Approver, approvers: Any, owner: str | None, allowed: bool) -> None:
    why = may_approve(approver, approvers=v1.Approvers.model_validate(approvers), owner=owner)
    assert (why is not None) is allowed


def test_a_stranger_is_refused_with_what_to_do() -> None:
    judgement = judge(
        make_approval(user="mallory"), decision=make_decision(), policy=make_policy(users=["alice"])
    )
    assert not judgement.accepted
    assert "mallory may not answer RiskDecision shop/d1" in judgement.message
    assert "policy p" in judgement.message


def test_an_allowed_user_is_accepted() -> None:
    judgement = judge(
        make_approval(), decision=make_decision(), policy=make_policy(users=["alice"])
    )
    assert judgement.accepted
    assert "Approve by alice" in judgement.message


@pytest.mark.parametrize(
    ("approval", "decision", "expected"),
    [
        (make_approval(user=None), make_decision(), "no approver stamped"),
        (make_approval(), None, "not found"),
        (make_approval(), make_decision(phase=v1.DecisionPhase.ENFORCED), "not awaiting approval"),
    ],
    ids=["unstamped", "no-decision", "not-waiting"],
)
def test_refusals(approval: v1.RiskApproval, decision: Any, expected: str) -> None:
    judgement = judge(approval, decision=decision, policy=make_policy(users=["alice"]))
    assert not judgement.accepted
    assert expected in judgement.message


def test_approver_of_reads_the_stamp() -> None:
    assert approver_of(make_approval(user="bob", groups=("g",))) == Approver("bob", ("g",))


PENDING = v1.ActionOutcome(type=ActionType.REQUIRE_APPROVAL, phase=v1.ActionPhase.PENDING)


def _action(on_timeout: str | None = None) -> v1.Action:
    body: dict[str, Any] = {"type": "RequireApproval", "timeout": "5m"}
    if on_timeout:
        body["onTimeout"] = on_timeout
    return v1.Action.model_validate(body)


@pytest.mark.parametrize(
    ("state", "on_timeout", "phase", "stop"),
    [
        ("Approved", None, v1.ActionPhase.SUCCEEDED, None),
        ("Denied", None, v1.ActionPhase.SKIPPED, v1.DecisionPhase.DENIED),
        ("TimedOut", "Deny", v1.ActionPhase.SKIPPED, v1.DecisionPhase.DENIED),
        ("TimedOut", "Expire", v1.ActionPhase.SKIPPED, v1.DecisionPhase.EXPIRED),
        ("TimedOut", None, v1.ActionPhase.SKIPPED, v1.DecisionPhase.EXPIRED),
    ],
    ids=["approved", "denied", "timeout-deny", "timeout-expire", "timeout-default-expire"],
)
def test_answered(
    state: str, on_timeout: str | None, phase: v1.ActionPhase, stop: v1.DecisionPhase | None
) -> None:
    result = answered(v1.ApprovalState(state=state, by="alice"), _action(on_timeout), PENDING)
    assert result is not None
    outcome, halt = result
    assert outcome.phase is phase
    assert (halt[0] if halt else None) is stop


@pytest.mark.parametrize(
    "approval", [None, v1.ApprovalState(state="Pending")], ids=["none", "pending"]
)
def test_no_answer_yet(approval: v1.ApprovalState | None) -> None:
    assert answered(approval, _action(), PENDING) is None


def _decision(band: str) -> Any:
    from identity_risk.domain import Confidence, Identity, Mode
    from identity_risk.policy import Decision, Disposition

    return Decision(
        identity=Identity("shop", "web"),
        policy="p",
        mode=Mode.ENFORCE,
        score=70,
        confidence=Confidence.HIGH,
        band=band,
        previous_band=None,
        band_since=NOW,
        escalated=False,
        actions=(),
        disposition=Disposition.NO_CHANGE,
        reasons=("score 70",),
        at=NOW,
    )


def _three_bands(mode: str = "Enforce") -> v1.IdentityRiskPolicy:
    return v1.IdentityRiskPolicy.model_validate(
        {
            "metadata": {"name": "p"},
            "spec": {
                "mode": mode,
                "bands": [
                    {"name": "low", "minScore": 20},
                    {"name": "high", "minScore": 60, "actions": [{"type": "Notify"}]},
                    {"name": "critical", "minScore": 90, "actions": [{"type": "DenyAPIAccess"}]},
                ],
            },
        }
    )


def test_escalate_takes_the_next_bands_actions() -> None:
    from identity_risk.enforce.approval import escalated
    from identity_risk.policy import Disposition

    out = escalated(_decision("high"), _three_bands(), now=NOW, why="no answer")
    assert out is not None
    assert (out.band, out.previous_band, out.escalated) == ("critical", "high", True)
    assert [a.type for a in out.actions] == [ActionType.DENY_API_ACCESS]
    assert out.disposition is Disposition.ACT
    assert out.reasons[-1] == "no answer"


def test_escalate_at_the_top_band_is_nothing_and_audit_mode_stays_audit() -> None:
    from identity_risk.enforce.approval import escalated
    from identity_risk.policy import Disposition

    assert escalated(_decision("critical"), _three_bands(), now=NOW, why="x") is None
    audit = escalated(_decision("low"), _three_bands("Audit"), now=NOW, why="x")
    assert audit is not None
    assert audit.disposition is Disposition.AUDIT


@pytest.mark.parametrize(
    ("line", "pod"),
    [
        ("pod shop/web-1: blocked", "shop/web-1"),
        ("pod shop/web-1: evicted", None),
        ("pod shop/web-1: evicted (retried at 2026-12-04T12:00:00+00:00)", None),
        ("authorization: deny shop/web", None),
    ],
    ids=["blocked", "evicted", "retried", "other"],
)
def test_blocked_pod(line: str, pod: str | None) -> None:
    from identity_risk.enforce.executor import blocked_pod

    assert blocked_pod(line) == pod
