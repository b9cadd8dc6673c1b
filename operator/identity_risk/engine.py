"""The core's one loop: audit records in, decisions out. Shared by the operator, simulate and
the benchmark, so that what ``kubectl risk simulate`` previews is what the operator will do.

The engine owns the mutable state that sits between pure stages: the signal ledger, each
identity's band (for hysteresis) and the recent decisions (for the cluster-wide safeguards).
Everything it decides is computed by the pure functions of ``scoring`` and ``policy``; time is
always the event's own timestamp or a ``now`` passed in, never the wall clock.

Scoring runs only when an identity's evidence changes (a new fact, or a newer observation of a
known one) and on ``tick`` (decay); the vast majority of audit events produce no signal and cost
only the detectors.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from identity_risk.api.v1alpha1 import IdentityRiskPolicy, RiskException
from identity_risk.domain import Identity, Signal
from identity_risk.ingest import AuditRecord
from identity_risk.policy import (
    BandState,
    Decision,
    IdentityContext,
    OperatorSelf,
    active_exceptions,
    apply_safeguards,
    decide,
    exempt_signal_types,
    history_window,
    is_break_glass,
    scoring_config,
    select_policy,
)
from identity_risk.scoring import (
    Observation,
    Score,
    ScoringConfig,
    SignalLedger,
    Suppression,
    score_identity,
)
from identity_risk.signals import (
    Detectors,
    IdentityStates,
    Inventory,
    PrivilegeLevel,
    privilege_level,
)

DEFAULT_TICK = timedelta(minutes=5)
REFRESH_INTERVAL = timedelta(seconds=30)
"""Re-observations of an already-live fact re-evaluate an identity at most this often."""


class SignalSource(Protocol):
    """What the engine needs from ``signals``: detection per record, and privilege per identity."""

    def observe(self, record: AuditRecord) -> Sequence[Signal]:
        """Update the identity's state with ``record`` and return the signals it raises."""
        ...

    def privilege(self, identity: Identity) -> float:
        """What the identity could do, in [0, 1] (0: nothing notable, 1: cluster-admin)."""
        ...

    def posture(self, identity: Identity, *, now: datetime) -> Sequence[Signal]:
        """The identity's posture signals in the current inventory snapshot."""
        ...

    def context(self, identity: Identity) -> IdentityContext:
        """Labels and owner of the identity, from the current inventory snapshot."""
        ...


OWNER_ANNOTATION = "identityrisk.dev/owner"


class DetectorSource:
    """The built-in ``SignalSource``: helper detectors, identity states and one inventory.

    Namespace labels and ServiceAccount labels (for policy selectors) are read from the same
    objects the inventory is built from; the owner comes from the ``identityrisk.dev/owner``
    annotation of the ServiceAccount, else of its namespace.
    """

    __slots__ = (
        "_break_glass",
        "_contexts",
        "_detectors",
        "_ns",
        "_privilege",
        "_sa",
        "inventory",
        "states",
    )

    def __init__(
        self,
        *,
        inventory: Inventory,
        objects: Iterable[Mapping[str, Any]] = (),
        detectors: Detectors | None = None,
        states: IdentityStates | None = None,
    ) -> None:
        self.inventory = inventory
        self._detectors = detectors or Detectors()
        self.states = states if states is not None else IdentityStates()
        self._privilege: dict[Identity, float] = {}
        self._contexts: dict[Identity, IdentityContext] = {}
        self._ns: dict[str, tuple[Mapping[str, str], str]] = {}
        self._sa: dict[Identity, tuple[Mapping[str, str], str]] = {}
        self._break_glass: dict[str, str] = {}  # namespace or namespace/name -> where it is set
        for obj in _flatten(objects):
            meta = obj.get("metadata") or {}
            labels = dict(meta.get("labels") or {})
            owner = str((meta.get("annotations") or {}).get(OWNER_ANNOTATION, ""))
            glass = is_break_glass(meta.get("annotations"))
            if obj.get("kind") == "Namespace":
                self._ns[str(meta.get("name", ""))] = (labels, owner)
                if glass:
                    self._break_glass[str(meta.get("name", ""))] = f"Namespace {meta.get('name')}"
            elif obj.get("kind") == "ServiceAccount":
                ident = Identity(
                    namespace=str(meta.get("namespace", "")), name=str(meta.get("name", ""))
                )
                self._sa[ident] = (labels, owner)
                if glass:
                    self._break_glass[str(ident)] = f"ServiceAccount {ident}"

    def observe(self, record: AuditRecord) -> Sequence[Signal]:
        return self._detectors.observe(record, self.states, self.inventory)

    def privilege(self, identity: Identity) -> float:
        p = self._privilege.get(identity)
        if p is None:
            level = privilege_level(identity, self.inventory)
            p = self._privilege[identity] = level / max(PrivilegeLevel)
        return p

    def posture(self, identity: Identity, *, now: datetime) -> Sequence[Signal]:
        return self._detectors.posture(
            identity, self.inventory, now=now, state=self.states.find(identity)
        )

    def context(self, identity: Identity) -> IdentityContext:
        ctx = self._contexts.get(identity)
        if ctx is None:
            ns_labels, ns_owner = self._ns.get(identity.namespace, ({}, ""))
            sa_labels, sa_owner = self._sa.get(identity, ({}, ""))
            ctx = self._contexts[identity] = IdentityContext(
                identity=identity,
                namespace_labels=ns_labels,
                service_account_labels=sa_labels,
                pod_labels=tuple(p.labels for p in self.inventory.pods_of(identity)),
                owner=sa_owner or ns_owner,
                break_glass=self._break_glass.get(str(identity))
                or self._break_glass.get(identity.namespace, ""),
            )
        return ctx


def build_source(
    objects: Sequence[Mapping[str, Any]],
    *,
    pod_cidrs: Iterable[str] = (),
    node_cidrs: Iterable[str] = (),
    detectors: Detectors | None = None,
) -> DetectorSource:
    """The built-in source over Kubernetes objects (as JSON dicts)."""
    inventory = Inventory.from_objects(objects, pod_cidrs=pod_cidrs, node_cidrs=node_cidrs)
    return DetectorSource(inventory=inventory, objects=objects, detectors=detectors)


def _flatten(objects: Iterable[Mapping[str, Any]]) -> Iterator[Mapping[str, Any]]:
    for obj in objects:
        items = obj.get("items")
        if isinstance(items, list) and str(obj.get("kind", "")).endswith("List"):
            yield from (i for i in items if isinstance(i, Mapping))
        else:
            yield obj


@dataclass(frozen=True, slots=True, kw_only=True)
class Evaluation:
    """A decision together with the score that produced it."""

    decision: Decision
    score: Score


class Engine:
    """Replays audit records through detect → ledger → score → decide → safeguards."""

    def __init__(
        self,
        *,
        policies: Sequence[IdentityRiskPolicy],
        source: SignalSource,
        exceptions: Sequence[RiskException] = (),
        operator: OperatorSelf = OperatorSelf(),  # noqa: B008 - frozen
        suppressions: Mapping[Identity, Suppression] | None = None,
        ledger: SignalLedger | None = None,
    ) -> None:
        self.policies = tuple(policies)
        self.source = source
        self.exceptions = tuple(exceptions)
        self.operator = operator
        self.suppressions = dict(suppressions or {})
        self.ledger = ledger if ledger is not None else SignalLedger()
        self.bands: dict[Identity, BandState] = {}
        self._recent: deque[Decision] = deque()
        self._configs: dict[str, ScoringConfig] = {}
        self._posture_loaded: set[Identity] = set()
        self._evaluated_at: dict[Identity, float] = {}
        self.refresh_interval = REFRESH_INTERVAL.total_seconds()
        self._history = max(
            (history_window(p.spec.safeguards) for p in self.policies), default=timedelta(0)
        )

    def reconfigure(
        self,
        *,
        policies: Sequence[IdentityRiskPolicy] | None = None,
        exceptions: Sequence[RiskException] | None = None,
    ) -> None:
        """Take new policies or exceptions (the operator's watches call this on every change)."""
        if policies is not None:
            self.policies = tuple(policies)
            self._configs.clear()
            self._history = max(
                (history_window(p.spec.safeguards) for p in self.policies), default=timedelta(0)
            )
        if exceptions is not None:
            self.exceptions = tuple(exceptions)

    def refresh_posture(self, identities: Iterable[Identity] | None = None) -> None:
        """Posture is read from the source once per identity; call this when the inventory
        changes (all identities, or the ones named) so the next evaluation reads it again."""
        if identities is None:
            self._posture_loaded.clear()
        else:
            self._posture_loaded.difference_update(identities)

    # --- inputs -------------------------------------------------------------------------------

    def observe(self, record: AuditRecord) -> list[Evaluation]:
        """Feed one audit record; returns an evaluation per identity whose evidence changed."""
        signals = self.source.observe(record)
        if not signals:
            return []
        changed: list[Identity] = []
        for s in signals:
            seen = self.ledger.observe(s)
            if not seen or s.identity in changed:
                continue
            # A replayed token seen a thousand times a second is one fact refreshed a thousand
            # times: re-deciding on each would let an attacker buy our CPU. A refresh (same fact,
            # same weight and confidence) re-evaluates at most once per REFRESH_INTERVAL; the
            # score it would show differs only by decay, which ``tick`` catches up on.
            if seen is Observation.REFRESHED:
                last = self._evaluated_at.get(s.identity)
                if last is not None and record.epoch - last < self.refresh_interval:
                    continue
            changed.append(s.identity)
        out = []
        for identity in changed:
            ev = self.evaluate(identity, now=record.timestamp)
            if ev is not None:
                self._evaluated_at[identity] = record.epoch
                out.append(ev)
        return out

    def add_signals(self, signals: Iterable[Signal], *, now: datetime) -> list[Evaluation]:
        """Feed signals from elsewhere (IdentitySignal resources, tests)."""
        changed: list[Identity] = []
        for s in signals:
            if self.ledger.observe(s) and s.identity not in changed:
                changed.append(s.identity)
        return [ev for i in changed if (ev := self.evaluate(i, now=now)) is not None]

    def tick(self, *, now: datetime) -> list[Evaluation]:
        """Re-evaluate every identity with live evidence at ``now`` (decay, step-downs)."""
        out = []
        for identity in sorted(set(self.ledger.identities()) | set(self.bands)):
            ev = self.evaluate(identity, now=now)
            if ev is None:
                continue
            out.append(ev)
            if (
                ev.score.score == 0
                and not self.ledger.signals(identity)
                and self._at_floor(ev.decision)
            ):
                # Nothing left to decay or step down from: stop ticking this identity.
                self.bands.pop(identity, None)
                self._evaluated_at.pop(identity, None)
        self.ledger.prune(now=now, half_life=self._longest_half_life())
        return out

    # --- the chain ----------------------------------------------------------------------------

    def evaluate(self, identity: Identity, *, now: datetime) -> Evaluation | None:
        """Score and decide for one identity at ``now``; None if no policy covers it."""
        ctx = self.source.context(identity)
        policy = select_policy(self.policies, ctx=ctx)
        if policy is None:
            return None
        if identity not in self._posture_loaded:
            self._posture_loaded.add(identity)
            self.ledger.set_posture(identity, self.source.posture(identity, now=now))
        active = active_exceptions(self.exceptions, ctx=ctx, now=now)
        signals: Iterable[Signal] = self.ledger.signals(identity)
        if active:
            exempt = exempt_signal_types(active)
            signals = [s for s in signals if s.type not in exempt]
        score = score_identity(
            identity=identity,
            signals=signals,
            now=now,
            config=self._config(policy),
            privilege=self.source.privilege(identity),
            suppression=self.suppressions.get(identity),
        )
        decision = decide(
            ctx=ctx,
            score=score,
            policy=policy,
            previous=self.bands.get(identity),
            exceptions=active,
            operator=self.operator,
            now=now,
        )
        decision = apply_safeguards(
            decision, recent=self._recent, safeguards=policy.spec.safeguards, now=now
        )
        self.bands[identity] = decision.band_state
        if decision.escalated or decision.actions:
            self._recent.append(decision)
            horizon = now - self._history
            while self._recent and self._recent[0].at <= horizon:
                self._recent.popleft()
        return Evaluation(decision=decision, score=score)

    def _at_floor(self, decision: Decision) -> bool:
        """Below every band, or in a band starting at 0 (hysteresis holds nothing higher)."""
        if decision.band is None:
            return True
        policy = next((p for p in self.policies if p.name == decision.policy), None)
        return (
            policy is not None
            and policy.spec.bands[0].name == decision.band
            and (policy.spec.bands[0].min_score == 0)
        )

    def _config(self, policy: IdentityRiskPolicy) -> ScoringConfig:
        config = self._configs.get(policy.name)
        if config is None:
            config = self._configs[policy.name] = scoring_config(policy.spec)
        return config

    def _longest_half_life(self) -> timedelta:
        return max((self._config(p).half_life for p in self.policies), default=DEFAULT_TICK)


ProgressCallback = Callable[[int], None]


def replay(
    records: Iterable[AuditRecord],
    *,
    engine: Engine,
    tick: timedelta = DEFAULT_TICK,
    on_evaluation: Callable[[Evaluation], None] | None = None,
    on_progress: ProgressCallback | None = None,
    progress_every: int = 100_000,
) -> int:
    """Feed ``records`` (in time order) through ``engine``, ticking decay every ``tick`` of
    event time. Returns how many records were processed. Callbacks receive every evaluation and,
    every ``progress_every`` records, the running count (the caller owns the clock)."""
    n = 0
    step = tick.total_seconds()
    next_tick = float("-inf")
    last: AuditRecord | None = None
    observe = engine.observe  # the hot loop: one bound call per record
    for record in records:
        if record.epoch >= next_tick:
            if last is not None:
                _emit(engine.tick(now=record.timestamp), on_evaluation)
            next_tick = record.epoch + step
        evaluations = observe(record)
        if evaluations:
            _emit(evaluations, on_evaluation)
        last = record
        n += 1
        if on_progress is not None and n % progress_every == 0:
            on_progress(n)
    if last is not None:
        _emit(engine.tick(now=last.timestamp), on_evaluation)
    if on_progress is not None:
        on_progress(n)
    return n


def _emit(
    evaluations: Iterable[Evaluation], on_evaluation: Callable[[Evaluation], None] | None
) -> None:
    if on_evaluation is not None:
        for ev in evaluations:
            on_evaluation(ev)
