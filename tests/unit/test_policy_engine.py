"""The engine applies the policy chain across identities: safeguards, protection, exceptions."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from identity_risk.api.v1alpha1 import IdentityRiskPolicy, RiskException
from identity_risk.domain import Confidence, Identity, Signal, SignalKind
from identity_risk.engine import Engine
from identity_risk.ingest import AuditRecord
from identity_risk.policy import Disposition, IdentityContext
from identity_risk.scoring import Suppression

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
MIN = timedelta(minutes=1)


class FakeSource:
    """A SignalSource with no detectors: tests hand the engine signals directly."""

    def observe(self, record: AuditRecord) -> Sequence[Signal]:
        return []

    def privilege(self, identity: Identity) -> float:
        return 0.0

    def posture(self, identity: Identity, *, now: datetime) -> Sequence[Signal]:
        return []

    def context(self, identity: Identity) -> IdentityContext:
        return IdentityContext(identity=identity)


def policy(**safeguards: Any) -> IdentityRiskPolicy:
    return IdentityRiskPolicy.model_validate(
        {
            "metadata": {"name": "p"},
            "spec": {
                "mode": "Enforce",
                "safeguards": {"maxActionsPerMinute": 1000, **safeguards},
                "bands": [
                    {"name": "low", "minScore": 0},
                    {"name": "high", "minScore": 60, "minConfidence": "High",
                     "actions": [{"type": "RevokeToken"}]},
                ],
            },
        }
    )  # fmt: skip


def replay_signal(identity: Identity, *, at: datetime = T0, type_: str = "TokenReplay") -> Signal:
    return Signal(
        type=type_,
        identity=identity,
        kind=SignalKind.BEHAVIOURAL,
        weight=80,
        confidence=Confidence.HIGH,
        observed_at=at,
        key="jti@203.0.113.66",
        summary="token replayed",
    )


def test_circuit_breaker_holds_enforcement_when_many_identities_cross_at_once() -> None:
    engine = Engine(
        policies=[policy(circuitBreaker={"maxIdentities": 3, "window": "5m"})], source=FakeSource()
    )
    outcomes = []
    for i in range(5):
        ident = Identity(namespace="shop", name=f"sa{i}")
        (ev,) = engine.add_signals([replay_signal(ident, at=T0 + i * MIN)], now=T0 + i * MIN)
        outcomes.append(ev.decision.disposition)
    assert outcomes == [Disposition.ACT] * 3 + [Disposition.CIRCUIT_OPEN] * 2
    # after a quiet window the breaker closes again
    later = T0 + 30 * MIN
    (ev,) = engine.add_signals(
        [replay_signal(Identity(namespace="shop", name="late"), at=later)], now=later
    )
    assert ev.decision.disposition is Disposition.ACT


def test_protected_identities_are_decided_but_never_acted_on() -> None:
    engine = Engine(policies=[policy()], source=FakeSource())
    (ev,) = engine.add_signals(
        [replay_signal(Identity(namespace="kube-system", name="coredns"))], now=T0
    )
    assert (ev.decision.band, ev.decision.disposition) == ("high", Disposition.PROTECTED)


def test_exception_for_a_signal_type_removes_it_from_scoring_until_it_expires() -> None:
    ident = Identity(namespace="shop", name="web")
    exc = RiskException.model_validate(
        {
            "metadata": {"name": "migration", "namespace": "shop"},
            "spec": {"serviceAccountName": "web", "owner": "team-shop", "reason": "client migration",
                     "expires": (T0 + 10 * MIN).isoformat(), "signalTypes": ["TokenReplay"]},
        }
    )  # fmt: skip
    engine = Engine(policies=[policy()], source=FakeSource(), exceptions=[exc])
    (ev,) = engine.add_signals([replay_signal(ident)], now=T0)
    assert ev.score.score == 0
    after = engine.evaluate(ident, now=T0 + 11 * MIN)
    assert after is not None
    assert after.decision.band == "high"


def test_dismissed_evidence_stops_counting_and_new_evidence_counts() -> None:
    ident = Identity(namespace="shop", name="web")
    engine = Engine(
        policies=[policy()],
        source=FakeSource(),
        suppressions={ident: Suppression(dismissed_at=T0, by="alice")},
    )
    (ev,) = engine.add_signals([replay_signal(ident)], now=T0)
    assert ev.score.score == 0
    (ev,) = engine.add_signals([replay_signal(ident, at=T0 + MIN, type_="HumanUse")], now=T0 + MIN)
    assert ev.score.score == 80


class PostureSource(FakeSource):
    def __init__(self) -> None:
        self.weight = 30.0

    def posture(self, identity: Identity, *, now: datetime) -> Sequence[Signal]:
        return [
            Signal(type="ClusterAdmin", identity=identity, kind=SignalKind.POSTURE,
                   weight=self.weight, confidence=Confidence.LOW, observed_at=now,
                   key="crb/admin", summary="bound to cluster-admin")
        ]  # fmt: skip


def test_posture_is_read_again_after_refresh_posture() -> None:
    source = PostureSource()
    engine = Engine(policies=[policy()], source=source)
    ident = Identity(namespace="shop", name="web")
    first = engine.evaluate(ident, now=T0)
    assert first is not None
    assert first.score.score == 30
    source.weight = 0.0  # the binding was removed
    again = engine.evaluate(ident, now=T0 + MIN)
    assert again is not None
    assert again.score.score == 30
    engine.refresh_posture([ident])
    fresh = engine.evaluate(ident, now=T0 + 2 * MIN)
    assert fresh is not None
    assert fresh.score.score == 0


def test_tick_keeps_a_held_band_until_it_steps_down_then_forgets_the_identity() -> None:
    engine = Engine(policies=[policy()], source=FakeSource())
    ident = Identity(namespace="shop", name="web")
    engine.add_signals([replay_signal(ident)], now=T0)
    engine.ledger.forget(ident)  # evidence gone (e.g. dismissed and pruned)
    (held,) = engine.tick(now=T0 + MIN)
    assert held.decision.band == "high"  # hysteresis hold (10m) not over yet
    assert ident in engine.bands
    (down,) = engine.tick(now=T0 + 20 * MIN)
    assert (down.decision.previous_band, down.decision.band) == ("high", "low")
    assert ident not in engine.bands
    assert engine.tick(now=T0 + 40 * MIN) == []
