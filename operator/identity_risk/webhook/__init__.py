"""Entry point for the apiserver's calls: audit intake, authorization and admission webhooks.

Public interface::

    WebhookServer(*, host, port, tls, bearer_tokens, on_audit, authorizer, mutator, ready,
                  metrics, max_body_bytes)  .start() / .port / .stop()
    ServerTLS(*, cert_file, key_file, client_ca_file=None, client_names=frozenset())
    AuditAck(*, accepted, duplicates, skipped, rejected)   # what on_audit returns
    BatchRejected(reason, detail)                          # what on_audit raises to refuse a batch
    NotLeader()                                            # ... in a replica that is not the leader (503)

The server is I/O only: what an audit batch means and what a review answers live in ``ingest``
and ``enforce``; this package authenticates the caller, bounds the request, and never lets a
failure in those callbacks turn into an allow, a deny or a dead server.
"""

from identity_risk.webhook.auth import ServerTLS
from identity_risk.webhook.server import (
    DEFAULT_MAX_BODY_BYTES,
    AuditAck,
    AuditSink,
    BatchRejected,
    NotLeader,
    Readiness,
    Reviewer,
    WebhookServer,
)

__all__ = [
    "DEFAULT_MAX_BODY_BYTES",
    "AuditAck",
    "AuditSink",
    "BatchRejected",
    "NotLeader",
    "Readiness",
    "Reviewer",
    "ServerTLS",
    "WebhookServer",
]
