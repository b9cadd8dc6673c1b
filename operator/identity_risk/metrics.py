"""Every metric the operator exports, declared in one place.

A cluster whose audit events are silently dropped looks exactly like a quiet cluster, and an
enforcement point that quietly errors looks like one that found nothing to deny; these counters
are how an operator of the operator tells the difference. Declaring them together keeps the names,
help texts and label sets consistent, and lets tests build them on a private registry.

Label values are bounded vocabularies (reasons, verdicts, bands, action types, endpoints) and never
identity names, namespaces or user input: those belong on WorkloadIdentityRisk objects and in the
decision log, where their number does not multiply time series.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

NAMESPACE = "identity_risk"

# The webhook endpoints, as the ``endpoint`` label spells them; anything else is ``other``.
ENDPOINTS = ("audit", "authorize", "mutate", "metrics", "healthz", "readyz", "other")

# ``verdict`` label of authorization reviews. ``error`` is a failure answered as no opinion.
VERDICT_DENY = "deny"
VERDICT_NO_OPINION = "no-opinion"
VERDICT_ERROR = "error"

_LABEL_VALUE = re.compile(r"[A-Za-z0-9_.:-]{1,63}")


def bounded(value: str) -> str:
    """``value`` if it looks like a vocabulary word, else ``other``: a guard, not a licence.

    Callers pass fixed vocabularies; this only stops a stray message (with spaces, paths or an
    identity in it) from becoming a time series of its own.
    """
    return value if _LABEL_VALUE.fullmatch(value) else "other"


class Metrics:
    """The operator's metrics, registered on ``registry`` (create one per registry)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.audit_events_received = Counter(
            "audit_events_received",
            "Audit events read from a source, before deduplication and validation.",
            ["source"],
            namespace=NAMESPACE,
            registry=registry,
        )
        self.audit_events_accepted = Counter(
            "audit_events_accepted",
            "Audit events decoded and handed to the detectors.",
            ["source"],
            namespace=NAMESPACE,
            registry=registry,
        )
        self.audit_events_duplicate = Counter(
            "audit_events_duplicate",
            "Audit events that were another stage of a request already counted.",
            ["source"],
            namespace=NAMESPACE,
            registry=registry,
        )
        self.audit_events_rejected = Counter(
            "audit_events_rejected",
            "Malformed audit events skipped, by reason.",
            ["source", "reason"],
            namespace=NAMESPACE,
            registry=registry,
        )
        self.leader = Gauge(
            "leader",
            "1 while this replica holds the leader Lease (reads audit batches, ticks, acts).",
            namespace=NAMESPACE,
            registry=registry,
        )
        self.audit_batches_rejected = Counter(
            "audit_batches_rejected",
            "Audit webhook batches refused as a whole (nothing in them was read), by reason.",
            ["reason"],
            namespace=NAMESPACE,
            registry=registry,
        )
        self.authorization_reviews = Counter(
            "authorization_reviews",
            "SubjectAccessReviews answered, by verdict (deny, no-opinion, error).",
            ["verdict"],
            namespace=NAMESPACE,
            registry=registry,
        )
        self.decisions = Counter(
            "decisions",
            "Risk decisions made, by band and policy mode.",
            ["band", "mode"],
            namespace=NAMESPACE,
            registry=registry,
        )
        self.actions = Counter(
            "actions",
            "Enforcement actions carried out, by action type and outcome.",
            ["type", "outcome"],
            namespace=NAMESPACE,
            registry=registry,
        )
        self.circuit_breaker_open = Gauge(
            "circuit_breaker_open",
            "1 while the circuit breaker holds enforcement back, else 0.",
            namespace=NAMESPACE,
            registry=registry,
        )
        self.enforcement_paused = Gauge(
            "enforcement_paused",
            "1 while enforcement is paused (by the breaker or by an operator), else 0.",
            namespace=NAMESPACE,
            registry=registry,
        )
        self.webhook_requests = Counter(
            "webhook_requests",
            "Webhook requests answered, by endpoint and HTTP status code.",
            ["endpoint", "code"],
            namespace=NAMESPACE,
            registry=registry,
        )
        self.webhook_latency = Histogram(
            "webhook_request_duration_seconds",
            "Time from a webhook request's arrival to its answer, by endpoint.",
            ["endpoint"],
            namespace=NAMESPACE,
            registry=registry,
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
        )

    def count_audit_events(
        self,
        *,
        source: str,
        accepted: int,
        duplicates: int,
        skipped: int,
        rejected: Mapping[str, int],
    ) -> None:
        """Add what one parse of a source did; ``source`` is ``webhook`` or ``log``."""
        received = accepted + duplicates + skipped + sum(rejected.values())
        self.audit_events_received.labels(source=source).inc(received)
        self.audit_events_accepted.labels(source=source).inc(accepted)
        self.audit_events_duplicate.labels(source=source).inc(duplicates)
        for reason, count in rejected.items():
            self.audit_events_rejected.labels(source=source, reason=bounded(reason)).inc(count)
