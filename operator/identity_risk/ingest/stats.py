"""Counting what parsing did with its input: accepted, deduplicated, skipped, rejected by reason.

A bad event must never abort its batch, but it must not vanish either: a cluster whose audit
events are silently dropped looks exactly like a quiet cluster. Rejections are therefore counted
under a small, fixed vocabulary of reasons (suitable as a metrics label) and the operator exports
them.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

# Reasons an event is rejected. Kept small and fixed so they can label a metric.
INVALID_JSON = "invalid_json"
NOT_AN_OBJECT = "not_an_object"
INVALID_SCHEMA = "invalid_schema"
INVALID_TIMESTAMP = "invalid_timestamp"
UNSUPPORTED_API_VERSION = "unsupported_api_version"
MISSING_AUDIT_ID = "missing_audit_id"
MISSING_STAGE = "missing_stage"
MISSING_USER = "missing_user"
MISSING_VERB = "missing_verb"
MISSING_TIMESTAMP = "missing_timestamp"

REJECTION_REASONS = frozenset(
    {
        INVALID_JSON,
        NOT_AN_OBJECT,
        INVALID_SCHEMA,
        INVALID_TIMESTAMP,
        UNSUPPORTED_API_VERSION,
        MISSING_AUDIT_ID,
        MISSING_STAGE,
        MISSING_USER,
        MISSING_VERB,
        MISSING_TIMESTAMP,
    }
)


@dataclass(slots=True)
class ParseStats:
    """Running totals for one parsing source. Mutable on purpose: it is a counter.

    ``accepted`` records were returned; ``duplicates`` were a stage of a request already counted;
    ``skipped_stages`` were stages that carry no decision yet (``RequestReceived``); ``rejected``
    counts malformed events by reason (one of ``REJECTION_REASONS``).
    """

    accepted: int = 0
    duplicates: int = 0
    skipped_stages: int = 0
    rejected: Counter[str] = field(default_factory=Counter)

    @property
    def total(self) -> int:
        return self.accepted + self.duplicates + self.skipped_stages + sum(self.rejected.values())

    def merge(self, other: ParseStats) -> None:
        """Add another source's totals into this one."""
        self.accepted += other.accepted
        self.duplicates += other.duplicates
        self.skipped_stages += other.skipped_stages
        self.rejected.update(other.rejected)
