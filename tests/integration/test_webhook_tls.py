"""Generated webhook certificates (``identity_risk.webhook.tls``), kept in a real Secret."""

from __future__ import annotations

import base64
import datetime
import uuid
from pathlib import Path

import pytest
from cryptography import x509

from identity_risk.kube import Kube, load_api_client
from identity_risk.testing.cluster import Cluster
from identity_risk.webhook import ServerTLS
from identity_risk.webhook.tls import CLIENT_CERT, CLIENT_NAME, ensure_serving_certificate

pytestmark = pytest.mark.integration

NAMES = ["identity-risk-operator.identity-risk.svc", "identity-risk-operator"]
NOW = datetime.datetime.now(datetime.UTC)


def test_two_replicas_starting_serve_the_same_generated_certificate(
    cluster: Cluster, namespace: str, tmp_path: Path
) -> None:
    kube = Kube(load_api_client(kubeconfig=str(cluster.state.kubeconfig)))
    secret = f"tls-{uuid.uuid4().hex[:6]}"
    first, second = (
        ensure_serving_certificate(
            kube,
            namespace=namespace,
            secret=secret,
            server_names=NAMES,
            server_ips=["127.0.0.1"],
            directory=tmp_path / replica,
            now=NOW,
        )
        for replica in ("a", "b")
    )
    assert first.created
    assert not second.created
    assert first.cert.read_bytes() == second.cert.read_bytes()
    assert first.ca.read_bytes() == second.ca.read_bytes()
    assert oct(first.key.stat().st_mode & 0o777) == "0o600"

    serving = x509.load_pem_x509_certificate(first.cert.read_bytes())
    ca = x509.load_pem_x509_certificate(first.ca.read_bytes())
    serving.verify_directly_issued_by(ca)
    sans = serving.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert set(sans.get_values_for_type(x509.DNSName)) == set(NAMES)
    # The server loads them, and the client pair the apiserver is given chains to the same CA.
    ServerTLS(cert_file=first.cert, key_file=first.key, client_ca_file=first.ca).server_context()
    stored = kube.get_secret(namespace, secret)
    assert stored is not None
    client = x509.load_pem_x509_certificate(base64.b64decode((stored.data or {})[CLIENT_CERT]))
    client.verify_directly_issued_by(ca)
    assert client.subject.rfc4514_string() == f"CN={CLIENT_NAME}"


def test_a_secret_missing_a_field_is_reported_not_overwritten(
    cluster: Cluster, namespace: str, tmp_path: Path
) -> None:
    kube = Kube(load_api_client(kubeconfig=str(cluster.state.kubeconfig)))
    kube.create_secret(namespace, "half", {"ca.crt": base64.b64encode(b"x").decode()})
    with pytest.raises(RuntimeError, match=r"lacks tls\.crt"):
        ensure_serving_certificate(
            kube,
            namespace=namespace,
            secret="half",
            server_names=NAMES,
            server_ips=[],
            directory=tmp_path,
            now=NOW,
        )
