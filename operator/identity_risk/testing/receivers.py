"""Stand-in webhook receivers for the apiserver's ``/audit`` and ``/authorize`` calls.

The apiserver's webhook URLs are fixed when it starts, so a test session starts one receiver on a
known port first and swaps what it does per test: collect audit EventLists, and answer
SubjectAccessReviews with a pluggable ``Authorizer`` (deny or no-opinion, never allow, like the
operator). It speaks TLS with the control plane's webhook certificate and requires the apiserver's
client certificate, exactly as the operator's server must.
"""

from __future__ import annotations

import json
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol
from urllib.parse import urlsplit

AuditEvent = dict[str, Any]


@dataclass(frozen=True)
class Verdict:
    """An authorization webhook answer: ``denied`` or no opinion (never an allow)."""

    denied: bool = False
    reason: str = ""


NO_OPINION = Verdict()


class Authorizer(Protocol):
    def __call__(self, review: dict[str, Any]) -> Verdict: ...


def no_opinion(review: dict[str, Any]) -> Verdict:
    return NO_OPINION


class WebhookReceiver:
    """An HTTPS server on 127.0.0.1 that records audit events and answers authorization reviews."""

    def __init__(self, *, port: int, tls: ssl.SSLContext) -> None:
        self.port = port
        self.url = f"https://127.0.0.1:{port}"
        self.authorizer: Authorizer = no_opinion
        self.reviews: list[dict[str, Any]] = []
        self._events: list[AuditEvent] = []
        self._changed = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(length) or b"{}")
                path = urlsplit(self.path).path  # the apiserver adds ?timeout=...
                if path == "/audit":
                    receiver._record(body.get("items", []))
                    self._reply(200, {})
                elif path == "/authorize":
                    try:
                        self._reply(200, receiver._review(body))
                    except Exception as err:  # a broken authorizer is a webhook failure
                        self._reply(500, {"error": repr(err)})
                else:
                    self._reply(404, {"error": f"no such endpoint {self.path}"})

            def _reply(self, code: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self._server.socket = tls.wrap_socket(self._server.socket, server_side=True)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> WebhookReceiver:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _record(self, items: list[AuditEvent]) -> None:
        with self._changed:
            self._events.extend(items)
            self._changed.notify_all()

    def _review(self, review: dict[str, Any]) -> dict[str, Any]:
        self.reviews.append(review)
        verdict = self.authorizer(review)
        status: dict[str, Any] = {"allowed": False}
        if verdict.denied:
            status.update(denied=True, reason=verdict.reason)
        return {
            "apiVersion": review.get("apiVersion", "authorization.k8s.io/v1"),
            "kind": "SubjectAccessReview",
            "status": status,
        }

    @property
    def events(self) -> list[AuditEvent]:
        with self._changed:
            return list(self._events)

    def wait_for_event(
        self, match: Callable[[AuditEvent], bool], *, timeout: float = 30.0
    ) -> AuditEvent:
        """The first audit event (already received or arriving within ``timeout``) that matches."""
        end = time.monotonic() + timeout
        seen = 0
        with self._changed:
            while True:
                for event in self._events[seen:]:
                    if match(event):
                        return event
                seen = len(self._events)
                left = end - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no matching audit event in {timeout}s ({seen} seen)")
                self._changed.wait(left)
