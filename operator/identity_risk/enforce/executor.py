"""Carry a decision out: record it, then act — once, even across a crash.

For each decision the executor (1) creates its RiskDecision (named after the decision, so a
second attempt finds the first), (2) appends it to the signed decision log (idempotent per
decision), (3) stamps the chain link into the RiskDecision's status, and (4) runs each action the
decision allows, writing the action's outcome into the status *after* it succeeds. On a replay,
actions whose outcome is already recorded are skipped; an action that was in flight when the
process died runs again, which is why every action is itself idempotent (denying a credential
twice, evicting a pod that is already gone).

``mode: Audit`` and every safeguard reach here as a disposition that allows nothing but Notify.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from identity_risk.api import v1alpha1 as v1
from identity_risk.domain import ActionType, Identity
from identity_risk.enforce.actions import (
    ActionContext,
    Blocks,
    Outcome,
    Poster,
    identity_of,
    key_of,
    post_json,
)
from identity_risk.enforce.authorization import AuthorizationState, Block, BlockKind
from identity_risk.enforce.clamps import TokenClamps, clamps_of
from identity_risk.enforce.playbook import HANDLERS, RELEASERS
from identity_risk.kube import Kube, KubeError, ObjectRef
from identity_risk.policy import Decision, Disposition
from identity_risk.record.chain import Link
from identity_risk.record.decisions import (
    chain_payload,
    manifest,
    release_payload,
    risk_decision,
)
from identity_risk.record.log import DecisionLog
from identity_risk.signals import Inventory

log = logging.getLogger(__name__)


class AuthorizationBook(Blocks):
    """The authorization state the webhook answers from, shared between threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._state = AuthorizationState()

    @property
    def state(self) -> AuthorizationState:
        return self._state  # an immutable value: reading the reference needs no lock

    def put(self, decision: str, blocks: Iterable[Block]) -> None:
        with self._lock:
            self._state = self._state.replace_decision(decision, blocks)

    def add(self, blocks: Iterable[Block]) -> None:
        with self._lock:
            self._state = self._state.with_blocks(blocks)

    def release(self, decision: str) -> None:
        with self._lock:
            self._state = self._state.without_decision(decision)

    def drop(self, decision: str, kind: BlockKind) -> None:
        with self._lock:
            self._state = self._state.without_kind(decision, kind)


def blocks_of(obj: v1.RiskDecision) -> list[Block]:
    """The authorization blocks a recorded decision has in force (from its status)."""
    if obj.status is None or obj.status.phase is v1.DecisionPhase.RELEASED:
        return []
    identity = Identity(obj.spec.identity.namespace, obj.spec.identity.service_account_name)
    decision = f"{obj.metadata.get('namespace', '')}/{obj.metadata.get('name', '')}"
    out: list[Block] = []
    for outcome in obj.status.actions:
        if outcome.phase is not v1.ActionPhase.SUCCEEDED:
            continue
        if outcome.type is ActionType.DENY_API_ACCESS:
            out.append(
                Block(BlockKind.DENY_IDENTITY, identity, decision=decision, until=outcome.until)
            )
        elif outcome.type is ActionType.RESTRICT_SCOPE:
            out.append(
                Block(
                    BlockKind.RESTRICT_SCOPE,
                    identity,
                    decision=decision,
                    allowed=frozenset(outcome.allowed_operations),
                    until=outcome.until,
                )
            )
        elif outcome.type is ActionType.REVOKE_TOKEN:
            out.extend(
                Block(
                    BlockKind.DENY_CREDENTIAL,
                    identity,
                    decision=decision,
                    credential_id=cred,
                    until=outcome.until,
                )
                for cred in outcome.credentials
            )
    return out


@dataclass
class Executor:
    """Records and carries out decisions against the API server."""

    kube: Kube
    decision_log: DecisionLog
    book: AuthorizationBook
    clock: Callable[[], datetime]
    policies: Callable[[str], v1.IdentityRiskPolicy | None]
    post: Poster = post_json
    on_outcome: Callable[[ActionType, v1.ActionPhase], None] | None = None
    inventory: Callable[[], Inventory] = Inventory
    baseline: Callable[[Identity], frozenset[str]] = lambda _identity: frozenset()
    clamps: TokenClamps = field(default_factory=TokenClamps)
    after_action: Callable[[ActionType], None] | None = None
    """Called after each action's outcome is recorded (failure injection in tests)."""
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _in_flight: set[str] = field(default_factory=set)
    _recorded: dict[str, int] = field(default_factory=dict)

    def stale(self, key: str, obj: v1.RiskDecision) -> bool:
        """Whether a watched copy of ``key`` is behind what this executor has put in force.

        While a decision is carried out here, its handlers add blocks and clamps before their
        outcomes are recorded; a watch event with an earlier status must not take them away.
        """
        done = len(obj.status.actions) if obj.status else 0
        return key in self._in_flight or done < self._recorded.get(key, 0)

    def execute(self, decision: Decision, *, service_account_uid: str = "") -> v1.RiskDecision:
        """Record ``decision`` and run its actions; safe to call again for the same decision."""
        obj = risk_decision(decision, service_account_uid=service_account_uid)
        with self._lock:
            stored = v1.RiskDecision.model_validate(
                self.kube.create_custom("RiskDecision", decision.identity.namespace, manifest(obj))
            )
            return self._carry_out(stored)

    def resume(self) -> list[v1.RiskDecision]:
        """Finish every recorded decision a previous run left unfinished (after a crash)."""
        finished = []
        for body in self.kube.list_custom("RiskDecision"):
            obj = v1.RiskDecision.model_validate(body)
            status = obj.status or v1.RiskDecisionStatus()
            if status.phase in (
                v1.DecisionPhase.RECORDED,
                v1.DecisionPhase.EXECUTING,
                v1.DecisionPhase.AWAITING_APPROVAL,  # answered just before a crash
            ):
                log.info("resuming unfinished decision %s", key_of(obj))
                with self._lock:
                    finished.append(self._carry_out(obj))
        return finished

    def _carry_out(self, stored: v1.RiskDecision) -> v1.RiskDecision:
        key = key_of(stored)
        self._in_flight.add(key)
        try:
            final = self._carry_out_once(stored)
        finally:
            self._in_flight.discard(key)
        self._recorded[key] = len(final.status.actions) if final.status else 0
        return final

    def _carry_out_once(self, stored: v1.RiskDecision) -> v1.RiskDecision:
        namespace, name = key_of(stored).split("/", 1)
        link = self.decision_log.append(chain_payload(stored))
        status = stored.status or v1.RiskDecisionStatus()
        if status.chain is None:
            status = self._patch(namespace, name, {"chain": _chain(link), "phase": "Executing"})
        spec = stored.spec
        act = spec.disposition == Disposition.ACT.value
        recorded: list[v1.ActionOutcome] = list(status.actions)
        stop: tuple[v1.DecisionPhase, str] | None = None
        if recorded and _awaiting(recorded[-1]):
            answer = answered(status.approval, spec.actions[len(recorded) - 1], recorded[-1])
            if answer is None:
                return stored.model_copy(update={"status": status})  # still waiting
            recorded[-1], stop = answer
            status = self._patch(namespace, name, {"actions": _dump_list(recorded)})
        for action in spec.actions[len(recorded) :]:  # outcomes are recorded in action order
            if stop is not None:
                outcome = Outcome(v1.ActionPhase.SKIPPED, stop[1])
            elif act and action.type is ActionType.REQUIRE_APPROVAL:
                outcome = _ask(action, now=self.clock())
            elif act or action.type is ActionType.NOTIFY:
                outcome = self._run(action, stored)
            else:
                outcome = Outcome(v1.ActionPhase.SKIPPED, _why_not(spec.disposition))
            recorded.append(
                v1.ActionOutcome(
                    type=action.type,
                    phase=outcome.phase,
                    message=outcome.message,
                    changed=list(outcome.changed),
                    credentials=list(outcome.credentials),
                    allowed_operations=list(outcome.allowed_operations),
                    until=outcome.until,
                    at=self.clock(),
                )
            )
            status = self._patch(namespace, name, {"actions": _dump_list(recorded)})
            if self.on_outcome is not None:
                self.on_outcome(action.type, outcome.phase)
            if self.after_action is not None:
                self.after_action(action.type)
            if outcome.phase is v1.ActionPhase.PENDING:  # RequireApproval: wait for an answer
                status = self._patch(
                    namespace,
                    name,
                    {
                        "phase": v1.DecisionPhase.AWAITING_APPROVAL.value,
                        "approval": {"state": APPROVAL_PENDING},
                    },
                )
                waiting = stored.model_copy(update={"status": status})
                self._event(waiting)
                return waiting
        phase = stop[0] if stop is not None else _final_phase(act, recorded)
        status = self._patch(namespace, name, {"phase": phase.value})
        final = stored.model_copy(update={"status": status})
        self.book.put(f"{namespace}/{name}", blocks_of(final))
        self.clamps.put(f"{namespace}/{name}", clamps_of(final))
        self._event(final)
        return final

    def answer(self, key: str, *, state: str, by: str = "") -> v1.RiskDecision | None:
        """Record the answer to a decision awaiting approval and carry on from there.

        ``state`` is Approved, Denied or TimedOut. Returns None when the decision is gone or
        no longer waiting (answered already, released).
        """
        namespace, name = key.split("/", 1)
        with self._lock:
            body = self.kube.get_custom("RiskDecision", namespace, name)
            if body is None:
                return None
            obj = v1.RiskDecision.model_validate(body)
            status = obj.status or v1.RiskDecisionStatus()
            if status.phase is not v1.DecisionPhase.AWAITING_APPROVAL:
                return None
            approval: dict[str, Any] = {"state": state, "at": self.clock().isoformat()}
            if by:
                approval["by"] = by
            status = self._patch(namespace, name, {"approval": approval})
            return self._carry_out(obj.model_copy(update={"status": status}))

    def release(self, key: str, *, by: str = "") -> v1.RiskDecision | None:
        """Undo every reversible action ``key`` took, mark it Released and chain the release.

        Returns None when the decision is gone or already released. An outcome whose releaser
        fails keeps its phase (with the failure in its message) and the decision is not marked
        Released, so asking again retries only what is left.
        """
        namespace, name = key.split("/", 1)
        with self._lock:
            body = self.kube.get_custom("RiskDecision", namespace, name)
            if body is None:
                return None
            obj = v1.RiskDecision.model_validate(body)
            status = obj.status or v1.RiskDecisionStatus()
            if status.phase is v1.DecisionPhase.RELEASED:
                return None
            ctx = self._context()
            now = self.clock().replace(microsecond=0)
            outcomes: list[v1.ActionOutcome] = []
            failed = []
            for outcome in status.actions:
                releaser = RELEASERS.get(outcome.type)
                if outcome.phase is v1.ActionPhase.PENDING:  # released before an answer
                    outcome = outcome.model_copy(
                        update={"phase": v1.ActionPhase.SKIPPED, "message": "released", "at": now}
                    )
                elif outcome.phase is v1.ActionPhase.SUCCEEDED and releaser is not None:
                    try:
                        undone = releaser(ctx, outcome, obj)
                    except KubeError as exc:
                        undone = Outcome(v1.ActionPhase.FAILED, str(exc))
                    if undone.phase is v1.ActionPhase.RELEASED:
                        outcome = outcome.model_copy(
                            update={
                                "phase": v1.ActionPhase.RELEASED,
                                "message": undone.message,
                                "changed": [*outcome.changed, *undone.changed],
                                "at": now,
                            }
                        )
                    else:
                        failed.append(f"{outcome.type.value}: {undone.message}")
                outcomes.append(outcome)
            status = self._patch(namespace, name, {"actions": _dump_list(outcomes)})
            current = obj.model_copy(update={"status": status})
            if failed:
                log.warning("release of %s incomplete: %s", key, "; ".join(failed))
                self._event(current, reason="ReleaseFailed", detail="; ".join(failed))
                return current
            link = self.decision_log.append(release_payload(current, by=by, at=now))
            status = self._patch(
                namespace,
                name,
                {
                    "phase": v1.DecisionPhase.RELEASED.value,
                    "release": {"by": by, "at": now.isoformat(), "chain": _chain(link)},
                },
            )
            final = obj.model_copy(update={"status": status})
            self.book.put(key, blocks_of(final))
            self.clamps.put(key, clamps_of(final))
            self._event(final, reason="RiskDecisionReleased", detail=f"released by {by or '?'}")
            return final

    def retry_blocked(self, key: str) -> int:
        """Evict again the pods a PodDisruptionBudget refused (``pod ns/name: blocked`` in an
        outcome's ``changed``); returns how many went through, and records them."""
        namespace, name = key.split("/", 1)
        with self._lock:
            body = self.kube.get_custom("RiskDecision", namespace, name)
            if body is None:
                return 0
            obj = v1.RiskDecision.model_validate(body)
            status = obj.status or v1.RiskDecisionStatus()
            if status.phase is v1.DecisionPhase.RELEASED:
                return 0
            done = 0
            outcomes = []
            for outcome in status.actions:
                lines = []
                for line in outcome.changed:
                    pod = blocked_pod(line)
                    if pod is not None:
                        pod_namespace, _, pod_name = pod.partition("/")
                        try:
                            result = self.kube.evict(pod_namespace, pod_name)
                        except KubeError as exc:
                            log.warning("retrying eviction of %s: %s", pod, exc)
                            result = "blocked"
                        if result != "blocked":
                            done += 1
                            line = f"pod {pod}: {result} (retried at {self.clock().isoformat()})"
                    lines.append(line)
                outcomes.append(outcome.model_copy(update={"changed": lines}))
            if done:
                self._patch(namespace, name, {"actions": _dump_list(outcomes)})
                log.info("decision %s: %d blocked eviction(s) went through on retry", key, done)
            return done

    # --- actions ------------------------------------------------------------------------------

    def _run(self, action: v1.Action, obj: v1.RiskDecision) -> Outcome:
        handler = HANDLERS.get(action.type)
        if handler is None:
            return Outcome(
                v1.ActionPhase.SKIPPED,
                f"{action.type.value} is not carried out by this version of the operator; "
                "the decision is recorded",
            )
        try:
            return handler(self._context(), action, obj)
        except KubeError as exc:
            return Outcome(v1.ActionPhase.FAILED, str(exc))

    def _context(self) -> ActionContext:
        return ActionContext(
            kube=self.kube,
            blocks=self.book,
            clock=self.clock,
            policies=self.policies,
            post=self.post,
            inventory=self.inventory,
            baseline=self.baseline,
            clamps=self.clamps,
        )

    # --- records ------------------------------------------------------------------------------

    def _patch(self, namespace: str, name: str, status: Mapping[str, Any]) -> v1.RiskDecisionStatus:
        obj = self.kube.patch_custom_status("RiskDecision", namespace, name, status)
        return v1.RiskDecisionStatus.model_validate(obj.get("status") or {})

    def _event(
        self, obj: v1.RiskDecision, *, reason: str = "RiskDecision", detail: str = ""
    ) -> None:
        spec = obj.spec
        status = obj.status or v1.RiskDecisionStatus()
        done = ", ".join(f"{o.type.value}={o.phase.value}" for o in status.actions) or "none"
        top = spec.signals[0].type if spec.signals else "-"
        message = (
            f"{identity_of(obj)}: score {spec.score:g} ({spec.confidence.value}), band "
            f"{spec.band} (was {spec.previous_band or 'none'}), policy {spec.policy} "
            f"[{spec.mode.value}]; actions: {done}; top signal: {top}"
        )
        if detail:
            message = f"{detail}: {message}"
        ref = ObjectRef(
            api_version=v1.API_VERSION,
            kind="RiskDecision",
            namespace=spec.identity.namespace,
            name=str(obj.metadata["name"]),
            uid=str(obj.metadata.get("uid", "")),
        )
        warning = spec.disposition == Disposition.ACT.value and reason != "RiskDecisionReleased"
        self.kube.event(
            regarding=ref, reason=reason, message=message, warning=warning, now=self.clock()
        )


def _chain(link: Link) -> dict[str, Any]:
    return {
        "index": link.index,
        "hash": link.hash,
        "previousHash": link.previous_hash,
        "signature": link.signature,
        "keyId": link.key_id,
    }


def _dump_list(outcomes: Sequence[v1.ActionOutcome]) -> list[dict[str, Any]]:
    return [o.model_dump(by_alias=True, exclude_none=True, mode="json") for o in outcomes]


def _why_not(disposition: str) -> str:
    reasons = {
        Disposition.AUDIT.value: "policy is in Audit mode: recorded, not acted on",
        Disposition.PROTECTED.value: "identity is protected: never acted on",
        Disposition.EXEMPT.value: "identity has an active RiskException",
        Disposition.CIRCUIT_OPEN.value: "circuit breaker open: enforcement paused",
        Disposition.RATE_LIMITED.value: "cluster-wide action rate limit reached",
        Disposition.NO_CHANGE.value: "no escalation",
    }
    return reasons.get(disposition, disposition)


def blocked_pod(line: str) -> str | None:
    """``ns/name`` if an outcome's ``changed`` line records an eviction a PDB refused."""
    if line.startswith("pod ") and line.endswith(": blocked"):
        return line[len("pod ") : -len(": blocked")]
    return None


APPROVAL_PENDING = "Pending"
APPROVED = "Approved"
DENIED = "Denied"
TIMED_OUT = "TimedOut"


def _ask(action: v1.Action, *, now: datetime) -> Outcome:
    timeout = action.timeout or "0s"
    until = now + v1.parse_duration(timeout)
    return Outcome(
        v1.ActionPhase.PENDING,
        f"waiting for a RiskApproval until {until.isoformat()} (timeout {timeout}, then "
        f"{(action.on_timeout or v1.OnTimeout.EXPIRE).value})",
        until=until,
    )


def _awaiting(outcome: v1.ActionOutcome) -> bool:
    return outcome.type is ActionType.REQUIRE_APPROVAL and outcome.phase is v1.ActionPhase.PENDING


def answered(
    approval: v1.ApprovalState | None, action: v1.Action, pending: v1.ActionOutcome
) -> tuple[v1.ActionOutcome, tuple[v1.DecisionPhase, str] | None] | None:
    """The RequireApproval outcome once answered, and (phase, why) if the rest must not run.

    None while there is no answer yet.
    """
    if approval is None or approval.state == APPROVAL_PENDING:
        return None
    if approval.state == APPROVED:
        done = f"approved by {approval.by}"
        return pending.model_copy(update={"phase": v1.ActionPhase.SUCCEEDED, "message": done}), None
    if approval.state == DENIED:
        why = f"denied by {approval.by}"
        return (
            pending.model_copy(update={"phase": v1.ActionPhase.SKIPPED, "message": why}),
            (v1.DecisionPhase.DENIED, f"{why}: not carried out"),
        )
    on_timeout = action.on_timeout or v1.OnTimeout.EXPIRE
    why = f"no answer within {action.timeout}"
    if on_timeout is v1.OnTimeout.DENY:
        stop = (v1.DecisionPhase.DENIED, f"{why}: denied (onTimeout Deny), not carried out")
    elif on_timeout is v1.OnTimeout.EXPIRE:
        stop = (v1.DecisionPhase.EXPIRED, f"{why}: expired (onTimeout Expire), not carried out")
    else:
        stop = (
            v1.DecisionPhase.EXPIRED,
            f"{why}: escalated to the next band (onTimeout Escalate), not carried out here",
        )
    return pending.model_copy(update={"phase": v1.ActionPhase.SKIPPED, "message": stop[1]}), stop


def _final_phase(act: bool, outcomes: Sequence[v1.ActionOutcome]) -> v1.DecisionPhase:
    if not act:
        return v1.DecisionPhase.AUDITED
    if any(o.phase is v1.ActionPhase.FAILED for o in outcomes):
        return v1.DecisionPhase.FAILED
    return v1.DecisionPhase.ENFORCED
