"""Sources → records: audit events decoded into the flat ``AuditRecord`` the detectors read.

Public interface::

    parse_event_list(data, *, stats=None, dedupe=None) -> list[AuditRecord]   # webhook batch
    parse_lines(lines, *, stats=None, dedupe=None) -> Iterator[AuditRecord]   # JSON-lines log
    read_audit_log(path, *, stats=None, dedupe=None) -> Iterator[AuditRecord] # a log file
    parse_event(data, *, stats=None, dedupe=None) -> AuditRecord | None       # one Event
    operation_key(verb, group, resource, subresource, namespace, path, impersonating) -> str

Pass one long-lived ``Deduplicator`` per source so each request is counted once across batches,
and a ``ParseStats`` to learn what was rejected and why. Malformed events never raise;
``BatchRejected`` is raised only for a webhook body that is not an EventList at all.
"""

from identity_risk.ingest.decode import (
    AUDIT_API_VERSION,
    BatchRejected,
    parse_event,
    parse_event_list,
    parse_lines,
    read_audit_log,
)
from identity_risk.ingest.dedupe import Deduplicator
from identity_risk.ingest.record import AuditRecord, operation_key
from identity_risk.ingest.stats import REJECTION_REASONS, ParseStats

__all__ = [
    "AUDIT_API_VERSION",
    "REJECTION_REASONS",
    "AuditRecord",
    "BatchRejected",
    "Deduplicator",
    "ParseStats",
    "operation_key",
    "parse_event",
    "parse_event_list",
    "parse_lines",
    "read_audit_log",
]
