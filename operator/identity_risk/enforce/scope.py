"""RestrictScope: the identity keeps what its learned baseline shows it doing, nothing more.

The allowed set is the identity's baseline at the moment of the decision (operation keys spelled
by ``ingest.operation_key``: verb x group/resource x namespace, or a non-resource path), copied
into the block and recorded in the outcome. It does not grow afterwards: whatever a compromised
identity does next is not learned into what it may do. An identity with no baseline yet is
restricted to nothing, which denies its every request.
"""

from __future__ import annotations

from identity_risk.api import v1alpha1 as v1
from identity_risk.enforce.actions import ActionContext, Outcome, identity_of, key_of, until_of
from identity_risk.enforce.authorization import Block, BlockKind


def restrict_scope(ctx: ActionContext, action: v1.Action, obj: v1.RiskDecision) -> Outcome:
    """Put a RESTRICT_SCOPE block for the identity's baseline at the authorization webhook."""
    identity = identity_of(obj)
    allowed = ctx.baseline(identity)
    until = until_of(action, obj)
    ctx.blocks.add(
        [
            Block(
                BlockKind.RESTRICT_SCOPE,
                identity,
                decision=key_of(obj),
                allowed=allowed,
                until=until,
            )
        ]
    )
    scope = f"{len(allowed)} baseline operation(s)" if allowed else "nothing (no baseline learned)"
    return Outcome(
        v1.ActionPhase.SUCCEEDED,
        f"authorization webhook restricts {identity} to {scope}"
        + (f" until {until.isoformat()}" if until else " until released"),
        changed=(f"authorization: restrict {identity} to {len(allowed)} operation(s)",),
        until=until,
        allowed_operations=tuple(sorted(allowed)),
    )


def release_scope(ctx: ActionContext, outcome: v1.ActionOutcome, obj: v1.RiskDecision) -> Outcome:
    """Lift the restriction; the decision's other blocks (a denied credential) stay."""
    ctx.blocks.drop(key_of(obj), BlockKind.RESTRICT_SCOPE)
    return Outcome(
        v1.ActionPhase.RELEASED,
        f"authorization webhook no longer restricts {identity_of(obj)}",
        changed=(f"authorization: restriction of {identity_of(obj)} lifted",),
    )
