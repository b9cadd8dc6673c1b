"""RotateSecrets: new values for the secrets a compromised identity could read, then new pods.

A Secret opts in with the ``identityrisk.dev/rotate`` annotation, a JSON object naming its
generator and parameters (``parse_rotation`` documents and checks them). Only opted-in Secrets
that the identity's pods reference (volumes, projected sources, env) are rotated, optionally
narrowed by the action's ``secretSelector``; every pod in the namespace that references a rotated
Secret is then evicted so it restarts with the new value.

Values exist only between ``generate`` and the API call that stores them: outcomes, messages,
Events and logs name Secrets and keys, never values. Rotation cannot be undone (the old values
are gone on purpose); a replay after a crash recognises a Secret it already rotated by the
``identityrisk.dev/rotated-by`` annotation written in the same update as the values.
"""

from __future__ import annotations

import base64
import datetime as dt
import secrets
import string
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from identity_risk.api import v1alpha1 as v1
from identity_risk.enforce.actions import ActionContext, Outcome, identity_of, key_of

ROTATE_ANNOTATION = "identityrisk.dev/rotate"
ROTATED_BY_ANNOTATION = "identityrisk.dev/rotated-by"
ROTATED_AT_ANNOTATION = "identityrisk.dev/rotated-at"
LEGACY_TOKEN_TYPE = "kubernetes.io/service-account-token"
ALNUM = string.ascii_letters + string.digits


class _Generator(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class RandomBytes(_Generator):
    """``{"generator": "random", "key": "password", "length": 32, "encoding": "base64"}``.

    ``length`` counts random bytes for ``hex`` and ``base64`` and characters for ``alnum``.
    """

    generator: Literal["random"]
    key: str = Field(default="value", min_length=1, max_length=253)
    length: int = Field(default=32, ge=16, le=4096)
    encoding: Literal["hex", "base64", "alnum"] = "base64"


class KeyPair(_Generator):
    """``{"generator": "ed25519"}`` or ``{"generator": "rsa", "bits": 3072}``: PEM key pair.

    The private key (PKCS#8) goes to ``privateKey`` and the public key (SubjectPublicKeyInfo)
    to ``publicKey``, both keys of the Secret's data.
    """

    generator: Literal["ed25519", "rsa"]
    bits: Literal[2048, 3072, 4096] = 2048
    private_key: str = Field(default="private.pem", alias="privateKey", min_length=1)
    public_key: str = Field(default="public.pem", alias="publicKey", min_length=1)


class TlsCertificate(_Generator):
    """``{"generator": "tls", "ca": "my-ca", "dnsNames": ["api.example"], "days": 90}``.

    A new ECDSA P-256 key and a certificate for it issued by the CA whose ``tls.crt`` and
    ``tls.key`` are in the Secret named ``ca`` (same namespace); written as ``tls.crt``,
    ``tls.key`` and ``ca.crt``.
    """

    generator: Literal["tls"]
    ca: str = Field(min_length=1, max_length=253)
    common_name: str | None = Field(default=None, alias="commonName", max_length=64)
    dns_names: list[str] = Field(default_factory=list, alias="dnsNames", max_length=100)
    days: int = Field(default=90, ge=1, le=825)


RotationSpec = Annotated[RandomBytes | KeyPair | TlsCertificate, Field(discriminator="generator")]
_SPEC: TypeAdapter[RandomBytes | KeyPair | TlsCertificate] = TypeAdapter(RotationSpec)


def parse_rotation(text: str) -> RandomBytes | KeyPair | TlsCertificate:
    """The rotation a Secret asked for in its annotation; ``ValueError`` says what is wrong."""
    try:
        return _SPEC.validate_json(text)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'value'}: {e['msg']}" for e in exc.errors()
        )
        raise ValueError(
            f"annotation {ROTATE_ANNOTATION} is not a valid rotation ({problems}); expected e.g. "
            '{"generator":"random","length":32,"encoding":"base64"}, generators: random, '
            "ed25519, rsa, tls"
        ) from None


@dataclass(frozen=True, slots=True)
class Authority:
    """A CA that issues rotated TLS certificates."""

    certificate: x509.Certificate
    key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey

    @classmethod
    def from_pem(cls, certificate: bytes, key: bytes) -> Authority:
        private = serialization.load_pem_private_key(key, password=None)
        if not isinstance(
            private, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey
        ):
            raise ValueError("the CA key must be ECDSA, RSA or Ed25519")
        return cls(x509.load_pem_x509_certificate(certificate), private)


def generate(
    spec: RandomBytes | KeyPair | TlsCertificate,
    *,
    name: str,
    now: dt.datetime,
    ca: Authority | None = None,
) -> dict[str, bytes]:
    """Fresh values for a Secret's data keys (raw bytes; the API wants them base64-encoded)."""
    if isinstance(spec, RandomBytes):
        return {spec.key: random_value(spec.length, spec.encoding)}
    if isinstance(spec, KeyPair):
        private: ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey = (
            ed25519.Ed25519PrivateKey.generate()
            if spec.generator == "ed25519"
            else rsa.generate_private_key(public_exponent=65537, key_size=spec.bits)
        )
        return {spec.private_key: _private_pem(private), spec.public_key: _public_pem(private)}
    if ca is None:
        raise ValueError(f"the tls generator needs its CA Secret {spec.ca!r}")
    key = ec.generate_private_key(ec.SECP256R1())
    certificate = issue(
        ca,
        key,
        common_name=spec.common_name or name,
        dns_names=spec.dns_names,
        now=now,
        days=spec.days,
    )
    return {
        "tls.crt": certificate.public_bytes(serialization.Encoding.PEM),
        "tls.key": _private_pem(key),
        "ca.crt": ca.certificate.public_bytes(serialization.Encoding.PEM),
    }


def random_value(length: int, encoding: str) -> bytes:
    if encoding == "alnum":
        return "".join(secrets.choice(ALNUM) for _ in range(length)).encode()
    raw = secrets.token_bytes(length)
    return raw.hex().encode() if encoding == "hex" else base64.b64encode(raw)


def issue(
    ca: Authority,
    key: ec.EllipticCurvePrivateKey,
    *,
    common_name: str,
    dns_names: list[str],
    now: dt.datetime,
    days: int,
) -> x509.Certificate:
    """A leaf certificate for ``key`` (server and client auth), signed by ``ca``."""
    sans = [x509.DNSName(n) for n in (dns_names or [common_name])]
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(ca.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()),
            critical=False,
        )
    )
    algorithm = None if isinstance(ca.key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    return builder.sign(ca.key, algorithm)


def _private_pem(
    key: ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey,
) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _public_pem(key: ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _decoded(data: Mapping[str, bytes | str] | None, key: str) -> bytes:
    value = (data or {}).get(key)
    if not value:
        raise ValueError(f"has no {key}")
    return base64.b64decode(value)


# --- the action ----------------------------------------------------------------------------------


def rotate_secrets(ctx: ActionContext, action: v1.Action, obj: v1.RiskDecision) -> Outcome:
    """Regenerate the opted-in Secrets the identity's pods reference, then evict their consumers."""
    identity = identity_of(obj)
    namespace = identity.namespace
    decision = key_of(obj)
    inventory = ctx.inventory()
    referenced = dict.fromkeys(r for p in inventory.pods_of(identity) for r in p.secret_refs)
    candidates = [
        s.name
        for s in inventory.secrets
        if s.namespace == namespace
        and s.name in referenced
        and s.type != LEGACY_TOKEN_TYPE
        and ROTATE_ANNOTATION in s.annotations
    ]
    if not candidates:
        return Outcome(
            v1.ActionPhase.SKIPPED,
            f"no Secret referenced by the pods of {identity} opted in to rotation "
            f"({ROTATE_ANNOTATION})",
        )
    changed: list[str] = []
    problems: list[str] = []
    rotated: dict[str, dt.datetime | None] = {}  # Secret -> when its new value was written
    for name in candidates:
        secret = ctx.kube.get_secret(namespace, name)
        if secret is None or secret.metadata is None:
            continue
        meta = secret.metadata
        if action.secret_selector is not None and not action.secret_selector.matches(
            dict(meta.labels or {})
        ):
            continue
        annotations = meta.annotations or {}
        if annotations.get(ROTATED_BY_ANNOTATION) == decision:  # a replay: done already
            rotated[name] = _when(annotations.get(ROTATED_AT_ANNOTATION))
            changed.append(f"secret {namespace}/{name}: rotated")
            continue
        try:
            spec = parse_rotation(annotations.get(ROTATE_ANNOTATION, ""))
            ca = None
            if isinstance(spec, TlsCertificate):
                ca_secret = ctx.kube.get_secret(namespace, spec.ca)
                if ca_secret is None:
                    raise ValueError(f"its CA Secret {spec.ca!r} does not exist")
                try:
                    ca = Authority.from_pem(
                        _decoded(ca_secret.data, "tls.crt"), _decoded(ca_secret.data, "tls.key")
                    )
                except ValueError as exc:
                    raise ValueError(f"its CA Secret {spec.ca!r} {exc}") from None
            values = generate(spec, name=name, now=ctx.clock(), ca=ca)
        except ValueError as exc:
            problems.append(f"secret {namespace}/{name}: {exc}")
            continue
        now = ctx.clock()
        ctx.kube.patch_secret(
            namespace,
            name,
            data={k: base64.b64encode(v).decode() for k, v in values.items()},
            annotations={ROTATED_BY_ANNOTATION: decision, ROTATED_AT_ANNOTATION: now.isoformat()},
            resource_version=str(meta.resource_version or ""),
        )
        del values
        rotated[name] = now
        changed.append(
            f"secret {namespace}/{name}: rotated {spec.generator} "
            f"({', '.join(sorted(_keys(spec)))})"
        )
    evicted = []
    for pod in inventory.pods:
        # Only pods older than the new value: on a replay, pods re-created since have it.
        if pod.namespace == namespace and any(
            ref in rotated and pod.created_before(rotated[ref]) for ref in pod.secret_refs
        ):
            result = ctx.kube.evict(pod.namespace, pod.name)
            changed.append(f"pod {pod.namespace}/{pod.name}: {result}")
            evicted.append(f"{pod.name} {result}")
    message = f"rotated {len(rotated)} secret(s)" + (
        f"; consumers: {', '.join(evicted)}" if evicted else ""
    )
    if problems:
        return Outcome(
            v1.ActionPhase.FAILED,
            message + "; not rotated: " + "; ".join(problems),
            changed=tuple(changed),
        )
    return Outcome(v1.ActionPhase.SUCCEEDED, message, changed=tuple(changed))


def _when(value: str | None) -> dt.datetime | None:
    try:
        return dt.datetime.fromisoformat(value) if value else None
    except ValueError:
        return None


def _keys(spec: RandomBytes | KeyPair | TlsCertificate) -> list[str]:
    if isinstance(spec, RandomBytes):
        return [spec.key]
    if isinstance(spec, KeyPair):
        return [spec.private_key, spec.public_key]
    return ["tls.crt", "tls.key", "ca.crt"]
