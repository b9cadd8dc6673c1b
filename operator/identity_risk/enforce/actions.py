"""The actions a decision can order, one function each, looked up in ``HANDLERS``.

Each handler gets everything it may touch in an ``ActionContext`` and the recorded RiskDecision
(never the in-memory decision: after a crash only the record is left), and returns an
``Outcome`` saying what it changed — precisely enough for a release to undo it. Every handler
must be idempotent: the executor runs an action again when a crash cut it off before its outcome
was recorded.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from identity_risk.api import v1alpha1 as v1
from identity_risk.domain import ActionType, Identity
from identity_risk.enforce.authorization import AuthorizationState, Block, BlockKind
from identity_risk.enforce.clamps import TokenClamps
from identity_risk.kube import Kube
from identity_risk.record.decisions import manifest
from identity_risk.signals import Inventory

CREDENTIAL_EVIDENCE = "credentialID"
POD_EVIDENCE = "tokenPod"
BLOCKED = (
    "eviction blocked by a PodDisruptionBudget (not deleted; its leaked credential is denied"
    " regardless; evict it once the budget allows)"
)


@dataclass(frozen=True, slots=True)
class Outcome:
    phase: v1.ActionPhase
    message: str
    changed: tuple[str, ...] = ()
    credentials: tuple[str, ...] = ()
    until: datetime | None = None
    allowed_operations: tuple[str, ...] = ()


Poster = Callable[[str, Mapping[str, Any]], None]


def post_json(url: str, body: Mapping[str, Any]) -> None:
    """POST a decision to a notification webhook (5 s timeout)."""
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        response.read()


class Blocks:
    """Where actions put authorization blocks: the state the webhook answers from."""

    def add(self, blocks: Iterable[Block]) -> None:
        raise NotImplementedError

    def drop(self, decision: str, kind: BlockKind) -> None:
        """Remove one kind of a decision's blocks at once (its other blocks stay).

        Out of process (``kubectl risk release``) there is nothing to drop here: every replica
        rebuilds its blocks from the RiskDecision once it is marked Released.
        """

    @property
    def state(self) -> AuthorizationState:
        raise NotImplementedError


@dataclass(frozen=True, slots=True)
class ActionContext:
    """What an action may use: the API, the authorization state, policies, the clock."""

    kube: Kube
    blocks: Blocks
    clock: Callable[[], datetime]
    policies: Callable[[str], v1.IdentityRiskPolicy | None]
    post: Poster = post_json
    inventory: Callable[[], Inventory] = Inventory
    """The live inventory snapshot (pods of an identity, its secrets, ...)."""
    baseline: Callable[[Identity], frozenset[str]] = lambda _identity: frozenset()
    """The identity's learned operations (``AuditRecord.operation`` keys), copied under lock."""
    clamps: TokenClamps = field(default_factory=TokenClamps)
    """Token-lifetime clamps the pod admission webhook answers from (ShortenTokenTTL)."""


Handler = Callable[[ActionContext, v1.Action, v1.RiskDecision], Outcome]
Releaser = Callable[[ActionContext, v1.ActionOutcome, v1.RiskDecision], Outcome]
"""Undoes what one recorded outcome says its action changed (``kubectl risk release``)."""


def identity_of(obj: v1.RiskDecision) -> Identity:
    return Identity(obj.spec.identity.namespace, obj.spec.identity.service_account_name)


def key_of(obj: v1.RiskDecision) -> str:
    return f"{obj.metadata.get('namespace', '')}/{obj.metadata.get('name', '')}"


def evidence_values(obj: v1.RiskDecision, key: str) -> list[str]:
    """Distinct values of one evidence key across the decision's signals, in order."""
    seen: dict[str, None] = {}
    for signal in obj.spec.signals:
        value = signal.evidence.get(key)
        if value:
            seen[value] = None
    return list(seen)


def until_of(action: v1.Action, obj: v1.RiskDecision) -> datetime | None:
    if action.duration is None:
        return None
    return obj.spec.decided_at + v1.parse_duration(action.duration)


def notify(ctx: ActionContext, action: v1.Action, obj: v1.RiskDecision) -> Outcome:
    """The Event is written for every decision; Notify adds the policy's JSON webhooks."""
    policy = ctx.policies(obj.spec.policy)
    targets = [w.url for w in policy.spec.notification.webhooks] if policy else []
    body = {"kind": "RiskDecision", "decision": manifest(obj)}
    failed = []
    for url in targets:
        try:
            ctx.post(url, body)
        except OSError as exc:
            failed.append(f"{url}: {exc}")
    if failed:
        return Outcome(v1.ActionPhase.FAILED, "notification failed: " + "; ".join(failed))
    return Outcome(
        v1.ActionPhase.SUCCEEDED,
        f"Event recorded; {len(targets)} webhook(s) notified",
        changed=tuple(f"webhook {u}" for u in targets),
    )


def deny_api_access(ctx: ActionContext, action: v1.Action, obj: v1.RiskDecision) -> Outcome:
    """The authorization webhook denies the identity (the executor publishes the block)."""
    until = until_of(action, obj)
    identity = identity_of(obj)
    return Outcome(
        v1.ActionPhase.SUCCEEDED,
        f"authorization webhook denies {identity}"
        + (f" until {until.isoformat()}" if until else " until released"),
        changed=(f"authorization: deny {identity}",),
        until=until,
    )


def revoke_token(ctx: ActionContext, action: v1.Action, obj: v1.RiskDecision) -> Outcome:
    """Deny the leaked credential-ids, then evict the pods they are bound to."""
    credentials = evidence_values(obj, CREDENTIAL_EVIDENCE)
    pods = evidence_values(obj, POD_EVIDENCE)
    if not credentials and not pods:
        return Outcome(v1.ActionPhase.SKIPPED, "no token named in the evidence: nothing to revoke")
    identity = identity_of(obj)
    # Deny the credentials first: from here on the leaked token is useless, whatever the
    # eviction below does. Then evict the bound pods so their controllers re-create them with
    # fresh tokens.
    ctx.blocks.add(
        Block(BlockKind.DENY_CREDENTIAL, identity, decision=key_of(obj), credential_id=cred)
        for cred in credentials
    )
    changed = [f"authorization: deny credential {c}" for c in credentials]
    messages = []
    for pod in pods:
        pod_namespace, _, pod_name = pod.rpartition("/")
        result = ctx.kube.evict(pod_namespace or identity.namespace, pod_name)
        changed.append(f"pod {pod}: {result}")
        messages.append(f"pod {pod} {BLOCKED if result == 'blocked' else result}")
    return Outcome(
        v1.ActionPhase.SUCCEEDED,
        f"denied {len(credentials)} credential(s)"
        + (f"; {', '.join(messages)}" if messages else ""),
        changed=tuple(changed),
        credentials=tuple(credentials),
    )


HANDLERS: dict[ActionType, Handler] = {
    ActionType.NOTIFY: notify,
    ActionType.DENY_API_ACCESS: deny_api_access,
    ActionType.REVOKE_TOKEN: revoke_token,
}
"""Action type → handler. An action type without a handler is recorded as Skipped."""


def release_deny_api_access(
    ctx: ActionContext, outcome: v1.ActionOutcome, obj: v1.RiskDecision
) -> Outcome:
    """Lift the identity's denial (the decision's other blocks stay until released too)."""
    ctx.blocks.drop(key_of(obj), BlockKind.DENY_IDENTITY)
    identity = identity_of(obj)
    return Outcome(
        v1.ActionPhase.RELEASED,
        f"authorization webhook no longer denies {identity}",
        changed=(f"authorization: deny {identity} lifted",),
    )


def release_revoke_token(
    ctx: ActionContext, outcome: v1.ActionOutcome, obj: v1.RiskDecision
) -> Outcome:
    """Stop denying the revoked credentials; evicted pods were replaced and stay replaced."""
    ctx.blocks.drop(key_of(obj), BlockKind.DENY_CREDENTIAL)
    return Outcome(
        v1.ActionPhase.RELEASED,
        f"{len(outcome.credentials)} credential(s) no longer denied (evicted pods are not"
        " restored: their controllers replaced them)",
        changed=tuple(f"authorization: deny credential {c} lifted" for c in outcome.credentials),
    )


RELEASERS: dict[ActionType, Releaser] = {
    ActionType.DENY_API_ACCESS: release_deny_api_access,
    ActionType.REVOKE_TOKEN: release_revoke_token,
}
"""Action type → releaser, for actions defined in this module (``playbook`` has them all)."""
