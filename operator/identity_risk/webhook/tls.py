"""The webhook's certificates when none are given: generated once, kept in a Secret.

The apiserver trusts the operator's serving certificate through a CA file in its webhook
kubeconfigs (and the MutatingWebhookConfiguration's ``caBundle``), so every replica and every
restart must serve a certificate from the *same* CA: the first process to start generates a CA,
a serving certificate and the client certificate the apiserver presents back to the operator, and
stores all of them in one Secret of its own namespace; every later start reads that Secret. The
person wiring the apiserver copies ``ca.crt`` and the client pair from it (docs/install.md).

``issue`` and ``new_ca`` are also what the test control plane's PKI is built from.
"""

from __future__ import annotations

import base64
import datetime
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from identity_risk.kube import Kube

CA_CERT = "ca.crt"
SERVER_CERT = "tls.crt"
SERVER_KEY = "tls.key"
CLIENT_CERT = "apiserver-webhook-client.crt"
CLIENT_KEY = "apiserver-webhook-client.key"
CLIENT_NAME = "kube-apiserver-webhook-client"
"""The common name of the generated apiserver client certificate (``--client-name``)."""
FIELDS = (CA_CERT, SERVER_CERT, SERVER_KEY, CLIENT_CERT, CLIENT_KEY)
GENERATED_VALIDITY = datetime.timedelta(days=3650)


@dataclass(frozen=True, slots=True)
class Authority:
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey


def key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )


def cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def new_ca(
    common_name: str, *, not_before: datetime.datetime, validity: datetime.timedelta
) -> Authority:
    """A self-signed ECDSA P-256 certificate authority."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_before + validity)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    return Authority(cert=cert, key=key)


def issue(
    ca: Authority,
    common_name: str,
    *,
    not_before: datetime.datetime,
    validity: datetime.timedelta,
    orgs: Sequence[str] = (),
    server_names: Sequence[str] = (),
    server_ips: Sequence[str] = (),
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A leaf certificate: a server certificate when it has names or IPs, else a client one."""
    key = ec.generate_private_key(ec.SECP256R1())
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    attrs += [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in orgs]
    server = bool(server_names or server_ips)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name(attrs))
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_before + validity)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH] if server else [ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
    )
    if server:
        sans: list[x509.GeneralName] = [x509.DNSName(n) for n in server_names]
        sans += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in server_ips]
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(ca.key, hashes.SHA256()), key


def generate(
    *, server_names: Sequence[str], server_ips: Sequence[str], now: datetime.datetime
) -> dict[str, bytes]:
    """A fresh CA, serving certificate and apiserver client certificate, as PEM by field."""
    start = now - datetime.timedelta(minutes=5)  # tolerate clock skew between nodes
    ca = new_ca("identity-risk-operator-webhook-ca", not_before=start, validity=GENERATED_VALIDITY)
    server, server_key = issue(
        ca,
        server_names[0] if server_names else "identity-risk-operator",
        not_before=start,
        validity=GENERATED_VALIDITY,
        server_names=server_names,
        server_ips=server_ips,
    )
    client, client_key = issue(ca, CLIENT_NAME, not_before=start, validity=GENERATED_VALIDITY)
    return {
        CA_CERT: cert_pem(ca.cert),
        SERVER_CERT: cert_pem(server),
        SERVER_KEY: key_pem(server_key),
        CLIENT_CERT: cert_pem(client),
        CLIENT_KEY: key_pem(client_key),
    }


@dataclass(frozen=True, slots=True)
class ServingFiles:
    """Where the certificates were written for the server to load."""

    cert: Path
    key: Path
    ca: Path
    created: bool
    """True when this process generated them (and stored the Secret)."""


def ensure_serving_certificate(
    kube: Kube,
    *,
    namespace: str,
    secret: str,
    server_names: Sequence[str],
    server_ips: Sequence[str],
    directory: Path,
    now: datetime.datetime,
) -> ServingFiles:
    """Read the webhook certificates from ``secret``, generating and storing them if absent.

    Two replicas starting at once both generate; the API server keeps the first Secret created
    and both then serve what it holds.
    """
    created = False
    data = _decoded(kube, namespace, secret)
    if data is None:
        generated = generate(server_names=server_names, server_ips=server_ips, now=now)
        kube.create_secret(
            namespace, secret, {k: base64.b64encode(v).decode() for k, v in generated.items()}
        )
        data = _decoded(kube, namespace, secret)
        if data is None:
            raise RuntimeError(f"secret {namespace}/{secret} was created but cannot be read")
        created = data[CA_CERT] == generated[CA_CERT]
    directory.mkdir(parents=True, exist_ok=True)
    for field in (CA_CERT, SERVER_CERT, SERVER_KEY):
        path = directory / field
        path.touch(mode=0o600)
        path.write_bytes(data[field])
    return ServingFiles(
        cert=directory / SERVER_CERT,
        key=directory / SERVER_KEY,
        ca=directory / CA_CERT,
        created=created,
    )


def _decoded(kube: Kube, namespace: str, name: str) -> dict[str, bytes] | None:
    found = kube.get_secret(namespace, name)
    data = (found.data or {}) if found is not None else {}
    if not all(data.get(field) for field in FIELDS):
        if found is not None:
            missing = [f for f in FIELDS if not data.get(f)]
            raise RuntimeError(
                f"secret {namespace}/{name} exists but lacks {', '.join(missing)}: delete it to "
                "have the operator generate the webhook certificates, or pass --tls-cert/--tls-key"
            )
        return None
    return {field: base64.b64decode(data[field]) for field in FIELDS}
