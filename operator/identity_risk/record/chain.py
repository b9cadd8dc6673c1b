"""The chain of record: every decision is a link carrying the previous link's hash and a signature.

Score, decision and action are logged as one chain so that an auditor can tell that no decision
was removed, reordered or edited after the fact. A link's hash covers the previous hash and the
canonical JSON of its payload; its Ed25519 signature covers the hash. Verification needs only the
public key. This module is pure (no files, no clock): :mod:`identity_risk.record.log` persists links.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

GENESIS = "0" * 64
"""The ``previous_hash`` of the first link."""


def canonical_json(payload: Mapping[str, Any]) -> bytes:
    """The one byte representation a payload is hashed in: sorted keys, no spaces, UTF-8."""
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def link_hash(previous_hash: str, payload: Mapping[str, Any]) -> str:
    return hashlib.sha256(previous_hash.encode() + b"\n" + canonical_json(payload)).hexdigest()


def key_id(public_key: Ed25519PublicKey) -> str:
    """A short, stable name for a signing key: the start of the SHA-256 of its raw bytes."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class Link:
    """One entry of the chain."""

    index: int
    previous_hash: str
    hash: str
    signature: str
    key_id: str
    payload: Mapping[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "previousHash": self.previous_hash,
            "hash": self.hash,
            "signature": self.signature,
            "keyId": self.key_id,
            "payload": dict(self.payload),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Link:
        try:
            return cls(
                index=int(data["index"]),
                previous_hash=str(data["previousHash"]),
                hash=str(data["hash"]),
                signature=str(data["signature"]),
                key_id=str(data["keyId"]),
                payload=dict(data["payload"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"not a chain link: {exc}") from None


class Signer:
    """Appends links to a chain with one Ed25519 key."""

    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        self._key = private_key
        self.public_key = private_key.public_key()
        self.key_id = key_id(self.public_key)

    @classmethod
    def generate(cls) -> Signer:
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def from_pem(cls, pem: bytes) -> Signer:
        key = serialization.load_pem_private_key(pem, password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError("the decision-log signing key must be an Ed25519 private key")
        return cls(key)

    def private_pem(self) -> bytes:
        return self._key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    def public_pem(self) -> bytes:
        return public_pem(self.public_key)

    def link(self, *, previous: Link | None, payload: Mapping[str, Any]) -> Link:
        """The link that follows ``previous`` (or starts the chain) for ``payload``."""
        previous_hash = previous.hash if previous else GENESIS
        index = previous.index + 1 if previous else 0
        digest = link_hash(previous_hash, payload)
        signature = base64.b64encode(self._key.sign(bytes.fromhex(digest))).decode()
        return Link(
            index=index,
            previous_hash=previous_hash,
            hash=digest,
            signature=signature,
            key_id=self.key_id,
            payload=dict(payload),
        )


def public_pem(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def load_public_key(pem: bytes) -> Ed25519PublicKey:
    key = serialization.load_pem_public_key(pem)
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError("the decision-log verification key must be an Ed25519 public key")
    return key


@dataclass(frozen=True, slots=True)
class Verification:
    """The outcome of checking a chain: how many links held, and the first that did not."""

    links: int
    ok: bool
    broken_at: int | None = None
    problem: str = ""

    def __str__(self) -> str:
        if self.ok:
            return f"chain intact: {self.links} links verified"
        return f"chain BROKEN at link {self.broken_at}: {self.problem}"


def verify(links: Iterable[Link], public_key: Ed25519PublicKey) -> Verification:
    """Check order, hashes and signatures of a whole chain, from its first link."""
    expected_previous = GENESIS
    expected_kid = key_id(public_key)
    count = 0
    for position, link in enumerate(links):
        problem = ""
        if link.index != position:
            problem = f"index {link.index} where {position} was expected (a link is missing)"
        elif link.previous_hash != expected_previous:
            problem = "previous hash does not match the link before it (removed or reordered)"
        elif link_hash(link.previous_hash, link.payload) != link.hash:
            problem = "hash does not match the payload (the record was edited)"
        elif link.key_id != expected_kid:
            problem = f"signed with key {link.key_id}, not the verifying key {expected_kid}"
        else:
            try:
                public_key.verify(base64.b64decode(link.signature), bytes.fromhex(link.hash))
            except (InvalidSignature, ValueError):
                problem = "signature does not verify"
        if problem:
            return Verification(links=count, ok=False, broken_at=position, problem=problem)
        expected_previous = link.hash
        count += 1
    return Verification(links=count, ok=True)
