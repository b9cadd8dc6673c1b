"""From an identity's signals to one 0-100 number a person can audit point by point.

Why it is shaped this way:

* **Saturating, order-free combination.** Each signal contributes ``p`` raw points (base weight x
  decay x privilege amplification, capped at 100). They combine as independent evidence:
  ``100 x (1 - prod(1 - p/100))``. The result never leaves [0, 100], never decreases when a signal is
  added at the same instant, and a single signal scores exactly its own points (so a half-life
  halves it exactly).
* **Every point is accounted for.** The combined score is attributed to signals by their marginal
  contribution in descending order of raw points (the sums telescope to the total), then rounded
  to whole points with the largest-remainder method, so the integer points shown in the
  explanation always sum to the integer score.
* **Refresh, not stack.** Signals are identified by ``(type, key)``; re-observing the same fact
  replaces the older observation instead of adding to it.
* **Confidence beside the score.** The score says how much; confidence says how sure. It is the
  highest confidence of any non-posture signal worth at least ``confidence_min_points`` points
  on its own (raw, not its saturated share, so adding evidence can never lower confidence).
  Posture signals (what an identity *could* do) are Low by nature and never lift confidence.
* **Privilege amplifies threat evidence, not posture.** A stolen cluster-admin token outranks a
  stolen read-only one; a cluster-admin binding alone is posture and is not counted twice.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import MappingProxyType

from identity_risk.domain import Confidence, Identity, Signal, SignalKind

MAX_SCORE = 100
DEFAULT_HALF_LIFE = timedelta(hours=6)
DEFAULT_MAX_AMPLIFICATION = 1.5
DEFAULT_CONFIDENCE_MIN_POINTS = 5.0

_EMPTY: Mapping[str, float] = MappingProxyType({})

SignalID = tuple[str, str]
"""The fact a signal is about: ``(type, key)``. One live observation per fact."""


def signal_id(signal: Signal) -> SignalID:
    return (signal.type, signal.key)


@dataclass(frozen=True, slots=True, kw_only=True)
class ScoringConfig:
    """The knobs a policy may turn. Defaults are the documented ones (docs/engine.md)."""

    half_life: timedelta = DEFAULT_HALF_LIFE
    weight_overrides: Mapping[str, float] = field(default_factory=lambda: _EMPTY)
    max_amplification: float = DEFAULT_MAX_AMPLIFICATION
    confidence_min_points: float = DEFAULT_CONFIDENCE_MIN_POINTS

    def __post_init__(self) -> None:
        if self.half_life <= timedelta(0):
            raise ValueError(f"half_life must be positive, got {self.half_life}")
        if self.max_amplification < 1.0:
            raise ValueError(f"max_amplification must be >= 1, got {self.max_amplification}")
        for name, weight in self.weight_overrides.items():
            if not 0.0 <= weight <= MAX_SCORE:
                raise ValueError(f"weight override for {name!r} must be in [0, 100], got {weight}")


@dataclass(frozen=True, slots=True, kw_only=True)
class Suppression:
    """Operator feedback on an identity.

    ``dismissed_at``: a person dismissed the current evidence; signals observed at or before it
    no longer count, new evidence after it does. ``confirmed_compromised_at``: a person confirmed
    compromise; the score is pinned to 100 with High confidence from then on.
    """

    dismissed_at: datetime | None = None
    confirmed_compromised_at: datetime | None = None
    by: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Contribution:
    """One signal's share of the score, with every factor that produced it."""

    signal: Signal
    base_weight: float
    age_seconds: float
    decay: float
    amplification: float
    raw_points: float
    """``min(100, base_weight x decay x amplification)``: what this signal alone would score."""
    share: float
    """Its marginal share of the combined (saturated) score, before rounding."""
    points: int
    """Its whole points in the explanation; all ``points`` sum to ``Score.score``."""

    @property
    def confidence(self) -> Confidence:
        return self.signal.confidence


@dataclass(frozen=True, slots=True, kw_only=True)
class Score:
    """An identity's score at one instant, with the explanation that produced it."""

    identity: Identity
    at: datetime
    score: int
    confidence: Confidence
    contributions: tuple[Contribution, ...]
    """In descending order of points; includes signals that round to 0 points."""
    exact: float = 0.0
    """The unrounded combined score."""
    overridden_by: str = ""
    """Non-empty when a person's ``confirm-compromised`` pinned the score."""
    override_points: int = 0
    """Points added by the override; ``sum(points) + override_points == score`` always."""

    @property
    def top_signal(self) -> Signal | None:
        return self.contributions[0].signal if self.contributions else None

    def explain(self) -> str:
        """A human explanation, one line per contributing signal."""
        lines = [
            f"{self.identity}: score {self.score}/100, confidence {self.confidence.label}"
            f" at {self.at.isoformat()}"
        ]
        if self.overridden_by:
            lines.append(f"  {self.override_points:>3} pts  override: {self.overridden_by}")
        for c in self.contributions:
            amp = f" x amplification {c.amplification:.2f}" if c.amplification != 1.0 else ""
            lines.append(
                f"  {c.points:>3} pts  {c.signal.type} ({c.signal.confidence.label}):"
                f" weight {c.base_weight:g} x decay {c.decay:.3f}{amp}"
                f" = {c.raw_points:.1f} raw — {c.signal.summary}"
            )
        return "\n".join(lines)


def decay_factor(*, age: float, half_life_seconds: float) -> float:
    """``0.5 ** (age / half_life)``; evidence from the future (clock skew) counts as fresh."""
    if age <= 0.0:
        return 1.0
    return float(0.5 ** (age / half_life_seconds))


def amplification_for(*, privilege: float, max_amplification: float) -> float:
    """Scale threat evidence by what the identity could do: 1.0 (nothing) … max (cluster-admin).

    ``privilege`` is in [0, 1] (see ``signals`` for how it is measured); out-of-range values are
    clamped so a bad measure cannot push the score out of [0, 100].
    """
    p = min(1.0, max(0.0, privilege))
    return 1.0 + p * (max_amplification - 1.0)


def latest_per_fact(signals: Iterable[Signal]) -> dict[SignalID, Signal]:
    """Collapse re-observations: the newest observation of each fact wins (ties: the heavier)."""
    out: dict[SignalID, Signal] = {}
    for s in signals:
        sid = (s.type, s.key)
        prev = out.get(sid)
        if prev is None or _recency(s) > _recency(prev):
            out[sid] = s
    return out


def _recency(s: Signal) -> tuple[datetime, float, int, str, str]:
    # A total order, so the winner never depends on the order signals arrive in.
    return (s.observed_at, s.weight, int(s.confidence), s.kind.value, s.summary)


def score_identity(
    *,
    identity: Identity,
    signals: Iterable[Signal],
    now: datetime,
    config: ScoringConfig = ScoringConfig(),
    privilege: float = 0.0,
    suppression: Suppression | None = None,
) -> Score:
    """Score one identity at ``now`` from its signals. Pure: same inputs, same Score."""
    live = latest_per_fact(signals)
    half_life_s = config.half_life.total_seconds()
    amp = amplification_for(privilege=privilege, max_amplification=config.max_amplification)
    dismissed_at = suppression.dismissed_at if suppression else None

    rows: list[tuple[float, Signal, float, float, float, float]] = []
    for s in live.values():
        if dismissed_at is not None and s.observed_at <= dismissed_at:
            continue
        base = config.weight_overrides.get(s.type, s.weight)
        base = min(float(MAX_SCORE), max(0.0, base)) if math.isfinite(base) else 0.0
        age = (now - s.observed_at).total_seconds()
        # Posture is current state, re-derived from each inventory snapshot: it does not decay.
        d = (
            1.0
            if s.kind is SignalKind.POSTURE
            else decay_factor(age=age, half_life_seconds=half_life_s)
        )
        a = 1.0 if s.kind is SignalKind.POSTURE else amp
        raw = min(float(MAX_SCORE), base * d * a)
        rows.append((raw, s, base, max(0.0, age), d, a))

    # Descending raw points; ties broken by the fact's identity so the order is total.
    rows.sort(key=lambda r: (-r[0], r[1].type, r[1].key))

    shares: list[float] = []
    remaining = 1.0  # prod(1 - p/100) so far
    for raw, *_ in rows:
        frac = raw / MAX_SCORE
        shares.append(MAX_SCORE * remaining * frac)
        remaining *= 1.0 - frac
    exact = MAX_SCORE * (1.0 - remaining)

    override = ""
    confirmed = suppression.confirmed_compromised_at if suppression else None
    if suppression is not None and confirmed is not None and confirmed <= now:
        who = suppression.by or "an operator"
        override = f"confirmed compromised by {who} at {confirmed.isoformat()}"

    evidence_total = _round_half_up(exact)
    points = _apportion(shares, evidence_total)
    total = MAX_SCORE if override else evidence_total

    contributions = tuple(
        Contribution(
            signal=s,
            base_weight=base,
            age_seconds=age,
            decay=d,
            amplification=a,
            raw_points=raw,
            share=share,
            points=pts,
        )
        for (raw, s, base, age, d, a), share, pts in zip(rows, shares, points, strict=True)
    )

    confidence = Confidence.LOW
    for c in contributions:
        if c.signal.kind is not SignalKind.POSTURE and c.raw_points >= config.confidence_min_points:
            confidence = max(confidence, c.signal.confidence)
    if override:
        confidence = Confidence.HIGH

    return Score(
        identity=identity,
        at=now,
        score=total,
        confidence=confidence,
        contributions=contributions,
        exact=MAX_SCORE if override else exact,
        overridden_by=override,
        override_points=total - evidence_total,
    )


def _round_half_up(x: float) -> int:
    # A tiny epsilon absorbs float error so 44.99999999 shows as 45, never flickers.
    return math.floor(x + 0.5 + 1e-9)


def _apportion(shares: list[float], total: int) -> list[int]:
    """Largest-remainder rounding: whole points that sum to ``total`` exactly."""
    if not shares:
        return []
    floors = [math.floor(s) for s in shares]
    short = total - sum(floors)
    order = sorted(range(len(shares)), key=lambda i: (-(shares[i] - floors[i]), i))
    if short >= 0:
        for i in order[:short]:
            floors[i] += 1
    else:  # only when float error put the floors above the rounded total
        for i in reversed(order):
            if short == 0:
                break
            if floors[i] > 0:
                floors[i] -= 1
                short += 1
    return floors
