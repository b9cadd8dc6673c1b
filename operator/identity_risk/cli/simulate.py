"""``kubectl risk simulate``: what a policy would have done, replayed against a recorded audit log.

This is how a team tests its thresholds before switching a policy to Enforce. The replay runs
the operator's own engine (``identity_risk.engine``) with event time as the clock, so the bands,
hysteresis, exceptions and safeguards behave exactly as they will in the cluster. Output: per
identity its score over time, its band crossings and the actions that would have been taken
(``-o table``, the default, for people; ``-o json`` for scripts). Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

from identity_risk.cli.inputs import (
    InputError,
    check_readable,
    load_inventory_objects,
    load_policy_bundle,
)
from identity_risk.domain import Confidence, Identity
from identity_risk.engine import Engine, Evaluation, build_source, replay
from identity_risk.ingest import AuditRecord, Deduplicator, ParseStats, read_audit_log
from identity_risk.policy import Decision, Disposition

PROGRESS_EVERY = 50_000
MAX_TIMELINE_IN_TABLE = 8


def add_parser(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "simulate",
        help="replay a recorded audit log through a policy, offline",
        description="Replay a recorded audit log (JSON lines, as the apiserver's log backend "
        "writes it) through a policy and show, per identity, the score over time, the band "
        "crossings and the actions that would have been taken. Nothing is contacted.",
    )
    p.add_argument("--policy", required=True, type=Path, metavar="FILE",
                   help="IdentityRiskPolicy YAML (several documents, and RiskExceptions, allowed)")  # fmt: skip
    p.add_argument("--audit-log", required=True, type=Path, metavar="FILE",
                   help="audit log in JSON lines (.gz accepted)")  # fmt: skip
    p.add_argument("--inventory", type=Path, metavar="DIR",
                   help="directory of manifests (pods, nodes, service accounts, RBAC, namespaces)")  # fmt: skip
    p.add_argument("--pod-cidr", action="append", default=[], metavar="CIDR",
                   help="the cluster's pod network (repeatable; nodes' podCIDRs are added)")  # fmt: skip
    p.add_argument("--node-cidr", action="append", default=[], metavar="CIDR",
                   help="the cluster's node network (repeatable)")  # fmt: skip
    p.add_argument("-o", "--output", choices=("table", "json"), default="table")
    p.add_argument("--all", action="store_true",
                   help="list every scored identity, not only those with a score above 0")  # fmt: skip
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")
    p.set_defaults(run=run)


# --- collecting -----------------------------------------------------------------------------


@dataclass(slots=True)
class IdentityReport:
    identity: Identity
    policy: str = ""
    score: int = 0
    confidence: Confidence = Confidence.LOW
    band: str | None = None
    peak: int = 0
    peak_at: datetime | None = None
    top_signal: str = ""
    timeline: list[tuple[datetime, int, Confidence, str | None]] = field(default_factory=list)
    crossings: list[Decision] = field(default_factory=list)

    def add(self, ev: Evaluation) -> None:
        d = ev.decision
        self.policy = d.policy
        if not self.timeline or self.timeline[-1][1:] != (d.score, d.confidence, d.band):
            self.timeline.append((d.at, d.score, d.confidence, d.band))
        if d.changed_band:
            self.crossings.append(d)
        if d.score > self.peak or self.peak_at is None:
            self.peak, self.peak_at = max(self.peak, d.score), d.at
            if d.top_signal:
                self.top_signal = d.top_signal
        self.score, self.confidence, self.band = d.score, d.confidence, d.band


class Report:
    def __init__(self) -> None:
        self.identities: dict[Identity, IdentityReport] = {}

    def __call__(self, ev: Evaluation) -> None:
        ident = ev.decision.identity
        rep = self.identities.get(ident)
        if rep is None:
            rep = self.identities[ident] = IdentityReport(identity=ident)
        rep.add(ev)

    def sorted(self, *, everything: bool) -> list[IdentityReport]:
        reps = [r for r in self.identities.values() if everything or r.peak > 0 or r.crossings]
        return sorted(reps, key=lambda r: (-r.peak, r.identity))


# --- running --------------------------------------------------------------------------------


class Progress:
    """Events processed and rate, on stderr, at most once a second (the CLI owns the clock)."""

    def __init__(self, stream: TextIO, *, enabled: bool) -> None:
        self.stream = stream
        self.enabled = enabled
        self.start = time.perf_counter()
        self.last = self.start

    def __call__(self, n: int) -> None:
        now = time.perf_counter()
        if not self.enabled or now - self.last < 1.0:
            return
        self.last = now
        rate = n / (now - self.start)
        self.stream.write(f"simulate: {n:,} events processed ({rate:,.0f} events/s)\n")
        self.stream.flush()

    def done(self, n: int) -> float:
        elapsed = time.perf_counter() - self.start
        if self.enabled and elapsed >= 1.0:
            rate = n / elapsed if elapsed else 0.0
            self.stream.write(
                f"simulate: done, {n:,} events in {elapsed:.1f}s ({rate:,.0f} events/s)\n"
            )
        return elapsed


def run(args: argparse.Namespace) -> int:
    bundle = load_policy_bundle(args.policy)
    check_readable(args.audit_log, what="--audit-log")
    objects = load_inventory_objects(args.inventory) if args.inventory else []
    try:
        source = build_source(objects, pod_cidrs=args.pod_cidr, node_cidrs=args.node_cidr)
    except ValueError as error:
        raise InputError(f"{args.inventory or '--pod-cidr/--node-cidr'}: {error}") from None
    engine = Engine(policies=bundle.policies, exceptions=bundle.exceptions, source=source)
    stats = ParseStats()
    report = Report()
    progress = Progress(sys.stderr, enabled=not args.quiet)
    records = _read(args.audit_log, stats)
    n = replay(
        records,
        engine=engine,
        on_evaluation=report,
        on_progress=progress,
        progress_every=PROGRESS_EVERY,
    )
    progress.done(n)
    if n == 0 and stats.accepted == 0 and sum(stats.rejected.values()) > 0:
        raise InputError(
            f"{args.audit_log}: no audit event could be read ({_rejections(stats)});"
            " expected JSON lines of audit.k8s.io/v1 Events"
        )
    identities = report.sorted(everything=args.all)
    if args.output == "json":
        json.dump(_as_json(identities, stats, args), sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        _print_table(identities, stats, sys.stdout)
    return 0


def _read(path: Path, stats: ParseStats) -> Iterator[AuditRecord]:
    try:
        yield from read_audit_log(path, stats=stats, dedupe=Deduplicator())
    except OSError as error:
        raise InputError(f"{path}: cannot read: {error}") from None


def _rejections(stats: ParseStats) -> str:
    parts = [f"{n} {reason}" for reason, n in sorted(stats.rejected.items()) if n]
    return ", ".join(parts) or "none rejected"


# --- rendering ------------------------------------------------------------------------------


def _t(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")


def _actions(d: Decision) -> str:
    if not d.actions:
        return "-"
    return ", ".join(a.type.value for a in d.actions)


def _print_table(reps: list[IdentityReport], stats: ParseStats, out: TextIO) -> None:
    rejected = sum(stats.rejected.values())
    out.write(
        f"{stats.accepted:,} events replayed"
        + (f", {rejected:,} rejected ({_rejections(stats)})" if rejected else "")
        + f"; {len(reps)} identities with risk\n\n"
    )
    if not reps:
        out.write("No identity scored above 0: this policy would have taken no action.\n")
        return
    rows = [
        (
            "IDENTITY",
            "POLICY",
            "SCORE",
            "PEAK",
            "CONFIDENCE",
            "BAND",
            "TOP SIGNAL",
            "SCORE OVER TIME",
        )
    ]
    for r in reps:
        points = r.timeline[-MAX_TIMELINE_IN_TABLE:]
        series = " ".join(f"{s}@{at.strftime('%H:%M')}" for at, s, _, _ in points)
        if len(r.timeline) > MAX_TIMELINE_IN_TABLE:
            series = "… " + series
        rows.append((
            str(r.identity), r.policy, str(r.score), str(r.peak), r.confidence.label,
            r.band or "-", r.top_signal or "-", series,
        ))  # fmt: skip
    _table(rows, out)

    crossings = sorted((d for r in reps for d in r.crossings), key=lambda d: (d.at, d.identity))
    out.write("\nBAND CROSSINGS\n")
    if not crossings:
        out.write("none\n")
        return
    rows = [("TIME", "IDENTITY", "FROM", "TO", "SCORE", "CONFIDENCE", "OUTCOME", "ACTIONS")]
    for d in crossings:
        rows.append((
            _t(d.at), str(d.identity), d.previous_band or "-", d.band or "-", str(d.score),
            d.confidence.label, _outcome(d), _actions(d),
        ))  # fmt: skip
    _table(rows, out)


def _outcome(d: Decision) -> str:
    if not d.escalated:
        return "stepped down"
    return {
        Disposition.ACT: "would act",
        Disposition.AUDIT: "audit only",
        Disposition.NO_CHANGE: "no actions",
        Disposition.PROTECTED: "protected",
        Disposition.EXEMPT: "exempt",
        Disposition.CIRCUIT_OPEN: "held: breaker",
        Disposition.RATE_LIMITED: "held: rate",
    }[d.disposition]


def _table(rows: Sequence[tuple[str, ...]], out: TextIO) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        out.write(
            "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() + "\n"
        )


def _decision_json(d: Decision) -> dict[str, Any]:
    return {
        "at": _t(d.at),
        "from": d.previous_band,
        "to": d.band,
        "escalated": d.escalated,
        "score": d.score,
        "confidence": d.confidence.label,
        "mode": d.mode.value,
        "outcome": d.disposition.value,
        "actions": [{"type": a.type.value, **a.params} for a in d.actions],
        "topSignal": d.top_signal,
        "signals": [
            {
                "type": c.signal.type,
                "points": c.points,
                "confidence": c.signal.confidence.label,
                "summary": c.signal.summary,
            }
            for c in d.evidence
            if c.points > 0
        ],
        "reasons": list(d.reasons),
    }


def _as_json(
    reps: list[IdentityReport], stats: ParseStats, args: argparse.Namespace
) -> dict[str, Any]:
    return {
        "policy": str(args.policy),
        "auditLog": str(args.audit_log),
        "events": {
            "accepted": stats.accepted,
            "rejected": dict(stats.rejected),
            "duplicates": stats.duplicates,
        },
        "identities": [
            {
                "identity": str(r.identity),
                "policy": r.policy,
                "score": r.score,
                "confidence": r.confidence.label,
                "band": r.band,
                "peak": r.peak,
                "peakAt": _t(r.peak_at) if r.peak_at else None,
                "topSignal": r.top_signal,
                "timeline": [
                    {"at": _t(at), "score": s, "confidence": c.label, "band": b}
                    for at, s, c, b in r.timeline
                ],
                "crossings": [_decision_json(d) for d in r.crossings],
            }
            for r in reps
        ],
    }
