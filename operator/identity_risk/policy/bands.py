"""From score and confidence to a band, with hysteresis so a boundary does not flap.

A band applies when the score reaches its ``minScore`` *and* the evidence is at least as confident
as its ``minConfidence``; otherwise the identity falls to the highest lower band whose requirements
are met. Escalation is immediate. Stepping down waits until the score has dropped ``margin``
points below the current band's floor *and* the identity has been in the band for ``hold``: decay
slowly erodes a score, and without this a decaying identity near 60 would cross 60 on every
re-observation and re-order its actions each time.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from identity_risk.api.v1alpha1 import Band, Hysteresis, parse_duration
from identity_risk.domain import Confidence


@dataclass(frozen=True, slots=True, kw_only=True)
class BandState:
    """Where an identity stood after its last decision: its band and since when."""

    band: str | None
    since: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class BandChoice:
    band: Band | None
    reasons: tuple[str, ...]


@functools.lru_cache(maxsize=256)
def duration(text: str) -> timedelta:
    """``parse_duration``, memoised: policies repeat a handful of durations on every decision."""
    return parse_duration(text)


_CONFIDENCE = {c.label: c for c in Confidence}


def required_confidence(band: Band) -> Confidence:
    return _CONFIDENCE[band.min_confidence.value]


def raw_band(
    *, bands: Sequence[Band], score: int, confidence: Confidence
) -> tuple[Band | None, tuple[str, ...]]:
    """The highest band whose score and confidence requirements are both met, without history."""
    reasons: list[str] = []
    chosen: Band | None = None
    for b in bands:
        if score < b.min_score:
            break
        need = required_confidence(b)
        if confidence < need:
            reasons.append(
                f"score {score} reaches band {b.name} (>= {b.min_score}) but confidence"
                f" {confidence.label} is below its required {need.label}"
            )
            continue
        chosen = b
    return chosen, tuple(reasons)


def choose_band(
    *,
    bands: Sequence[Band],
    score: int,
    confidence: Confidence,
    previous: BandState | None,
    hysteresis: Hysteresis,
    now: datetime,
) -> BandChoice:
    """The band for this evaluation, honouring hysteresis against ``previous``."""
    chosen, reasons = raw_band(bands=bands, score=score, confidence=confidence)
    prev_band = _find(bands, previous.band) if previous is not None else None
    if previous is None or prev_band is None or not _lower(bands, chosen, prev_band):
        return BandChoice(band=chosen, reasons=reasons)

    held_for = now - previous.since
    hold = duration(hysteresis.hold)
    floor = prev_band.min_score - hysteresis.margin
    if held_for < hold:
        return BandChoice(
            band=prev_band,
            reasons=(
                *reasons,
                f"held in band {prev_band.name}: entered {_ago(held_for)} ago, hold is {hysteresis.hold}",
            ),
        )
    if score >= floor and confidence >= required_confidence(prev_band):
        return BandChoice(
            band=prev_band,
            reasons=(
                *reasons,
                f"held in band {prev_band.name}: score {score} is within the {hysteresis.margin}-point"
                f" margin below {prev_band.min_score}",
            ),
        )
    return BandChoice(band=chosen, reasons=reasons)


def band_index(bands: Sequence[Band], band: Band | str | None) -> int:
    """Position of a band (-1 for "below every band") so crossings can be compared."""
    if band is None:
        return -1
    name = band if isinstance(band, str) else band.name
    for i, b in enumerate(bands):
        if b.name == name:
            return i
    return -1


def _find(bands: Sequence[Band], name: str | None) -> Band | None:
    return next((b for b in bands if b.name == name), None) if name is not None else None


def _lower(bands: Sequence[Band], a: Band | None, b: Band) -> bool:
    return band_index(bands, a) < band_index(bands, b)


def _ago(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    return f"{seconds // 60}m{seconds % 60:02d}s"
