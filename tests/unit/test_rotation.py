"""RotateSecrets' pure half: the annotation it reads and the values it generates."""

from __future__ import annotations

import base64
import datetime as dt
import string

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID
from hypothesis import given, settings
from hypothesis import strategies as st

from identity_risk.enforce.rotation import (
    Authority,
    KeyPair,
    RandomBytes,
    TlsCertificate,
    generate,
    parse_rotation,
)
from identity_risk.signals import Inventory

NOW = dt.datetime(2026, 12, 4, 12, 0, tzinfo=dt.UTC)


def make_ca(key: ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey | None = None) -> Authority:
    key = key or ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test CA")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(NOW - dt.timedelta(days=1))
        .not_valid_after(NOW + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(key, None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256())
    )
    return Authority(cert, key)


# --- the annotation ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"generator":"random"}', RandomBytes(generator="random")),
        (
            '{"generator":"random","key":"password","length":20,"encoding":"alnum"}',
            RandomBytes(generator="random", key="password", length=20, encoding="alnum"),
        ),
        ('{"generator":"ed25519"}', KeyPair(generator="ed25519")),
        ('{"generator":"rsa","bits":3072}', KeyPair(generator="rsa", bits=3072)),
        (
            '{"generator":"tls","ca":"root","dnsNames":["api.example"],"days":30}',
            TlsCertificate(generator="tls", ca="root", dnsNames=["api.example"], days=30),
        ),
    ],
    ids=["random-defaults", "random-alnum", "ed25519", "rsa-3072", "tls"],
)
def test_annotation_is_parsed(text: str, expected: object) -> None:
    assert parse_rotation(text) == expected


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("not json", "value"),
        ('{"generator":"dsa"}', "generator"),
        ('{"generator":"random","length":4}', "length"),
        ('{"generator":"random","encoding":"rot13"}', "encoding"),
        ('{"generator":"rsa","bits":1024}', "bits"),
        ('{"generator":"tls"}', "ca"),
        ('{"generator":"random","lenght":32}', "lenght"),
    ],
    ids=["not-json", "unknown-generator", "too-short", "encoding", "weak-rsa", "tls-no-ca", "typo"],
)
def test_a_bad_annotation_is_refused_naming_the_field(text: str, named: str) -> None:
    with pytest.raises(ValueError, match=r"identityrisk\.dev/rotate") as info:
        parse_rotation(text)
    assert named in str(info.value)


# --- the generators ------------------------------------------------------------------------------


@settings(max_examples=50, deadline=None)
@given(length=st.integers(16, 256), encoding=st.sampled_from(["hex", "base64", "alnum"]))
def test_random_values_have_the_asked_length_and_encoding(length: int, encoding: str) -> None:
    spec = RandomBytes(generator="random", key="k", length=length, encoding=encoding)  # type: ignore[arg-type]
    value = generate(spec, name="s", now=NOW)["k"]
    if encoding == "hex":
        assert len(bytes.fromhex(value.decode())) == length
    elif encoding == "base64":
        assert len(base64.b64decode(value, validate=True)) == length
    else:
        assert len(value) == length
        assert set(value.decode()) <= set(string.ascii_letters + string.digits)


def test_random_values_differ_each_time() -> None:
    spec = RandomBytes(generator="random")
    assert generate(spec, name="s", now=NOW) != generate(spec, name="s", now=NOW)


def test_ed25519_pair_parses_and_matches() -> None:
    values = generate(KeyPair(generator="ed25519"), name="s", now=NOW)
    private = serialization.load_pem_private_key(values["private.pem"], password=None)
    public = serialization.load_pem_public_key(values["public.pem"])
    assert isinstance(private, ed25519.Ed25519PrivateKey)
    assert isinstance(public, ed25519.Ed25519PublicKey)
    public.verify(private.sign(b"m"), b"m")


def test_rsa_pair_has_the_asked_size_under_the_asked_keys() -> None:
    spec = KeyPair(generator="rsa", bits=2048, privateKey="id_rsa", publicKey="id_rsa.pub")
    values = generate(spec, name="s", now=NOW)
    private = serialization.load_pem_private_key(values["id_rsa"], password=None)
    assert isinstance(private, rsa.RSAPrivateKey)
    assert private.key_size == 2048
    assert private.public_key().public_numbers() == (
        serialization.load_pem_public_key(values["id_rsa.pub"]).public_numbers()  # type: ignore[union-attr]
    )


@pytest.mark.parametrize("ca_key", ["ecdsa", "ed25519"])
def test_tls_certificate_chains_to_the_ca_and_matches_its_key(ca_key: str) -> None:
    ca = make_ca(ed25519.Ed25519PrivateKey.generate() if ca_key == "ed25519" else None)
    spec = TlsCertificate(generator="tls", ca="root", dnsNames=["api.example", "api"], days=30)
    values = generate(spec, name="api-tls", now=NOW, ca=ca)
    cert = x509.load_pem_x509_certificate(values["tls.crt"])
    key = serialization.load_pem_private_key(values["tls.key"], password=None)
    cert.verify_directly_issued_by(ca.certificate)
    assert cert.public_key() == key.public_key()
    assert values["ca.crt"] == ca.certificate.public_bytes(serialization.Encoding.PEM)
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["api.example", "api"]
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert cert.not_valid_after_utc == NOW + dt.timedelta(days=30)


def test_tls_without_its_ca_is_refused() -> None:
    with pytest.raises(ValueError, match="CA Secret 'root'"):
        generate(TlsCertificate(generator="tls", ca="root"), name="s", now=NOW)


# --- consumers -----------------------------------------------------------------------------------


def test_pods_reading_a_secret_into_env_are_its_consumers() -> None:
    pod = {
        "kind": "Pod",
        "metadata": {"name": "p", "namespace": "ns"},
        "spec": {
            "containers": [
                {
                    "name": "app",
                    "env": [
                        {"name": "A", "valueFrom": {"secretKeyRef": {"name": "one", "key": "k"}}}
                    ],
                    "envFrom": [{"secretRef": {"name": "two"}}],
                }
            ],
            "initContainers": [{"name": "init", "envFrom": [{"secretRef": {"name": "three"}}]}],
            "volumes": [{"name": "v", "secret": {"secretName": "four"}}],
        },
    }
    [parsed] = Inventory.from_objects([pod]).pods
    assert sorted(parsed.secret_refs) == ["four", "one", "three", "two"]


@pytest.mark.parametrize(
    ("created", "when", "before"),
    [
        ("2026-12-04T11:59:59Z", NOW, True),
        ("2026-12-04T12:00:00Z", NOW, False),
        ("2026-12-04T12:00:01Z", NOW, False),
        (None, NOW, True),
        ("2026-12-04T12:00:01Z", None, True),
    ],
    ids=["older", "same-second", "newer", "unknown-pod", "unknown-time"],
)
def test_only_pods_older_than_the_action_are_rolled_again(
    created: str | None, when: dt.datetime | None, before: bool
) -> None:
    meta = {"name": "p", "namespace": "ns"}
    if created:
        meta["creationTimestamp"] = created
    [pod] = Inventory.from_objects([{"kind": "Pod", "metadata": meta, "spec": {}}]).pods
    assert pod.created_before(when) is before
