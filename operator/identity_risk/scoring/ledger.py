"""The live signals of every identity, one observation per fact, bounded in memory.

Scoring is a pure function of a set of signals; something has to hold that set between events.
The ledger is that something: it refreshes re-observed facts in place (so a replayed token seen a
thousand times is one signal, not a thousand), replaces posture wholesale on every inventory
snapshot (posture is state, not an event), and forgets evidence that has decayed to noise or
that exceeds the per-identity bound, so memory stays proportional to the number of identities.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import replace
from datetime import datetime, timedelta

from identity_risk.domain import Identity, Signal, SignalKind
from identity_risk.scoring.score import SignalID, decay_factor

DEFAULT_MAX_SIGNALS_PER_IDENTITY = 64


class Observation(enum.IntEnum):
    """What observing a signal changed. Falsy only for ``NOTHING``."""

    NOTHING = 0
    REFRESHED = 1
    """A known fact seen again, later (as strong or weaker): only its decay restarts."""
    NEW = 2
    """A fact not live before, or one whose weight or confidence changed."""


NOISE_POINTS = 0.5
"""Below this many decayed points a behavioural signal is forgotten by ``prune``."""


class SignalLedger:
    """Mutable store of live signals keyed by identity, then by fact ``(type, key)``."""

    __slots__ = ("_by_identity", "_max")

    def __init__(self, *, max_signals_per_identity: int = DEFAULT_MAX_SIGNALS_PER_IDENTITY) -> None:
        if max_signals_per_identity < 1:
            raise ValueError("max_signals_per_identity must be at least 1")
        self._by_identity: dict[Identity, dict[SignalID, Signal]] = {}
        self._max = max_signals_per_identity

    def observe(self, signal: Signal) -> Observation:
        """Record one observation and say what it changed (falsy when nothing)."""
        facts = self._by_identity.setdefault(signal.identity, {})
        sid = (signal.type, signal.key)
        prev = facts.get(sid)
        if prev is not None and (
            prev.observed_at > signal.observed_at
            or (prev.observed_at == signal.observed_at and prev.weight >= signal.weight)
        ):
            return Observation.NOTHING
        outcome = Observation.NEW
        if prev is not None and (prev.confidence, prev.weight) > (signal.confidence, signal.weight):
            # A weaker sighting of a fact already proven (the replayed token again, after its pod
            # is gone and the detector can no longer tell as much) keeps the stronger evidence
            # alive; it must not make the identity look safer than before.
            signal = replace(prev, observed_at=signal.observed_at)
        if prev is not None:
            del facts[sid]  # re-insert so dict order stays "least recently observed first"
            if prev.weight == signal.weight and prev.confidence == signal.confidence:
                outcome = Observation.REFRESHED
        facts[sid] = signal
        if len(facts) > self._max:
            self._evict_one(facts)
        return outcome

    def set_posture(self, identity: Identity, signals: Iterable[Signal]) -> None:
        """Replace the identity's posture signals with those of the latest inventory snapshot."""
        facts = self._by_identity.setdefault(identity, {})
        for sid in [sid for sid, s in facts.items() if s.kind is SignalKind.POSTURE]:
            del facts[sid]
        for s in signals:
            facts[(s.type, s.key)] = s
        while len(facts) > self._max:
            self._evict_one(facts)
        if not facts:
            del self._by_identity[identity]

    def signals(self, identity: Identity) -> tuple[Signal, ...]:
        facts = self._by_identity.get(identity)
        return tuple(facts.values()) if facts else ()

    def identities(self) -> tuple[Identity, ...]:
        return tuple(self._by_identity)

    def forget(self, identity: Identity) -> None:
        self._by_identity.pop(identity, None)

    def prune(self, *, now: datetime, half_life: timedelta) -> int:
        """Drop behavioural evidence that has decayed below ``NOISE_POINTS``; returns how many."""
        hl = half_life.total_seconds()
        dropped = 0
        for identity in list(self._by_identity):
            facts = self._by_identity[identity]
            stale = [
                sid
                for sid, s in facts.items()
                if s.kind is not SignalKind.POSTURE
                and s.weight
                * decay_factor(age=(now - s.observed_at).total_seconds(), half_life_seconds=hl)
                < NOISE_POINTS
            ]
            for sid in stale:
                del facts[sid]
            dropped += len(stale)
            if not facts:
                del self._by_identity[identity]
        return dropped

    def __len__(self) -> int:
        return sum(len(f) for f in self._by_identity.values())

    @staticmethod
    def _evict_one(facts: dict[SignalID, Signal]) -> None:
        # The least recently observed behavioural fact goes first; posture is kept if possible.
        for sid, s in facts.items():
            if s.kind is not SignalKind.POSTURE:
                del facts[sid]
                return
        del facts[next(iter(facts))]
