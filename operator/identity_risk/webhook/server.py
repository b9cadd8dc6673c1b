"""The operator's HTTPS server: audit intake, the authorization webhook, admission, probes, metrics.

It runs aiohttp on its own thread with its own event loop. Parsing an audit batch is CPU work in
the request path; on kopf's loop it would delay watch events and handler timeouts, and a burst
of audit traffic could starve reconciliation. For the same reason the audit callback runs on one
more thread of its own (batches one at a time, in arrival order): ``/authorize`` sits on every
API request's path and must not queue behind a large batch. Callbacks therefore run off kopf's
loop and must hand results to the rest of the operator in a thread-safe way.

Failure rules, because the apiserver calls these endpoints on its own hot paths:

* ``/authorize`` never denies and never allows because of a failure: any exception, malformed
  body or out-of-contract answer becomes a no-opinion review (RBAC then decides).
* ``/audit`` in a replica that is not the leader (the callback raises ``NotLeader``) is a 503
  with Retry-After, counted as ``audit_batches_rejected{reason="not_leader"}``; the apiserver's
  batch webhook retries it with backoff, so nothing is lost.
* ``/audit`` answers fast; a batch the callback refuses is a 400 with the reason, anything else
  unexpected a 500, and either is counted, so dropped audit data shows up in metrics.
* ``/mutate`` answers 500 when the mutator fails, so the apiserver applies the
  ``failurePolicy`` the installation chose for that webhook.

Request bodies are never logged (audit events carry request objects, which can hold tokens);
logs say which endpoint, how big and why.

``/metrics``, ``/healthz`` and ``/readyz`` are unauthenticated: probes and Prometheus need them,
and they carry only counters and liveness, no identities or secrets.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import ssl
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from identity_risk.enforce.authorization import NO_OPINION
from identity_risk.metrics import (
    ENDPOINTS,
    VERDICT_DENY,
    VERDICT_ERROR,
    VERDICT_NO_OPINION,
    Metrics,
    bounded,
)
from identity_risk.webhook.auth import ServerTLS, authenticate

logger = logging.getLogger(__name__)

DEFAULT_MAX_BODY_BYTES = 16 * 1024 * 1024
"""Large enough for a full audit batch at RequestResponse level; beyond it a caller gets 413."""

_SHUTDOWN_GRACE_SECONDS = 5.0
_AUTHENTICATED = frozenset({"audit", "authorize", "mutate"})


class BatchRejected(Exception):
    """Raised by the audit callback for a batch it will not read at all.

    ``reason`` is a short fixed word (it labels a metric); ``detail`` is the sentence the caller
    gets back.
    """

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(detail or reason)
        self.reason = reason
        self.detail = detail or reason


class NotLeader(Exception):
    """Raised by the audit callback in a replica that is not the leader: only the leader reads
    audit batches. Answered 503 with Retry-After; the apiserver's batch webhook retries."""


NOT_LEADER_RETRY_AFTER_SECONDS = 5


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditAck:
    """What the audit callback did with one batch, counted into the audit metrics."""

    accepted: int = 0
    duplicates: int = 0
    skipped: int = 0
    rejected: Mapping[str, int] = field(default_factory=dict)


class AuditSink(Protocol):
    """Takes one raw ``audit.k8s.io/v1`` EventList body; raises ``BatchRejected`` to refuse it."""

    def __call__(self, body: bytes, /) -> AuditAck: ...


class Reviewer(Protocol):
    """Answers a decoded review (SubjectAccessReview or AdmissionReview) with the review to return."""

    def __call__(self, review: Mapping[str, Any], /) -> dict[str, Any]: ...


class Readiness(Protocol):
    """Whether the operator is ready to serve (caches warm, state loaded); must not block."""

    def __call__(self) -> bool: ...


class WebhookServer:
    """The HTTPS server, started and stopped from any thread.

    ``authorizer``, ``mutator`` and ``ready`` run on the server's thread; ``on_audit`` runs on a
    single audit thread, never concurrently with itself. Keep them quick and thread-safe towards
    the rest of the operator.
    """

    def __init__(
        self,
        *,
        host: str,
        port: int,
        tls: ServerTLS,
        bearer_tokens: frozenset[str] = frozenset(),
        on_audit: AuditSink,
        authorizer: Reviewer,
        mutator: Reviewer | None = None,
        ready: Readiness,
        metrics: Metrics,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    ) -> None:
        self._host = host
        self._port = port
        self._tls = tls
        self._bearer_tokens = bearer_tokens
        self._on_audit = on_audit
        self._authorizer = authorizer
        self._mutator = mutator
        self._ready = ready
        self._metrics = metrics
        self._max_body_bytes = max_body_bytes
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._started = threading.Event()
        self._startup_error: BaseException | None = None
        self._bound_port = 0
        # Threads start lazily, on the first batch.
        self._audit_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="webhook-audit")

    @property
    def port(self) -> int:
        """The port actually listened on (meaningful after ``start()``, also when asked for 0)."""
        return self._bound_port

    def start(self, *, timeout: float = 10.0) -> None:
        """Start serving; returns once the socket listens, raises if it cannot."""
        if self._thread is not None or self._started.is_set():
            raise RuntimeError("a webhook server starts once; build a new one to serve again")
        context = self._tls.server_context()  # fail here, in the caller, on bad cert files
        self._thread = threading.Thread(
            target=self._run, args=(context,), name="webhook-server", daemon=True
        )
        self._thread.start()
        if not self._started.wait(timeout):
            raise TimeoutError(f"the webhook server did not listen within {timeout}s")
        if self._startup_error is not None:
            self._thread.join()
            self._thread = None
            raise self._startup_error

    def stop(self, *, timeout: float = 10.0) -> None:
        """Stop accepting, finish in-flight requests (up to ``timeout``) and join the thread."""
        thread, loop, stopping = self._thread, self._loop, self._stopping
        if thread is None:
            return
        if loop is not None and stopping is not None:
            with contextlib.suppress(RuntimeError):  # the loop already ended on its own
                loop.call_soon_threadsafe(stopping.set)
        thread.join(timeout)
        if thread.is_alive():
            raise TimeoutError(f"the webhook server did not stop within {timeout}s")
        self._thread = None

    # --- the server thread -------------------------------------------------------------------

    def _run(self, context: ssl.SSLContext) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._serve(context))
        except BaseException as error:  # surfaced to start(); after startup, logged
            if not self._started.is_set():
                self._startup_error = error
            else:
                logger.exception("the webhook server stopped on an error")
        finally:
            self._started.set()
            loop.close()

    async def _serve(self, context: ssl.SSLContext) -> None:
        self._stopping = asyncio.Event()
        runner = web.AppRunner(
            self._application(),
            access_log=None,
            handle_signals=False,
            shutdown_timeout=_SHUTDOWN_GRACE_SECONDS,
        )
        await runner.setup()
        try:
            site = web.TCPSite(runner, self._host, self._port, ssl_context=context)
            await site.start()
            self._bound_port = int(runner.addresses[0][1])
            logger.info("webhook server listening on https://%s:%d", self._host, self._bound_port)
            self._started.set()
            await self._stopping.wait()
        finally:
            await runner.cleanup()
            self._audit_thread.shutdown(wait=True)
            logger.info("webhook server stopped")

    def _application(self) -> web.Application:
        app = web.Application(
            middlewares=[self._observe, self._authenticate],
            client_max_size=self._max_body_bytes,
        )
        app.router.add_post("/audit", self._audit, name="audit")
        app.router.add_post("/authorize", self._authorize, name="authorize")
        app.router.add_post("/mutate", self._mutate, name="mutate")
        app.router.add_get("/metrics", self._metrics_text, name="metrics")
        app.router.add_get("/healthz", self._healthz, name="healthz")
        app.router.add_get("/readyz", self._readyz, name="readyz")
        return app

    # --- middlewares -------------------------------------------------------------------------

    @web.middleware
    async def _observe(
        self,
        request: web.Request,
        handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
    ) -> web.StreamResponse:
        """Time and count every request by endpoint and status; turn escapes into a JSON 500."""
        endpoint = _endpoint(request)
        started = time.perf_counter()
        try:
            response = await handler(request)
        except web.HTTPException as error:
            response = _error(error.status, error.reason)
        except Exception:
            logger.exception("webhook %s failed", endpoint)
            response = _error(500, "internal error; see the operator's log")
        self._metrics.webhook_latency.labels(endpoint=endpoint).observe(
            time.perf_counter() - started
        )
        self._metrics.webhook_requests.labels(endpoint=endpoint, code=str(response.status)).inc()
        return response

    @web.middleware
    async def _authenticate(
        self,
        request: web.Request,
        handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
    ) -> web.StreamResponse:
        endpoint = _endpoint(request)
        if endpoint not in _AUTHENTICATED:
            return await handler(request)
        transport = request.transport
        peercert = transport.get_extra_info("peercert") if transport is not None else None
        caller = authenticate(
            peercert=peercert,
            authorization=request.headers.get("Authorization"),
            tls=self._tls,
            bearer_tokens=self._bearer_tokens,
        )
        if isinstance(caller, str):
            logger.warning("webhook %s: refused caller %s: %s", endpoint, request.remote, caller)
            return _error(401, caller)
        logger.debug("webhook %s: caller authenticated by %s", endpoint, caller.method)
        if (request.content_length or 0) > self._max_body_bytes:
            return self._too_large(endpoint, request.content_length)
        return await handler(request)

    def _too_large(self, endpoint: str, content_length: int | None) -> web.Response:
        logger.warning(
            "webhook %s: body exceeds the %d-byte limit (Content-Length: %s)",
            endpoint,
            self._max_body_bytes,
            content_length if content_length is not None else "none, chunked",
        )
        if endpoint == "audit":
            self._metrics.audit_batches_rejected.labels(reason="too_large").inc()
        return _error(
            413,
            f"request body exceeds {self._max_body_bytes} bytes; lower the audit webhook"
            " batch size (--audit-webhook-batch-max-size) or raise the operator's limit",
        )

    async def _body(self, request: web.Request, endpoint: str) -> bytes | web.Response:
        try:
            return await request.read()
        except web.HTTPRequestEntityTooLarge:
            return self._too_large(endpoint, request.content_length)

    # --- handlers ----------------------------------------------------------------------------

    async def _audit(self, request: web.Request) -> web.StreamResponse:
        body = await self._body(request, "audit")
        if isinstance(body, web.Response):
            return body
        try:
            loop = asyncio.get_running_loop()
            ack = await loop.run_in_executor(self._audit_thread, self._on_audit, body)
        except NotLeader:
            logger.debug("audit batch of %d bytes refused: not the leader", len(body))
            self._metrics.audit_batches_rejected.labels(reason="not_leader").inc()
            response = _error(503, "not the leader; the batch is for the leading replica")
            response.headers["Retry-After"] = str(NOT_LEADER_RETRY_AFTER_SECONDS)
            return response
        except BatchRejected as rejected:
            reason = bounded(rejected.reason)
            logger.warning("audit batch of %d bytes rejected: %s", len(body), reason)
            self._metrics.audit_batches_rejected.labels(reason=reason).inc()
            return _error(400, rejected.detail, reason=reason)
        except Exception:
            logger.exception("audit batch of %d bytes failed in the audit callback", len(body))
            self._metrics.audit_batches_rejected.labels(reason="internal_error").inc()
            return _error(500, "the operator failed to read the batch; see its log")
        self._metrics.count_audit_events(
            source="webhook",
            accepted=ack.accepted,
            duplicates=ack.duplicates,
            skipped=ack.skipped,
            rejected=ack.rejected,
        )
        logger.debug("audit batch of %d bytes: %d accepted", len(body), ack.accepted)
        return web.json_response({"accepted": ack.accepted})

    async def _authorize(self, request: web.Request) -> web.StreamResponse:
        body = await self._body(request, "authorize")
        if isinstance(body, web.Response):
            return body
        review: Mapping[str, Any] = {}
        try:
            decoded = json.loads(body)
            if not isinstance(decoded, dict):
                raise ValueError("a SubjectAccessReview is a JSON object")
            review = decoded
            answer = self._authorizer(review)
            verdict = _verdict(answer)
        except Exception as error:
            logger.error(
                "authorization review of %d bytes failed, answering no opinion: %s",
                len(body),
                type(error).__name__,
                exc_info=True,
            )
            self._metrics.authorization_reviews.labels(verdict=VERDICT_ERROR).inc()
            return web.json_response(NO_OPINION.response(review))
        self._metrics.authorization_reviews.labels(verdict=verdict).inc()
        return web.json_response(answer)

    async def _mutate(self, request: web.Request) -> web.StreamResponse:
        body = await self._body(request, "mutate")
        if isinstance(body, web.Response):
            return body
        try:
            review = json.loads(body)
            if not isinstance(review, dict):
                raise ValueError("an AdmissionReview is a JSON object")
        except ValueError:
            return _error(400, "the body is not an AdmissionReview JSON object")
        if self._mutator is None:
            uid = (review.get("request") or {}).get("uid", "")
            return web.json_response(
                {
                    "apiVersion": review.get("apiVersion", "admission.k8s.io/v1"),
                    "kind": "AdmissionReview",
                    "response": {"uid": uid, "allowed": True},
                }
            )
        return web.json_response(self._mutator(review))

    async def _metrics_text(self, request: web.Request) -> web.StreamResponse:
        return web.Response(
            body=generate_latest(self._metrics.registry),
            headers={"Content-Type": CONTENT_TYPE_LATEST},
        )

    async def _healthz(self, request: web.Request) -> web.StreamResponse:
        return web.json_response({"status": "ok"})

    async def _readyz(self, request: web.Request) -> web.StreamResponse:
        try:
            ready = bool(self._ready())
        except Exception:
            logger.exception("the readiness check failed")
            ready = False
        if ready:
            return web.json_response({"status": "ready"})
        return web.json_response({"status": "not ready"}, status=503)


def _endpoint(request: web.Request) -> str:
    name = request.match_info.route.name
    return name if name in ENDPOINTS else "other"


def _verdict(answer: Any) -> str:
    """The metric verdict of an authorizer's answer; raises if the answer breaks the contract.

    This webhook sits before RBAC, so an ``allowed: true`` would bypass RBAC entirely: it is
    treated as a failure, never passed on.
    """
    status = answer.get("status") if isinstance(answer, dict) else None
    if not isinstance(status, dict):
        raise TypeError("the authorizer answered without a status")
    if status.get("allowed") is not False:
        raise ValueError("the authorizer answered allowed (or not a boolean); it may only deny")
    return VERDICT_DENY if status.get("denied") is True else VERDICT_NO_OPINION


def _error(status: int, message: str, *, reason: str = "") -> web.Response:
    payload = {"status": status, "message": message}
    if reason:
        payload["reason"] = reason
    return web.json_response(payload, status=status)
