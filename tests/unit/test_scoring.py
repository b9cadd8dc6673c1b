"""Scoring: decay, refresh, amplification, saturation, confidence and a complete explanation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from identity_risk.domain import Confidence, Identity, Signal, SignalKind
from identity_risk.scoring import (
    Observation,
    ScoringConfig,
    SignalLedger,
    Suppression,
    score_identity,
)

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
SA = Identity(namespace="shop", name="checkout")
HOUR = timedelta(hours=1)


def sig(
    type_: str = "TokenReplay",
    *,
    weight: float = 40.0,
    confidence: Confidence = Confidence.HIGH,
    kind: SignalKind = SignalKind.BEHAVIOURAL,
    at: datetime = T0,
    key: str | None = None,
    identity: Identity = SA,
) -> Signal:
    return Signal(
        type=type_,
        identity=identity,
        kind=kind,
        weight=weight,
        confidence=confidence,
        observed_at=at,
        key=key if key is not None else type_,
        summary=f"{type_} observed",
    )


def score(signals: list[Signal], *, now: datetime = T0, **kw: object) -> int:
    return score_identity(identity=SA, signals=signals, now=now, **kw).score  # type: ignore[arg-type]


def test_no_signals_scores_zero_with_low_confidence() -> None:
    s = score_identity(identity=SA, signals=[], now=T0)
    assert (s.score, s.confidence, s.contributions) == (0, Confidence.LOW, ())


def test_a_single_signal_scores_its_weight() -> None:
    assert score([sig(weight=37)]) == 37


@pytest.mark.parametrize(
    ("age", "expected"),
    [(timedelta(0), 80), (6 * HOUR, 40), (12 * HOUR, 20), (18 * HOUR, 10)],
    ids=["fresh", "one-half-life", "two-half-lives", "three-half-lives"],
)
def test_decay_halves_per_half_life(age: timedelta, expected: int) -> None:
    config = ScoringConfig(half_life=6 * HOUR)
    assert score([sig(weight=80)], now=T0 + age, config=config) == expected


def test_posture_does_not_decay_and_never_lifts_confidence() -> None:
    posture = sig("ClusterAdmin", weight=20, kind=SignalKind.POSTURE, confidence=Confidence.HIGH)
    s = score_identity(identity=SA, signals=[posture], now=T0 + 100 * HOUR)
    assert (s.score, s.confidence) == (20, Confidence.LOW)


def test_reobservation_refreshes_instead_of_stacking() -> None:
    first = sig(weight=40, at=T0)
    again = sig(weight=40, at=T0 + 6 * HOUR)
    assert score([first, again], now=T0 + 6 * HOUR) == 40
    assert score([first], now=T0 + 6 * HOUR) == 20


def test_distinct_facts_combine_saturating() -> None:
    a = sig("TokenReplay", weight=60)
    b = sig("CredentialAccess", weight=60)
    assert score([a, b]) == 84  # 100 x (1 - 0.4 x 0.4)


def test_privilege_amplifies_threat_but_not_posture() -> None:
    replay = sig(weight=50)
    admin = score([replay], privilege=1.0)
    reader = score([replay], privilege=0.0)
    assert admin > reader
    posture = sig("ClusterAdmin", weight=20, kind=SignalKind.POSTURE)
    assert score([posture], privilege=1.0) == 20


def test_score_is_capped_at_100() -> None:
    assert score([sig(weight=100), sig("Other", weight=100)], privilege=1.0) == 100


@pytest.mark.parametrize(
    ("signals", "expected"),
    [
        ([sig(confidence=Confidence.MEDIUM, weight=30)], Confidence.MEDIUM),
        ([sig(confidence=Confidence.HIGH, weight=2)], Confidence.LOW),
        (
            [
                sig("A", confidence=Confidence.MEDIUM, weight=30),
                sig("B", confidence=Confidence.HIGH, weight=20),
            ],
            Confidence.HIGH,
        ),
    ],
    ids=["medium-signal", "high-but-negligible", "highest-of-contributors"],
)
def test_confidence_is_highest_of_contributing_signals(
    signals: list[Signal], expected: Confidence
) -> None:
    assert score_identity(identity=SA, signals=signals, now=T0).confidence is expected


def test_weight_overrides_replace_base_weight() -> None:
    config = ScoringConfig(weight_overrides={"TokenReplay": 10.0})
    assert score([sig(weight=80)], config=config) == 10


def test_dismiss_suppresses_until_new_evidence() -> None:
    old = sig("Recon", weight=30, at=T0)
    dismissed = Suppression(dismissed_at=T0 + HOUR, by="alice")
    assert score([old], now=T0 + HOUR, suppression=dismissed) == 0
    new = sig("TokenReplay", weight=30, at=T0 + 2 * HOUR)
    assert score([old, new], now=T0 + 2 * HOUR, suppression=dismissed) == 30


def test_confirm_compromised_pins_to_100_high_and_accounts_for_the_points() -> None:
    s = score_identity(
        identity=SA,
        signals=[sig(weight=10, confidence=Confidence.LOW)],
        now=T0,
        suppression=Suppression(confirmed_compromised_at=T0, by="bob"),
    )
    assert (s.score, s.confidence, s.override_points) == (100, Confidence.HIGH, 90)
    assert "bob" in s.explain()


def test_explanation_names_each_factor() -> None:
    s = score_identity(identity=SA, signals=[sig(weight=50)], now=T0 + 6 * HOUR, privilege=1.0)
    c = s.contributions[0]
    assert (c.base_weight, c.decay, c.amplification, c.points) == (50.0, 0.5, 1.5, 38)
    assert "TokenReplay" in s.explain()


def test_ledger_refreshes_and_bounds_memory() -> None:
    ledger = SignalLedger(max_signals_per_identity=3)
    assert ledger.observe(sig(at=T0))
    assert not ledger.observe(sig(at=T0 - HOUR))  # older re-observation adds nothing
    for i in range(10):
        ledger.observe(sig("Recon", key=f"k{i}", at=T0 + i * HOUR))
    assert len(ledger.signals(SA)) == 3


def test_ledger_prunes_decayed_noise_and_keeps_posture() -> None:
    ledger = SignalLedger()
    ledger.observe(sig(weight=40, at=T0))
    ledger.set_posture(SA, [sig("Wildcard", kind=SignalKind.POSTURE, weight=10)])
    assert ledger.prune(now=T0 + 100 * HOUR, half_life=6 * HOUR) == 1
    assert [s.type for s in ledger.signals(SA)] == ["Wildcard"]


# --- properties -------------------------------------------------------------------------------

signal_st = st.builds(
    sig,
    st.sampled_from(["TokenReplay", "Recon", "CredentialAccess", "HumanUse", "Escalation"]),
    weight=st.floats(min_value=0, max_value=100, allow_nan=False),
    confidence=st.sampled_from(list(Confidence)),
    kind=st.sampled_from(list(SignalKind)),
    at=st.integers(min_value=-200, max_value=10).map(lambda h: T0 + h * HOUR),
    key=st.sampled_from(["a", "b", "c"]),
)
privilege_st = st.floats(min_value=0, max_value=1, allow_nan=False)


@given(st.lists(signal_st, max_size=12), signal_st, privilege_st)
def test_adding_new_evidence_never_lowers_the_score(
    signals: list[Signal], extra: Signal, privilege: float
) -> None:
    # "Adding" evidence: a fact not already present (a re-observation may refresh, never lower).
    existing = {(s.type, s.key) for s in signals}
    if (extra.type, extra.key) in existing:
        extra = sig(extra.type, key=extra.key + "-new", weight=extra.weight, at=extra.observed_at)
    before = score_identity(identity=SA, signals=signals, now=T0, privilege=privilege)
    after = score_identity(identity=SA, signals=[*signals, extra], now=T0, privilege=privilege)
    assert after.exact >= before.exact - 1e-9
    assert after.score >= before.score
    assert after.confidence >= before.confidence


@given(st.lists(signal_st, max_size=12), privilege_st)
def test_points_always_sum_to_the_score_within_bounds(
    signals: list[Signal], privilege: float
) -> None:
    s = score_identity(identity=SA, signals=signals, now=T0, privilege=privilege)
    assert 0 <= s.score <= 100
    assert sum(c.points for c in s.contributions) + s.override_points == s.score


@given(
    st.floats(min_value=1, max_value=100, allow_nan=False),
    st.integers(min_value=1, max_value=48),
    st.integers(min_value=0, max_value=4),
)
def test_one_half_life_halves_a_single_signal(weight: float, half_life_h: int, n: int) -> None:
    config = ScoringConfig(half_life=half_life_h * HOUR)
    at = T0 + n * half_life_h * HOUR
    s = score_identity(identity=SA, signals=[sig(weight=weight)], now=at, config=config)
    assert s.exact == pytest.approx(weight / 2**n)


@given(st.lists(signal_st, max_size=8), privilege_st)
def test_score_is_a_pure_function_of_its_inputs(signals: list[Signal], privilege: float) -> None:
    a = score_identity(identity=SA, signals=signals, now=T0, privilege=privilege)
    b = score_identity(identity=SA, signals=list(reversed(signals)), now=T0, privilege=privilege)
    assert a == b


def test_ledger_says_whether_an_observation_is_new_or_a_refresh() -> None:
    ledger = SignalLedger()
    assert ledger.observe(sig(at=T0)) is Observation.NEW
    assert ledger.observe(sig(at=T0 + HOUR)) is Observation.REFRESHED
    assert ledger.observe(sig(at=T0 + 2 * HOUR, weight=90)) is Observation.NEW
    assert ledger.observe(sig(at=T0)) is Observation.NOTHING


def test_a_weaker_sighting_of_a_known_fact_refreshes_it_without_weakening_it() -> None:
    ledger = SignalLedger()
    ledger.observe(sig(at=T0))
    later = T0 + HOUR
    assert ledger.observe(sig(at=later, confidence=Confidence.MEDIUM)) is Observation.REFRESHED
    (kept,) = ledger.signals(SA)
    assert kept.confidence is Confidence.HIGH
    assert kept.observed_at == later


def test_a_big_medium_signal_does_not_hide_a_high_one() -> None:
    signals = [sig("A", weight=99, confidence=Confidence.MEDIUM), sig("B", weight=40)]
    assert score_identity(identity=SA, signals=signals, now=T0).confidence is Confidence.HIGH
