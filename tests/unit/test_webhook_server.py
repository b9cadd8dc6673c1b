"""The webhook server over real TLS on loopback: who gets in, what each endpoint answers, and that
a failing callback never takes the server down or turns into an allow or a deny."""

from __future__ import annotations

import http.client
import json
import ssl
import threading
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from identity_risk.enforce.authorization import Verdict
from identity_risk.metrics import Metrics
from identity_risk.testing.controlplane import CertPair, Pki
from identity_risk.webhook import AuditAck, BatchRejected, NotLeader, ServerTLS, WebhookServer

TOKEN = "s3cr3t-apiserver-token"
APISERVER_NAME = "kube-apiserver-webhook-client"
MAX_BODY = 64 * 1024
EVENT_LIST = b'{"kind":"EventList","apiVersion":"audit.k8s.io/v1","items":[]}'
SAR = {
    "apiVersion": "authorization.k8s.io/v1",
    "kind": "SubjectAccessReview",
    "spec": {"user": "system:serviceaccount:shop:web", "resourceAttributes": {"verb": "get"}},
}
NO_OPINION_SAR = {
    "apiVersion": "authorization.k8s.io/v1",
    "kind": "SubjectAccessReview",
    "status": {"allowed": False},
}


@dataclass
class Operator:
    """The callbacks the server calls, recording what they saw and doing what a test asks."""

    batches: list[bytes] = field(default_factory=list)
    reject_with: Exception | None = None
    authorizer_error: Exception | None = None
    authorizer_answer: dict[str, Any] | None = None
    is_ready: bool = False
    audit_gate: threading.Event | None = None
    """When set, ``on_audit`` waits for it: a batch that takes long to read."""

    def on_audit(self, body: bytes) -> AuditAck:
        if self.audit_gate is not None:
            assert self.audit_gate.wait(10)
        if self.reject_with is not None:
            raise self.reject_with
        self.batches.append(body)
        return AuditAck(accepted=2, duplicates=1, rejected={"missing_verb": 1})

    def authorize(self, review: Mapping[str, Any]) -> dict[str, Any]:
        if self.authorizer_error is not None:
            raise self.authorizer_error
        if self.authorizer_answer is not None:
            return self.authorizer_answer
        return Verdict(denied=True, reason="credential revoked").response(review)

    def ready(self) -> bool:
        return self.is_ready


@dataclass
class Running:
    server: WebhookServer
    operator: Operator
    pki: Pki
    other_pki: Pki
    registry: CollectorRegistry

    def connect(self, client: CertPair | None = None) -> http.client.HTTPSConnection:
        context = ssl.create_default_context(cafile=str(self.pki.ca.cert))
        if client is not None:
            context.load_cert_chain(str(client.cert), str(client.key))
        return http.client.HTTPSConnection("127.0.0.1", self.server.port, context=context)

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        *,
        client: CertPair | None = None,
        token: str | None = None,
        chunked: bool = False,
    ) -> tuple[int, bytes]:
        connection = self.connect(client)
        headers = {"Content-Type": "application/json"}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        try:
            if chunked and body is not None:
                chunks = [body[i : i + 4096] for i in range(0, len(body), 4096)]
                connection.request(
                    method, path, body=iter(chunks), headers=headers, encode_chunked=True
                )
            else:
                connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            return response.status, response.read()
        finally:
            connection.close()

    def post_json(self, path: str, payload: object) -> tuple[int, Any]:
        status, body = self.request(
            "POST", path, json.dumps(payload).encode(), client=self.pki.webhook_client
        )
        return status, json.loads(body)

    def sample(self, name: str, **labels: str) -> float:
        return self.registry.get_sample_value(name, labels) or 0.0


@pytest.fixture(scope="module")
def pkis(tmp_path_factory: pytest.TempPathFactory) -> tuple[Pki, Pki]:
    root = tmp_path_factory.mktemp("pki")
    return Pki.generate(root / "cluster"), Pki.generate(root / "other")


@pytest.fixture
def running(pkis: tuple[Pki, Pki]) -> Iterator[Running]:
    pki, other = pkis
    operator = Operator()
    registry = CollectorRegistry()
    server = WebhookServer(
        host="127.0.0.1",
        port=0,
        tls=ServerTLS(
            cert_file=pki.webhook_server.cert,
            key_file=pki.webhook_server.key,
            client_ca_file=pki.ca.cert,
            client_names=frozenset({APISERVER_NAME}),
        ),
        bearer_tokens=frozenset({TOKEN, "another-token"}),
        on_audit=operator.on_audit,
        authorizer=operator.authorize,
        ready=operator.ready,
        metrics=Metrics(registry),
        max_body_bytes=MAX_BODY,
    )
    server.start()
    try:
        yield Running(server, operator, pki, other, registry)
    finally:
        server.stop()


# --- who may call ------------------------------------------------------------------------------


def test_the_apiserver_client_certificate_delivers_the_exact_batch(running: Running) -> None:
    status, _ = running.request("POST", "/audit", EVENT_LIST, client=running.pki.webhook_client)

    assert status == 200
    assert running.operator.batches == [EVENT_LIST]


def test_a_follower_answers_audit_503_with_retry_after_and_counts_it(running: Running) -> None:
    running.operator.reject_with = NotLeader()
    connection = running.connect(running.pki.webhook_client)
    try:
        connection.request("POST", "/audit", body=EVENT_LIST)
        response = connection.getresponse()
        body = json.loads(response.read())
    finally:
        connection.close()

    assert response.status == 503
    assert response.getheader("Retry-After") == "5"
    assert "not the leader" in body["message"]
    assert running.sample("identity_risk_audit_batches_rejected_total", reason="not_leader") == 1


def test_a_valid_bearer_token_is_accepted(running: Running) -> None:
    status, _ = running.request("POST", "/audit", EVENT_LIST, token=TOKEN)

    assert status == 200
    assert running.operator.batches == [EVENT_LIST]


@pytest.mark.parametrize("path", ["/audit", "/authorize", "/mutate"])
def test_a_caller_without_credentials_gets_401(running: Running, path: str) -> None:
    status, body = running.request("POST", path, EVENT_LIST)

    assert status == 401
    assert "no client certificate and no bearer token" in json.loads(body)["message"]
    assert running.operator.batches == []


def test_a_wrong_bearer_token_gets_401(running: Running) -> None:
    status, body = running.request("POST", "/audit", EVENT_LIST, token="not-" + TOKEN)

    assert status == 401
    assert "bearer token is not one the operator accepts" in json.loads(body)["message"]
    assert running.operator.batches == []


def test_another_certificate_from_the_cluster_ca_gets_401(running: Running) -> None:
    """The cluster CA also signs the admin's certificate; only the apiserver's name is accepted."""
    status, body = running.request("POST", "/audit", EVENT_LIST, client=running.pki.admin)

    assert status == 401
    assert "identity-risk-admin" in json.loads(body)["message"]
    assert running.operator.batches == []


def test_a_certificate_from_another_ca_is_refused(running: Running) -> None:
    try:
        status, _ = running.request(
            "POST", "/audit", EVENT_LIST, client=running.other_pki.webhook_client
        )
    except (ssl.SSLError, ConnectionError):
        pass  # the TLS handshake refused the certificate
    else:
        assert status == 401
    assert running.operator.batches == []


# --- /audit ------------------------------------------------------------------------------------


def test_a_rejected_batch_is_a_400_with_the_reason_and_is_counted(running: Running) -> None:
    running.operator.reject_with = BatchRejected("not_an_event_list", "the batch has no items")

    status, body = running.request("POST", "/audit", b"{}", token=TOKEN)

    assert status == 400
    assert json.loads(body) == {
        "status": 400,
        "message": "the batch has no items",
        "reason": "not_an_event_list",
    }
    batches_rejected = "identity_risk_audit_batches_rejected_total"
    assert running.sample(batches_rejected, reason="not_an_event_list") == 1


def test_the_server_answers_after_a_rejected_batch(running: Running) -> None:
    running.operator.reject_with = BatchRejected("not_an_event_list")
    assert running.request("POST", "/audit", b"{}", token=TOKEN)[0] == 400

    running.operator.reject_with = None
    status, _ = running.request("POST", "/audit", EVENT_LIST, token=TOKEN)

    assert status == 200
    assert running.operator.batches == [EVENT_LIST]


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_an_oversized_batch_gets_413_and_is_not_read(running: Running, chunked: bool) -> None:
    oversized = b" " * (MAX_BODY + 1)

    status, body = running.request("POST", "/audit", oversized, token=TOKEN, chunked=chunked)

    assert status == 413
    assert f"exceeds {MAX_BODY} bytes" in json.loads(body)["message"]
    assert running.operator.batches == []
    batches_rejected = "identity_risk_audit_batches_rejected_total"
    assert running.sample(batches_rejected, reason="too_large") == 1


def test_accepted_batches_are_counted_per_event(running: Running) -> None:
    running.request("POST", "/audit", EVENT_LIST, token=TOKEN)

    assert running.sample("identity_risk_audit_events_received_total", source="webhook") == 4
    assert running.sample("identity_risk_audit_events_accepted_total", source="webhook") == 2
    assert running.sample("identity_risk_audit_events_duplicate_total", source="webhook") == 1
    rejected = "identity_risk_audit_events_rejected_total"
    assert running.sample(rejected, source="webhook", reason="missing_verb") == 1


# --- /authorize --------------------------------------------------------------------------------


def test_authorize_returns_the_authorizers_review(running: Running) -> None:
    status, answer = running.post_json("/authorize", SAR)

    assert status == 200
    assert answer["status"] == {"allowed": False, "denied": True, "reason": "credential revoked"}
    assert running.sample("identity_risk_authorization_reviews_total", verdict="deny") == 1


@pytest.mark.parametrize(
    ("failure", "body"),
    [
        pytest.param({"authorizer_error": RuntimeError("boom")}, SAR, id="authorizer-raises"),
        pytest.param({}, ["not", "a", "review"], id="body-not-an-object"),
        pytest.param(
            {"authorizer_answer": {"status": {"allowed": True}}}, SAR, id="authorizer-allows"
        ),
        pytest.param({"authorizer_answer": {"kind": "Nonsense"}}, SAR, id="answer-without-status"),
    ],
)
def test_a_failing_authorization_is_no_opinion(
    running: Running, failure: dict[str, Any], body: object
) -> None:
    for name, value in failure.items():
        setattr(running.operator, name, value)

    status, answer = running.post_json("/authorize", body)

    assert status == 200
    assert answer == NO_OPINION_SAR
    assert running.sample("identity_risk_authorization_reviews_total", verdict="error") == 1


def test_authorize_does_not_wait_for_a_slow_audit_batch(running: Running) -> None:
    running.operator.audit_gate = threading.Event()
    with ThreadPoolExecutor(max_workers=1) as background:
        audit = background.submit(running.request, "POST", "/audit", EVENT_LIST, token=TOKEN)

        status, _ = running.post_json("/authorize", SAR)

        assert status == 200
        assert not audit.done()
        running.operator.audit_gate.set()
        assert audit.result(timeout=10)[0] == 200


# --- /mutate -----------------------------------------------------------------------------------


def test_mutate_without_a_mutator_allows_without_a_patch(running: Running) -> None:
    review = {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {"uid": "705ab4f5-6393-11e8-b7cc-42010a800002"},
    }

    status, answer = running.post_json("/mutate", review)

    assert status == 200
    assert answer["response"] == {"uid": "705ab4f5-6393-11e8-b7cc-42010a800002", "allowed": True}


# --- probes and metrics ------------------------------------------------------------------------


def test_healthz_answers_without_credentials(running: Running) -> None:
    assert running.request("GET", "/healthz")[0] == 200


def test_readyz_follows_the_readiness_callback(running: Running) -> None:
    assert running.request("GET", "/readyz")[0] == 503

    running.operator.is_ready = True

    assert running.request("GET", "/readyz")[0] == 200


def test_metrics_exposes_the_counters_without_credentials(running: Running) -> None:
    running.request("POST", "/audit", EVENT_LIST, token=TOKEN)
    running.request("POST", "/audit", EVENT_LIST)

    status, body = running.request("GET", "/metrics")

    text = body.decode()
    assert status == 200
    assert 'identity_risk_audit_events_accepted_total{source="webhook"} 2.0' in text
    assert 'identity_risk_webhook_requests_total{code="401",endpoint="audit"} 1.0' in text
    assert 'identity_risk_webhook_request_duration_seconds_count{endpoint="audit"} 2.0' in text


# --- lifecycle ---------------------------------------------------------------------------------


def test_start_fails_loudly_on_a_missing_certificate(tmp_path: Path) -> None:
    server = WebhookServer(
        host="127.0.0.1",
        port=0,
        tls=ServerTLS(cert_file=tmp_path / "missing.crt", key_file=tmp_path / "missing.key"),
        on_audit=Operator().on_audit,
        authorizer=Operator().authorize,
        ready=Operator().ready,
        metrics=Metrics(CollectorRegistry()),
    )

    with pytest.raises(FileNotFoundError):
        server.start()


def test_stop_closes_the_port(running: Running) -> None:
    port = running.server.port
    running.server.stop()

    with pytest.raises(ConnectionRefusedError):
        http.client.HTTPConnection("127.0.0.1", port, timeout=2).connect()
