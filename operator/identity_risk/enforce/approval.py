"""RequireApproval: who answered a pending decision, and whether they may.

Who approved is never typed by the user: the admission webhook (``stamp``) writes the requesting
user and groups from the AdmissionReview's ``userInfo`` into the RiskApproval's annotations,
overwriting anything the user put there. ``judge`` then checks that stamped user against the
policy's ``approvers`` and the decision's state. Both are pure; the live operator applies them.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from identity_risk.api import v1alpha1 as v1
from identity_risk.domain import Mode
from identity_risk.enforce.admission import Admission
from identity_risk.policy import Decision, Disposition

APPROVED_BY = "identityrisk.dev/approved-by"
APPROVER_GROUPS = "identityrisk.dev/approver-groups"


def _pointer(key: str) -> str:
    return "/metadata/annotations/" + key.replace("~", "~0").replace("/", "~1")


def stamp(request: Mapping[str, Any]) -> Admission:
    """Admission for a RiskApproval CREATE: stamp ``userInfo`` into its annotations."""
    user = request.get("userInfo") or {}
    username = str(user.get("username") or "")
    if not username:
        return Admission(
            allowed=False,
            message="a RiskApproval needs an authenticated requester; none was reported",
        )
    groups = [str(g) for g in user.get("groups") or []]
    values = {APPROVED_BY: username, APPROVER_GROUPS: json.dumps(groups)}
    obj = request.get("object") or {}
    annotations = (obj.get("metadata") or {}).get("annotations")
    patch: list[dict[str, Any]] = []
    typed: list[str] = []
    if not isinstance(annotations, Mapping):
        patch.append({"op": "add", "path": "/metadata/annotations", "value": values})
    else:
        typed = [k for k in values if k in annotations and annotations[k] != values[k]]
        patch.extend({"op": "add", "path": _pointer(k), "value": v} for k, v in values.items())
    warnings = [
        f"{k} is stamped from your credentials; the typed value was replaced" for k in typed
    ]
    return Admission(patch=patch, warnings=warnings)


@dataclass(frozen=True, slots=True)
class Approver:
    """The person behind a RiskApproval, as stamped at admission."""

    user: str
    groups: tuple[str, ...] = ()


def approver_of(approval: v1.RiskApproval) -> Approver | None:
    """The stamped approver, or None when the stamp is missing (webhook bypassed)."""
    annotations = approval.metadata.get("annotations") or {}
    user = annotations.get(APPROVED_BY)
    if not user:
        return None
    try:
        groups = json.loads(annotations.get(APPROVER_GROUPS) or "[]")
    except ValueError:
        groups = []
    return Approver(user=str(user), groups=tuple(str(g) for g in groups))


@dataclass(frozen=True, slots=True)
class Judgement:
    accepted: bool
    message: str


def may_approve(approver: Approver, *, approvers: v1.Approvers, owner: str | None) -> str | None:
    """Why ``approver`` may answer (a phrase), or None if they may not."""
    if approver.user in approvers.users:
        return f"user {approver.user} is listed in approvers.users"
    shared: Sequence[str] = sorted(set(approver.groups) & set(approvers.groups))
    if shared:
        return f"group {shared[0]} is listed in approvers.groups"
    if approvers.allow_owners and owner and approver.user == owner:
        return f"{approver.user} owns the identity (approvers.allowOwners)"
    return None


def judge(
    approval: v1.RiskApproval,
    *,
    decision: v1.RiskDecision | None,
    policy: v1.IdentityRiskPolicy | None,
) -> Judgement:
    """Whether ``approval`` answers ``decision``; the message says why, or what to do instead."""
    name = approval.spec.decision
    namespace = str(approval.metadata.get("namespace", ""))
    approver = approver_of(approval)
    if approver is None:
        return Judgement(
            False,
            f"no approver stamped on this RiskApproval (is the operator's mutating webhook for "
            f"riskapprovals installed?); create it again with kubectl risk {_verb(approval)}",
        )
    if decision is None:
        return Judgement(False, f"RiskDecision {namespace}/{name} not found")
    phase = decision.status.phase if decision.status else v1.DecisionPhase.RECORDED
    if phase is not v1.DecisionPhase.AWAITING_APPROVAL:
        return Judgement(
            False, f"RiskDecision {namespace}/{name} is not awaiting approval (phase {phase.value})"
        )
    if policy is None:
        return Judgement(
            False, f"policy {decision.spec.policy} of RiskDecision {name} no longer exists"
        )
    why = may_approve(approver, approvers=policy.spec.approvers, owner=decision.spec.owner)
    if why is None:
        return Judgement(
            False,
            f"{approver.user} may not answer RiskDecision {namespace}/{name}: not among the "
            f"approvers of policy {policy.name} (users, groups"
            + (", or the identity's owner" if policy.spec.approvers.allow_owners else "")
            + "); ask one of them, or have spec.approvers extended",
        )
    return Judgement(True, f"{approval.spec.verdict.value} by {approver.user}: {why}")


def escalated(
    decision: Decision, policy: v1.IdentityRiskPolicy, *, now: datetime, why: str
) -> Decision | None:
    """``decision`` moved to the policy's next band (onTimeout Escalate), or None at the top.

    ``decision`` is the identity's current evaluation (for its score and evidence); the result
    orders the next band's actions as a decision of its own, so it is recorded and chained.
    """
    names = [b.name for b in policy.spec.bands]
    if decision.band not in names or names.index(decision.band) + 1 >= len(names):
        return None
    band = policy.spec.bands[names.index(decision.band) + 1]
    act = policy.spec.mode is Mode.ENFORCE
    return dataclasses.replace(
        decision,
        band=band.name,
        previous_band=decision.band,
        band_since=now,
        escalated=True,
        actions=tuple(band.actions),
        disposition=Disposition.ACT if act else Disposition.AUDIT,
        reasons=(*decision.reasons, why),
        at=now,
    )


def _verb(approval: v1.RiskApproval) -> str:
    return "approve" if approval.spec.verdict is v1.Verdict.APPROVE else "deny"
