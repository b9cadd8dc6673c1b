"""A person's verdict on an identity's risk, read from its WorkloadIdentityRisk's annotations.

``kubectl risk confirm-compromised`` and ``kubectl risk dismiss`` write these annotations; the
operator turns them into a ``Suppression`` for the scorer: confirmed pins the score to the top,
dismissed stops the evidence seen so far from counting (new evidence counts again).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from identity_risk.scoring.score import Suppression

CONFIRMED_BY = "identityrisk.dev/confirmed-compromised-by"
CONFIRMED_AT = "identityrisk.dev/confirmed-compromised-at"
DISMISSED_BY = "identityrisk.dev/dismissed-by"
DISMISSED_AT = "identityrisk.dev/dismissed-at"
FEEDBACK = frozenset({CONFIRMED_BY, CONFIRMED_AT, DISMISSED_BY, DISMISSED_AT})


def _stamp(value: object, *, now: datetime) -> datetime:
    """An annotation's timestamp, never later than ``now`` (an unreadable one reads as now)."""
    try:
        at = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return now
    if at.tzinfo is None:
        return now
    return min(at, now)


def suppression_from(annotations: Mapping[str, str] | None, *, now: datetime) -> Suppression | None:
    """The feedback the annotations carry, or None when there is none."""
    notes = annotations or {}
    confirmed = notes.get(CONFIRMED_BY)
    dismissed = notes.get(DISMISSED_BY)
    if not confirmed and not dismissed:
        return None
    return Suppression(
        confirmed_compromised_at=_stamp(notes.get(CONFIRMED_AT), now=now) if confirmed else None,
        dismissed_at=_stamp(notes.get(DISMISSED_AT), now=now) if dismissed else None,
        by=str(confirmed or dismissed),
    )
