"""Counting each API request once, although the apiserver may audit it several times.

One request produces up to four audit events (``RequestReceived``, ``ResponseStarted`` for
long-running requests, ``ResponseComplete``, ``Panic``), and webhook batches are retried on
failure, so the same (auditID, stage) may also arrive twice. Risk must be computed per request:
a replayed token that made one request must not look like four.

The rule: ``RequestReceived`` carries no authorization decision yet and is skipped (unless asked
for); the first of the later stages for an auditID is the request, every later event with that
auditID is a duplicate. ``ResponseComplete`` is what normal requests emit; a watch emits
``ResponseStarted`` when it begins and ``ResponseComplete`` only when it ends, possibly much later,
so taking the first stage lets a ``watch secrets`` be seen when it starts.

Memory is bounded: the window remembers between ``capacity`` and ``2 * capacity`` auditIDs in two
generations of sets (constant-time admission, no per-entry bookkeeping). A duplicate that arrives
after more than ``capacity`` newer requests is counted again; with the default of 65,536 that is
far beyond any apiserver's retry horizon.
"""

from __future__ import annotations

STAGE_REQUEST_RECEIVED = "RequestReceived"
STAGE_RESPONSE_STARTED = "ResponseStarted"
STAGE_RESPONSE_COMPLETE = "ResponseComplete"
STAGE_PANIC = "Panic"

KNOWN_STAGES = frozenset(
    {STAGE_REQUEST_RECEIVED, STAGE_RESPONSE_STARTED, STAGE_RESPONSE_COMPLETE, STAGE_PANIC}
)

DEFAULT_CAPACITY = 65_536


class Deduplicator:
    """A bounded memory of the auditIDs already counted. Long-lived: one per event source."""

    __slots__ = ("_capacity", "_current", "_include_request_received", "_previous")

    def __init__(
        self, *, capacity: int = DEFAULT_CAPACITY, include_request_received: bool = False
    ) -> None:
        if capacity < 1:
            raise ValueError(f"dedupe capacity must be at least 1, got {capacity}")
        self._capacity = capacity
        self._include_request_received = include_request_received
        self._current: set[str] = set()
        self._previous: set[str] = set()

    def skips_stage(self, stage: str) -> bool:
        """Whether events of this stage are never counted (``RequestReceived`` by default)."""
        return stage == STAGE_REQUEST_RECEIVED and not self._include_request_received

    def admit(self, audit_id: str) -> bool:
        """True the first time an auditID is seen within the window, False for its repeats."""
        if audit_id in self._current or audit_id in self._previous:
            return False
        current = self._current
        if len(current) >= self._capacity:
            self._previous = current
            current = self._current = set()
        current.add(audit_id)
        return True

    def __len__(self) -> int:
        return len(self._current) + len(self._previous)
