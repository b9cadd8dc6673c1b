"""confirm-compromised / dismiss annotations → the scorer's Suppression."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from identity_risk.scoring.feedback import (
    CONFIRMED_AT,
    CONFIRMED_BY,
    DISMISSED_AT,
    DISMISSED_BY,
    suppression_from,
)
from identity_risk.scoring.score import Suppression

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
EARLIER = NOW - timedelta(minutes=5)


@pytest.mark.parametrize(
    ("annotations", "expected"),
    [
        (None, None),
        ({"other": "x"}, None),
        (
            {CONFIRMED_BY: "alice", CONFIRMED_AT: EARLIER.isoformat()},
            Suppression(confirmed_compromised_at=EARLIER, by="alice"),
        ),
        (
            {DISMISSED_BY: "bob", DISMISSED_AT: "2026-12-04T11:55:00Z"},
            Suppression(dismissed_at=EARLIER, by="bob"),
        ),
        (
            {DISMISSED_BY: "bob", DISMISSED_AT: (NOW + timedelta(hours=1)).isoformat()},
            Suppression(dismissed_at=NOW, by="bob"),
        ),
        (
            {CONFIRMED_BY: "alice", CONFIRMED_AT: "yesterday"},
            Suppression(confirmed_compromised_at=NOW, by="alice"),
        ),
    ],
    ids=["none", "unrelated", "confirmed", "dismissed", "future-clamped", "unreadable-is-now"],
)
def test_suppression_from(annotations: dict[str, str] | None, expected: Suppression | None) -> None:
    assert suppression_from(annotations, now=NOW) == expected
