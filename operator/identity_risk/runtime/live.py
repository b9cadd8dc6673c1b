"""The running operator's heart: audit batches in, decisions carried out, state kept.

Threads, and why:

* kopf's event loop (the caller's) feeds the inventory store, policies, exceptions, external
  signals and recorded decisions. It never parses audit events.
* The webhook server has its own loop for ``/authorize`` (on every API request's path: it only
  reads an immutable authorization state) and its own thread for ``/audit`` batches, which run
  the core under the engine lock.
* One executor thread carries decisions out in order, so API calls never block scoring.
* One background thread ticks decay and flushes ``WorkloadIdentityRisk`` status.

What the scorer needs to resume (each identity's baseline state, its live behavioural signals and
its band) is persisted in ``WorkloadIdentityRisk.status.scorerState`` and restored on start, so a
restart loses neither scores nor the hysteresis that keeps decisions from repeating.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import queue
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from identity_risk.api import v1alpha1 as v1
from identity_risk.domain import (
    ActionType,
    Confidence,
    Identity,
    Signal,
    SignalKind,
    signal_from_dict,
    signal_to_dict,
)
from identity_risk.enforce import admission, approval, ttl
from identity_risk.enforce.authorization import NO_OPINION, Request, review
from identity_risk.enforce.clamps import TokenClamps, clamps_of
from identity_risk.enforce.executor import (
    APPROVED,
    DENIED,
    TIMED_OUT,
    AuthorizationBook,
    Executor,
    blocked_pod,
    blocks_of,
)
from identity_risk.engine import DetectorSource, Engine, Evaluation
from identity_risk.ingest import AuditRecord, Deduplicator, ParseStats, parse_event_list
from identity_risk.ingest import BatchRejected as NotAnEventList
from identity_risk.kube import Kube, KubeError, ObjectRef, owner_reference
from identity_risk.metrics import Metrics
from identity_risk.policy import BandState, Decision, Disposition, OperatorSelf
from identity_risk.record.decisions import RELEASE_REQUESTED_BY, decision_name
from identity_risk.runtime.store import InventoryStore
from identity_risk.scoring.feedback import FEEDBACK, suppression_from
from identity_risk.signals import Detectors, IdentityStates
from identity_risk.signals.state import IdentityState
from identity_risk.webhook import AuditAck, BatchRejected, NotLeader

log = logging.getLogger(__name__)

SCORER_STATE_VERSION = 1
MAX_STATUS_SIGNALS = 10


def utcnow() -> datetime:
    return datetime.now(UTC)


class LiveSource:
    """The engine's ``SignalSource`` over the live inventory.

    A ``DetectorSource`` answers for one inventory snapshot; this one swaps it for a new one
    whenever the watched objects change, keeping the identity states (the baselines) across.
    """

    def __init__(
        self, *, store: InventoryStore, detectors: Detectors, states: IdentityStates
    ) -> None:
        self.store = store
        self.detectors = detectors
        self.states = states
        self._current: DetectorSource | None = None

    def _source(self, *, fresh: bool = False) -> DetectorSource:
        snapshot = self.store.snapshot(fresh=fresh)
        if self._current is None or self._current.inventory is not snapshot:
            self._current = DetectorSource(
                inventory=snapshot,
                objects=self.store.context_objects(),
                detectors=self.detectors,
                states=self.states,
            )
        return self._current

    def inventory(self) -> Any:
        """The current inventory snapshot."""
        return self._source().inventory

    def observe(self, record: AuditRecord) -> Sequence[Signal]:
        source = self._source()
        if record.pod_uid and source.inventory.pod_by_uid(record.pod_uid) is None:
            source = self._source(fresh=True)  # a pod newer than the snapshot: do not guess
        return source.observe(record)

    def privilege(self, identity: Identity) -> float:
        return self._source().privilege(identity)

    def posture(self, identity: Identity, *, now: datetime) -> Sequence[Signal]:
        return self._source().posture(identity, now=now)

    def context(self, identity: Identity) -> Any:
        return self._source().context(identity)


@dataclass(frozen=True, slots=True)
class LiveConfig:
    operator: OperatorSelf
    tick: timedelta = timedelta(seconds=15)
    flush: timedelta = timedelta(seconds=2)


class LiveOperator:
    """Everything between the watches, the webhooks and the API server writes."""

    def __init__(
        self,
        *,
        kube: Kube,
        store: InventoryStore,
        executor_factory: Callable[[AuthorizationBook], Executor],
        metrics: Metrics,
        config: LiveConfig,
        clock: Callable[[], datetime] = utcnow,
        clamps: TokenClamps | None = None,
        leading: bool = True,
    ) -> None:
        self.kube = kube
        self.store = store
        self.metrics = metrics
        self.config = config
        self.clock = clock
        self.book = AuthorizationBook()
        self.clamps = clamps if clamps is not None else TokenClamps()
        """Token-lifetime clamps in force (pod admission); the executor's, shared."""
        self.executor = executor_factory(self.book)
        self.states = IdentityStates()
        self.detectors = Detectors()
        self.source = LiveSource(store=store, detectors=self.detectors, states=self.states)
        self.engine = Engine(policies=(), source=self.source, operator=config.operator)
        self.stats = ParseStats()
        self.dedupe = Deduplicator()
        self._policies: dict[str, v1.IdentityRiskPolicy] = {}
        self._exceptions: dict[tuple[str, str], v1.RiskException] = {}
        self._lock = threading.RLock()
        self._dirty: dict[Identity, Evaluation] = {}
        self._enforcement: dict[Identity, tuple[v1.EnforcementState, str]] = {}
        self._work: queue.Queue[Decision | Callable[[], object] | None] = queue.Queue()
        self._awaiting: dict[str, datetime] = {}
        self._releasing: set[str] = set()
        self._blocked: set[str] = set()
        """Decisions with an eviction a PodDisruptionBudget refused (retried each tick)."""
        self._feedback: dict[Identity, dict[str, str]] = {}
        self._last: dict[Identity, Evaluation] = {}
        """Each identity's latest evaluation (to rewrite its WorkloadIdentityRisk status)."""
        self._breaker_open = False
        """Decisions awaiting approval (namespace/name) and when they time out."""
        self.leading = threading.Event()
        """Set while this replica leads (always, without leader election): only the leader reads
        audit batches, ticks, writes WorkloadIdentityRisk status and carries decisions out."""
        if leading:
            self.leading.set()
        self.metrics.leader.set(1 if leading else 0)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.ready = threading.Event()
        self.admission: dict[str, admission.AdmissionHandler] = {"riskapprovals": approval.stamp}
        self._seen_inventory: object = None
        self.admission["pods"] = ttl.admit_pod(self.clamps)

    # --- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        for name, target in (("executor", self._execute_loop), ("ticker", self._tick_loop)):
            thread = threading.Thread(target=target, name=f"identity-risk-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def start_leading(self) -> None:
        """This replica became the leader: take over from the persisted state, then act."""
        log.info("leading: resuming from the recorded state")
        self.leading.set()
        self.metrics.leader.set(1)
        self._work.put(self._take_over)

    def stop_leading(self) -> None:
        """Leadership lost: stop acting at once (queued work is dropped; the next leader resumes
        every unfinished decision from its record)."""
        log.warning("no longer leading: audit batches, ticks and actions stop here")
        self.leading.clear()
        self.metrics.leader.set(0)

    def _take_over(self) -> None:
        """On the executor thread: re-read what the previous leader persisted, then finish the
        decisions it left unfinished."""
        with self._lock:
            self._releasing.clear()
        try:
            for wir in self.kube.list_custom("WorkloadIdentityRisk"):
                self.restore(wir)
            for decision in self.kube.list_custom("RiskDecision"):
                self.observe_decision(decision)
        except KubeError as exc:
            log.warning("taking over: %s; trying again in 5 s", exc)
            retry = threading.Timer(5.0, self._retry_take_over)
            retry.daemon = True
            retry.start()
            return
        self.executor.resume()

    def _retry_take_over(self) -> None:
        if self.leading.is_set():
            self._work.put(self._take_over)

    def stop(self) -> None:
        self._stop.set()
        self._work.put(None)
        for thread in self._threads:
            thread.join(timeout=10)
        self._flush()

    # --- inputs from the watches --------------------------------------------------------------

    def set_policy(self, body: Mapping[str, Any], *, deleted: bool = False) -> str | None:
        """Take a policy from the watch; returns a problem to report, or None."""
        name = str((body.get("metadata") or {}).get("name", ""))
        with self._lock:
            if deleted:
                self._policies.pop(name, None)
            else:
                try:
                    self._policies[name] = v1.IdentityRiskPolicy.model_validate(body)
                except ValueError as exc:
                    self._policies.pop(name, None)
                    return f"policy {name} ignored: {exc}"
            self.engine.reconfigure(policies=sorted(self._policies.values(), key=lambda p: p.name))
        return None

    def policy(self, name: str) -> v1.IdentityRiskPolicy | None:
        return self._policies.get(name)

    def set_exception(self, body: Mapping[str, Any], *, deleted: bool = False) -> str | None:
        meta = body.get("metadata") or {}
        key = (str(meta.get("namespace", "")), str(meta.get("name", "")))
        with self._lock:
            if deleted:
                self._exceptions.pop(key, None)
            else:
                try:
                    self._exceptions[key] = v1.RiskException.model_validate(body)
                except ValueError as exc:
                    return f"exception {key[0]}/{key[1]} ignored: {exc}"
            self.engine.reconfigure(exceptions=list(self._exceptions.values()))
        return None

    def add_external_signal(self, body: Mapping[str, Any]) -> None:
        """An IdentitySignal object becomes a signal in its identity's ledger."""
        obj = v1.IdentitySignal.model_validate(body)
        spec = obj.spec
        namespace = str(obj.metadata.get("namespace", ""))
        observed = spec.observed_at or _created(obj.metadata) or self.clock()
        evidence = dict(spec.evidence) | {"source": spec.source}
        if spec.credential_id:
            evidence["credentialID"] = spec.credential_id
        signal = Signal(
            type=spec.type,
            identity=Identity(namespace=namespace, name=spec.service_account_name),
            kind=SignalKind.EXTERNAL,
            weight=spec.weight if spec.weight is not None else 40.0,
            confidence=Confidence.parse(spec.confidence.value),
            observed_at=observed,
            key=f"external:{obj.metadata.get('name', '')}",
            summary=spec.summary or f"{spec.type} reported by {spec.source}",
            evidence=evidence,
        )
        with self._lock:
            evaluations = self.engine.add_signals([signal], now=self.clock())
        self._handle(evaluations)

    def observe_decision(self, body: Mapping[str, Any], *, deleted: bool = False) -> None:
        """Every replica keeps the authorization state from the recorded decisions."""
        meta = body.get("metadata") or {}
        key = f"{meta.get('namespace', '')}/{meta.get('name', '')}"
        if deleted:
            self.book.release(key)
            self.clamps.release(key)
            with self._lock:
                self._awaiting.pop(key, None)
            return
        try:
            obj = v1.RiskDecision.model_validate(body)
        except ValueError:
            log.warning("RiskDecision %s could not be read; its blocks are not applied", key)
            return
        if not self.executor.stale(key, obj):  # else the executor keeps them current itself
            self.book.put(key, blocks_of(obj))
            self.clamps.put(key, clamps_of(obj))
        self._track_approval(key, obj)
        self._track_blocked(key, obj)
        self._maybe_release(key, obj)
        self._follow_enforcement(obj)
        # A recorded decision is the surest record of an identity's band: it is written before
        # any action, so after a crash the engine does not decide (and act) a second time.
        spec = obj.spec
        identity = Identity(spec.identity.namespace, spec.identity.service_account_name)
        with self._lock:
            known = self.engine.bands.get(identity)
            if known is None or known.since < spec.decided_at:
                self.engine.bands[identity] = BandState(band=spec.band, since=spec.decided_at)

    def _follow_enforcement(self, obj: v1.RiskDecision) -> None:
        """The WorkloadIdentityRisk's enforcement state follows its last decision's phase."""
        phase = obj.status.phase if obj.status else v1.DecisionPhase.RECORDED
        state = PHASE_ENFORCEMENT.get(phase)
        spec = obj.spec
        identity = Identity(spec.identity.namespace, spec.identity.service_account_name)
        name = str(obj.metadata.get("name", ""))
        with self._lock:
            known = self._enforcement.get(identity)
            if state is None or known is None or known[1] != name or known[0] is state:
                return
            self._enforcement[identity] = (state, name)
            last = self._last.get(identity)
            if last is not None:
                self._dirty.setdefault(identity, last)

    def _track_blocked(self, key: str, obj: v1.RiskDecision) -> None:
        status = obj.status or v1.RiskDecisionStatus()
        blocked = status.phase is not v1.DecisionPhase.RELEASED and any(
            blocked_pod(line) is not None for o in status.actions for line in o.changed
        )
        with self._lock:
            if blocked:
                self._blocked.add(key)
            else:
                self._blocked.discard(key)

    def _retry_blocked(self) -> None:
        """Evictions a PodDisruptionBudget refused are tried again on every tick."""
        with self._lock:
            keys = sorted(self._blocked)
        for key in keys:
            self._work.put(functools.partial(self.executor.retry_blocked, key))

    def _track_approval(self, key: str, obj: v1.RiskDecision) -> None:
        status = obj.status or v1.RiskDecisionStatus()
        pending = [o for o in status.actions if o.phase is v1.ActionPhase.PENDING and o.until]
        with self._lock:
            if status.phase is v1.DecisionPhase.AWAITING_APPROVAL and pending:
                self._awaiting[key] = pending[-1].until  # type: ignore[assignment]
            else:
                self._awaiting.pop(key, None)

    def _maybe_release(self, key: str, obj: v1.RiskDecision) -> None:
        """A release was asked for (``kubectl risk release``): carry it out once."""
        by = (obj.metadata.get("annotations") or {}).get(RELEASE_REQUESTED_BY)
        phase = obj.status.phase if obj.status else v1.DecisionPhase.RECORDED
        with self._lock:
            if by is None or phase is v1.DecisionPhase.RELEASED:
                self._releasing.discard(key)
                return
            if key in self._releasing:
                return
            self._releasing.add(key)
        log.info("decision %s: release requested by %s", key, by)
        self._work.put(functools.partial(self._release, key, by=str(by)))

    def _release(self, key: str, *, by: str) -> None:
        try:
            self.executor.release(key, by=by)
        finally:
            with self._lock:
                self._releasing.discard(key)  # a failed release is retried on the next change

    def on_approval(self, body: Mapping[str, Any]) -> None:
        """A new RiskApproval: judged and applied on the executor thread, in order."""
        if (body.get("status") or {}).get("accepted") is not None:
            return  # already judged (a restart's initial listing)
        self._work.put(lambda: self._judge_approval(body))

    def _judge_approval(self, body: Mapping[str, Any]) -> None:
        try:
            obj = v1.RiskApproval.model_validate(body)
        except ValueError as exc:
            log.warning(
                "RiskApproval %s ignored: %s", (body.get("metadata") or {}).get("name"), exc
            )
            return
        namespace = str(obj.metadata.get("namespace", ""))
        name = str(obj.metadata.get("name", ""))
        found = self.kube.get_custom("RiskDecision", namespace, obj.spec.decision)
        decision = v1.RiskDecision.model_validate(found) if found is not None else None
        policy = self.policy(decision.spec.policy) if decision is not None else None
        judgement = approval.judge(obj, decision=decision, policy=policy)
        approver = approval.approver_of(obj)
        status: dict[str, Any] = {"accepted": judgement.accepted, "message": judgement.message}
        if approver is not None:
            status |= {"approvedBy": approver.user, "groups": list(approver.groups)}
        self.kube.patch_custom_status("RiskApproval", namespace, name, status)
        ref = ObjectRef(
            api_version=v1.API_VERSION,
            kind="RiskApproval",
            namespace=namespace,
            name=name,
            uid=str(obj.metadata.get("uid", "")),
        )
        self.kube.event(
            regarding=ref,
            reason="ApprovalAccepted" if judgement.accepted else "ApprovalRefused",
            message=judgement.message,
            warning=not judgement.accepted,
            now=self.clock(),
        )
        log.info("RiskApproval %s/%s: %s", namespace, name, judgement.message)
        if judgement.accepted and approver is not None:
            state = APPROVED if obj.spec.verdict is v1.Verdict.APPROVE else DENIED
            self.executor.answer(f"{namespace}/{obj.spec.decision}", state=state, by=approver.user)

    def _time_out_approvals(self) -> None:
        now = self.clock()
        with self._lock:
            due = [key for key, until in self._awaiting.items() if until <= now]
            for key in due:
                del self._awaiting[key]
        for key in due:
            log.info("decision %s: no answer to its approval in time", key)
            self._work.put(functools.partial(self._time_out, key))

    def _time_out(self, key: str) -> None:
        """No answer in time: the decision's onTimeout happens (Escalate: a new decision)."""
        final = self.executor.answer(key, state=TIMED_OUT)
        if final is None or final.status is None:
            return
        spec = final.spec
        waited = next(
            (a for a, o in zip(spec.actions, final.status.actions, strict=False)
             if a.type is ActionType.REQUIRE_APPROVAL),
            None,
        )  # fmt: skip
        if waited is None or waited.on_timeout is not v1.OnTimeout.ESCALATE:
            return
        policy = self.policy(spec.policy)
        identity = Identity(spec.identity.namespace, spec.identity.service_account_name)
        now = self.clock()
        with self._lock:
            current = self.engine.evaluate(identity, now=now)
            if current is None or policy is None:
                return
            base = dataclasses.replace(current.decision, band=spec.band)
            why = (
                f"no answer to RequireApproval of {key} within {waited.timeout}: escalated "
                f"from band {spec.band} (onTimeout Escalate)"
            )
            decision = approval.escalated(base, policy, now=now, why=why)
            if decision is None:
                log.info("decision %s: no band above %s to escalate to", key, spec.band)
                return
            self.engine.bands[identity] = decision.band_state
        self._handle([dataclasses.replace(current, decision=decision)])

    def observe_feedback(self, body: Mapping[str, Any]) -> None:
        """confirm-compromised / dismiss on a WorkloadIdentityRisk: re-score with the verdict."""
        meta = body.get("metadata") or {}
        identity = Identity(str(meta.get("namespace", "")), str(meta.get("name", "")))
        notes = {k: v for k, v in (meta.get("annotations") or {}).items() if k in FEEDBACK}
        now = self.clock()
        with self._lock:
            if self._feedback.get(identity, {}) == notes:
                return  # nothing new (our own status writes come back through the watch)
            self._feedback[identity] = notes
            feedback = suppression_from(notes, now=now)
            if feedback is None:
                self.engine.suppressions.pop(identity, None)
            else:
                self.engine.suppressions[identity] = feedback
            evaluation = self.engine.evaluate(identity, now=now)
        log.info("feedback on %s: %s", identity, feedback)
        if evaluation is not None:
            self._handle([evaluation])

    def restore(self, body: Mapping[str, Any]) -> None:
        """Resume an identity's scorer state from its WorkloadIdentityRisk status."""
        status = body.get("status") or {}
        saved = status.get("scorerState") or {}
        if saved.get("version") != SCORER_STATE_VERSION:
            return
        try:
            state = IdentityState.from_dict(saved["state"])
            signals = [signal_from_dict(s) for s in saved.get("signals", [])]
            band = saved.get("band") or {}
        except (KeyError, ValueError, TypeError) as exc:
            name = (body.get("metadata") or {}).get("name")
            log.warning("scorer state of %s could not be restored: %s", name, exc)
            return
        with self._lock:
            self.states.put(state)
            for signal in signals:
                self.engine.ledger.observe(signal)
            if band.get("since"):
                self.engine.bands[state.identity] = BandState(
                    band=band.get("band"), since=datetime.fromisoformat(band["since"])
                )

    # --- the audit path -----------------------------------------------------------------------

    def on_audit(self, body: bytes) -> AuditAck:
        """One audit webhook batch: parse, score, decide. Malformed events are counted, never
        raised; a body that is not an EventList is refused. Only the leader reads batches."""
        if not self.leading.is_set():
            raise NotLeader()
        stats = ParseStats()
        try:
            records = parse_event_list(body, stats=stats, dedupe=self.dedupe)
        except NotAnEventList as exc:
            raise BatchRejected("not_an_event_list", str(exc)) from None
        self.feed(records)
        self.stats.merge(stats)
        return AuditAck(
            accepted=stats.accepted,
            duplicates=stats.duplicates,
            skipped=stats.skipped_stages,
            rejected=dict(stats.rejected),
        )

    def feed(self, records: Iterable[AuditRecord]) -> None:
        if not self.leading.is_set():
            return  # a follower's audit log file: the leader reads the stream, and scores it
        evaluations: list[Evaluation] = []
        with self._lock:
            for record in records:
                evaluations.extend(self.engine.observe(record))
        self._handle(evaluations)

    def mutate(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """``/mutate``: the admission handler registered for the request's resource."""
        return admission.review(body, self.admission)

    def baseline(self, identity: Identity) -> frozenset[str]:
        """The identity's learned operations, copied under the engine lock."""
        with self._lock:
            state = self.states.find(identity)
            return frozenset(state.operations) if state is not None else frozenset()

    def authorize(self, body: Mapping[str, Any]) -> dict[str, Any]:
        try:
            request = Request.from_review(body)
        except ValueError:
            return NO_OPINION.response(body)
        return review(request, self.book.state, now=self.clock()).response(body)

    # --- decisions ----------------------------------------------------------------------------

    def _handle(self, evaluations: Iterable[Evaluation]) -> None:
        leading = self.leading.is_set()
        for ev in evaluations:
            decision = ev.decision
            with self._lock:
                self._last[decision.identity] = ev
                if not leading:  # a follower neither writes status nor acts
                    continue
                self._dirty[decision.identity] = ev
            if decision.changed_band or decision.actions:
                self.metrics.decisions.labels(
                    band=decision.band or "none", mode=decision.mode.value
                ).inc()
                if decision.escalated:
                    with self._lock:
                        self._enforcement[decision.identity] = (
                            _enforcement(decision),
                            decision_name(decision),
                        )
                    log.info(
                        "decision: %s score %s (%s) -> band %s [%s, %s]",
                        decision.identity,
                        decision.score,
                        decision.confidence.label,
                        decision.band,
                        decision.mode.value,
                        decision.disposition.value,
                    )
                    self._work.put(decision)
            if decision.actions:
                self._breaker(decision)

    def _breaker(self, decision: Decision) -> None:
        """Gauge and Event when the circuit breaker opens or closes (decisions that would act)."""
        tripped = decision.disposition is Disposition.CIRCUIT_OPEN
        self.metrics.circuit_breaker_open.set(1 if tripped else 0)
        self.metrics.enforcement_paused.set(1 if tripped else 0)
        with self._lock:
            changed, self._breaker_open = tripped != self._breaker_open, tripped
        if not changed:
            return
        why = decision.reasons[-1] if tripped and decision.reasons else "enforcement resumed"
        message = f"{why} (policy {decision.policy}; {decision.identity} entered {decision.band})"
        log.warning("circuit breaker %s: %s", "open" if tripped else "closed", message)
        policy = self._policies.get(decision.policy or "")
        ref = ObjectRef(
            api_version=v1.API_VERSION,
            kind="IdentityRiskPolicy",
            namespace="",
            name=decision.policy or "",
            uid=str(policy.metadata.get("uid", "")) if policy is not None else "",
        )
        self._work.put(
            functools.partial(
                self.kube.event,
                regarding=ref,
                reason="CircuitBreakerOpen" if tripped else "CircuitBreakerClosed",
                message=message,
                warning=tripped,
                now=self.clock(),
            )
        )

    def _execute_loop(self) -> None:
        while True:
            decision = self._work.get()
            if decision is None:
                return
            if not self.leading.is_set():
                continue  # a follower never acts; a new leader resumes from the records
            if not isinstance(decision, Decision):
                try:
                    decision()  # an approval's answer, a timeout, a release
                except Exception:
                    log.exception("work item failed")
                continue
            sa = self.source.inventory().service_account(decision.identity)
            try:
                self.executor.execute(decision, service_account_uid=sa.uid if sa else "")
            except Exception:
                log.exception("decision for %s could not be carried out", decision.identity)

    def _refresh_inventory(self) -> None:
        """When the watched objects changed: re-read posture, forget deleted identities."""
        inventory = self.source.inventory()
        if inventory is self._seen_inventory:
            return
        self._seen_inventory = inventory
        with self._lock:
            self.engine.refresh_posture()
            if self.store.synced.is_set():
                self.states.retain(inventory.identities())

    def _tick_loop(self) -> None:
        next_tick = self.clock() + self.config.tick
        while not self._stop.wait(self.config.flush.total_seconds()):
            if not self.leading.is_set():
                continue
            self._refresh_inventory()
            self._time_out_approvals()
            now = self.clock()
            if now >= next_tick:
                with self._lock:
                    evaluations = self.engine.tick(now=now)
                self._handle(evaluations)
                self._retry_blocked()
                next_tick = now + self.config.tick
            self._flush()

    # --- WorkloadIdentityRisk -----------------------------------------------------------------

    def _flush(self) -> None:
        with self._lock:
            dirty, self._dirty = self._dirty, {}
            payloads = [(ev, self._scorer_state(ev.decision.identity)) for ev in dirty.values()]
        for ev, scorer_state in payloads:
            try:
                self._write_wir(ev, scorer_state)
            except KubeError as exc:
                log.warning(
                    "could not update WorkloadIdentityRisk of %s: %s", ev.decision.identity, exc
                )
                with self._lock:
                    self._dirty.setdefault(ev.decision.identity, ev)

    def _scorer_state(self, identity: Identity) -> dict[str, Any]:
        state = self.states.find(identity)
        band = self.engine.bands.get(identity)
        behavioural = [
            signal_to_dict(s)
            for s in self.engine.ledger.signals(identity)
            if s.kind is not SignalKind.POSTURE
        ]
        return {
            "version": SCORER_STATE_VERSION,
            "state": state.to_dict() if state is not None else None,
            "signals": behavioural,
            "band": {"band": band.band, "since": band.since.isoformat()} if band else {},
        }

    def _write_wir(self, ev: Evaluation, scorer_state: Mapping[str, Any]) -> None:
        decision = ev.decision
        identity = decision.identity
        name = identity.name
        enforcement, last_decision = self._enforcement.get(
            identity, (v1.EnforcementState.NONE, None)
        )
        if self.kube.get_custom("WorkloadIdentityRisk", identity.namespace, name) is None:
            inventory = self.source.inventory()
            sa = inventory.service_account(identity)
            meta: dict[str, Any] = {"name": name, "namespace": identity.namespace}
            if sa is not None and sa.uid:
                meta["ownerReferences"] = [
                    owner_reference(
                        {
                            "apiVersion": "v1",
                            "kind": "ServiceAccount",
                            "metadata": {"name": sa.name, "uid": sa.uid},
                        }
                    )
                ]
            self.kube.create_custom(
                "WorkloadIdentityRisk",
                identity.namespace,
                {
                    "apiVersion": v1.API_VERSION,
                    "kind": "WorkloadIdentityRisk",
                    "metadata": meta,
                    "spec": {"serviceAccountName": name},
                },
            )
        status = v1.WorkloadIdentityRiskStatus(
            score=decision.score,
            band=decision.band,
            confidence=v1.ConfidenceLevel(decision.confidence.label),
            policy=decision.policy,
            owner=decision.owner or None,
            enforcement=enforcement,
            last_decision=last_decision,
            last_evaluated=decision.at,
            signals=[
                v1.ContributingSignal(
                    type=c.signal.type,
                    points=c.points,
                    confidence=v1.ConfidenceLevel(c.signal.confidence.label),
                    summary=c.signal.summary,
                    evidence=dict(c.signal.evidence),
                    owasp_nhi=c.signal.owasp_nhi,
                    nist_csf=c.signal.nist_csf,
                    observed_at=c.signal.observed_at,
                )
                for c in decision.evidence[:MAX_STATUS_SIGNALS]
            ],
            scorer_state=dict(scorer_state),
        )
        self.kube.patch_custom_status(
            "WorkloadIdentityRisk",
            identity.namespace,
            name,
            status.model_dump(by_alias=True, exclude_none=True, mode="json"),
        )


PHASE_ENFORCEMENT = {
    v1.DecisionPhase.AWAITING_APPROVAL: v1.EnforcementState.PENDING_APPROVAL,
    v1.DecisionPhase.DENIED: v1.EnforcementState.NONE,
    v1.DecisionPhase.EXPIRED: v1.EnforcementState.NONE,
    v1.DecisionPhase.RELEASED: v1.EnforcementState.RELEASED,
}
"""Decision phases that change what the identity's enforcement state says."""


def _enforcement(decision: Decision) -> v1.EnforcementState:
    if decision.disposition is Disposition.ACT:
        return v1.EnforcementState.ENFORCED
    if decision.disposition is Disposition.AUDIT:
        return v1.EnforcementState.AUDIT_ONLY
    if decision.disposition in (Disposition.CIRCUIT_OPEN, Disposition.RATE_LIMITED):
        return v1.EnforcementState.PAUSED
    return v1.EnforcementState.NONE


def _created(metadata: Mapping[str, Any]) -> datetime | None:
    stamp = metadata.get("creationTimestamp")
    if not stamp:
        return None
    return datetime.fromisoformat(str(stamp).replace("Z", "+00:00"))
