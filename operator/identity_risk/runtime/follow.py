"""The second audit source: an apiserver audit log file, followed as it grows.

For clusters whose apiserver cannot call a webhook (managed control planes that only write a log
file a sidecar can read). Reading starts at the end of the file — history was already acted on or
is too old to act on — and follows rotation (a new inode at the same path, or a truncated file).
A torn last line is kept until its newline arrives. Malformed lines are counted, never fatal.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import Protocol

from identity_risk.ingest import AuditRecord, Deduplicator, ParseStats, parse_lines
from identity_risk.metrics import Metrics

log = logging.getLogger(__name__)

POLL_SECONDS = 0.25
MAX_BATCH_LINES = 5000


class Feed(Protocol):
    def feed(self, records: list[AuditRecord]) -> None: ...


def follow_audit_log(
    *,
    path: Path,
    live: Feed,
    stop: threading.Event,
    metrics: Metrics,
    from_start: bool = False,
    poll: float = POLL_SECONDS,
) -> None:
    """Feed every complete line appended to ``path`` into ``live`` until ``stop`` is set."""
    dedupe = Deduplicator()
    handle = None
    inode = -1
    pending = b""
    while not stop.is_set():
        try:
            st = path.stat()
        except FileNotFoundError:
            stop.wait(poll)
            continue
        if handle is None or st.st_ino != inode or st.st_size < handle.tell():
            if handle is not None:
                handle.close()
                log.info("audit log %s rotated or truncated: reading the new file", path)
            handle = path.open("rb")
            if not from_start and inode == -1:
                handle.seek(0, os.SEEK_END)
            inode = st.st_ino
            pending = b""
        chunk = handle.read(1 << 20)
        if not chunk:
            stop.wait(poll)
            continue
        lines = (pending + chunk).split(b"\n")
        pending = lines.pop()
        for start in range(0, len(lines), MAX_BATCH_LINES):
            stats = ParseStats()
            batch = lines[start : start + MAX_BATCH_LINES]
            records = list(parse_lines(batch, stats=stats, dedupe=dedupe))
            live.feed(records)
            metrics.count_audit_events(
                source="log",
                accepted=stats.accepted,
                duplicates=stats.duplicates,
                skipped=stats.skipped_stages,
                rejected=dict(stats.rejected),
            )
    if handle is not None:
        handle.close()
