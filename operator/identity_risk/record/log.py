"""The append-only decision log on disk: one JSON line per chain link, fsynced before it counts.

A crash can leave at most one torn last line (a write that never completed). On open, that line
is cut off and reported — it was never acknowledged, and the decision it carried is appended
again when enforcement resumes. Appending a decision whose id is already in the log returns the
existing link instead of adding a second one, so a replay after a crash never records twice.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from identity_risk.record.chain import Link, Signer

DECISION_ID = "decision"
"""The payload key that identifies a decision (``namespace/name`` of its RiskDecision)."""


def read_links(path: Path) -> Iterator[Link]:
    """Every complete link in a log file, in order. A torn last line is skipped."""
    with path.open("rb") as handle:
        for raw in handle:
            if not raw.endswith(b"\n"):
                return
            yield Link.from_dict(json.loads(raw))


class DecisionLog:
    """An append-only, hash-chained, signed log of decisions in one file."""

    def __init__(self, path: Path, signer: Signer) -> None:
        self.path = path
        self.signer = signer
        self.truncated_bytes = 0
        self._last: Link | None = None
        self._by_decision: dict[str, Link] = {}
        self._recover()

    def _recover(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.touch(exist_ok=True)
        good_end = 0
        with self.path.open("rb") as handle:
            for raw in handle:
                if not raw.endswith(b"\n"):
                    break
                link = Link.from_dict(json.loads(raw))
                self._remember(link)
                good_end += len(raw)
        size = self.path.stat().st_size
        if size > good_end:
            self.truncated_bytes = size - good_end
            with self.path.open("r+b") as handle:
                handle.truncate(good_end)
                os.fsync(handle.fileno())

    def _remember(self, link: Link) -> None:
        self._last = link
        decision = link.payload.get(DECISION_ID)
        if isinstance(decision, str):
            self._by_decision[decision] = link

    @property
    def last(self) -> Link | None:
        return self._last

    def __len__(self) -> int:
        return 0 if self._last is None else self._last.index + 1

    def find(self, decision: str) -> Link | None:
        return self._by_decision.get(decision)

    def append(self, payload: Mapping[str, Any]) -> Link:
        """Add a link for ``payload``; idempotent per ``payload['decision']``."""
        decision = payload.get(DECISION_ID)
        if isinstance(decision, str) and decision in self._by_decision:
            return self._by_decision[decision]
        link = self.signer.link(previous=self._last, payload=payload)
        line = json.dumps(link.to_dict(), sort_keys=True, separators=(",", ":")) + "\n"
        with self.path.open("ab") as handle:
            handle.write(line.encode())
            handle.flush()
            os.fsync(handle.fileno())
        self._remember(link)
        return link
