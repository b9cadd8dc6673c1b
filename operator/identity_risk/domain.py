"""The vocabulary every stage of the loop shares: identities, confidence, signals, actions.

This module exists so that ``ingest``, ``signals``, ``scoring`` and ``policy`` can talk to each
other without importing each other's internals. Everything here is immutable plain data; nothing
here performs I/O or reads the clock (time always arrives as an argument).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import NewType

SERVICE_ACCOUNT_PREFIX = "system:serviceaccount:"

Username = NewType("Username", str)
"""A Kubernetes username exactly as the apiserver reports it (``user.username``)."""

CredentialID = NewType("CredentialID", str)
"""The ``authentication.kubernetes.io/credential-id`` of a bound token, e.g. ``JTI=...``."""


@dataclass(frozen=True, slots=True, order=True)
class Identity:
    """A workload identity: one ServiceAccount, named by namespace and name."""

    namespace: str
    name: str

    @property
    def username(self) -> Username:
        return Username(f"{SERVICE_ACCOUNT_PREFIX}{self.namespace}:{self.name}")

    @classmethod
    def from_username(cls, username: str) -> Identity | None:
        """The ServiceAccount behind a username, or None for users that are not one."""
        if not username.startswith(SERVICE_ACCOUNT_PREFIX):
            return None
        rest = username[len(SERVICE_ACCOUNT_PREFIX) :]
        namespace, sep, name = rest.partition(":")
        if not sep or not namespace or not name or ":" in name:
            return None
        return cls(namespace=namespace, name=name)

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


class Confidence(enum.IntEnum):
    """How sure the evidence is. Only High may trigger containment on its own."""

    LOW = 1
    MEDIUM = 2
    HIGH = 3

    @property
    def label(self) -> str:
        return self.name.capitalize()

    @classmethod
    def parse(cls, value: str) -> Confidence:
        try:
            return cls[value.upper()]
        except KeyError:
            raise ValueError(
                f"unknown confidence {value!r}: expected one of Low, Medium, High"
            ) from None


class SignalKind(enum.StrEnum):
    """Whether a signal describes what an identity did or what it could do."""

    BEHAVIOURAL = "Behavioural"
    POSTURE = "Posture"
    EXTERNAL = "External"


class ActionType(enum.StrEnum):
    """The responses a band can order, in DESIGN.md's table."""

    NOTIFY = "Notify"
    REQUIRE_APPROVAL = "RequireApproval"
    RESTRICT_SCOPE = "RestrictScope"
    DENY_API_ACCESS = "DenyAPIAccess"
    REVOKE_TOKEN = "RevokeToken"
    RECREATE_SERVICE_ACCOUNT = "RecreateServiceAccount"
    SHORTEN_TOKEN_TTL = "ShortenTokenTTL"
    QUARANTINE_PODS = "QuarantinePods"
    ROTATE_SECRETS = "RotateSecrets"


class Mode(enum.StrEnum):
    """Audit decides and records; Enforce also acts."""

    AUDIT = "Audit"
    ENFORCE = "Enforce"


@dataclass(frozen=True, slots=True)
class Signal:
    """One piece of evidence about one identity, produced by a detector.

    ``key`` identifies the fact the signal is about (for example the credential and source IP of
    a token replay) so that re-observing the same fact refreshes a signal instead of stacking it.
    ``weight`` is the signal's base contribution in score points before decay and amplification.
    """

    type: str
    identity: Identity
    kind: SignalKind
    weight: float
    confidence: Confidence
    observed_at: datetime
    key: str
    summary: str
    evidence: Mapping[str, str] = field(default_factory=dict)
    owasp_nhi: str = ""
    nist_csf: str = ""


def signal_to_dict(signal: Signal) -> dict[str, object]:
    """A signal as JSON-able data (for persisting scorer state in WorkloadIdentityRisk status)."""
    return {
        "type": signal.type,
        "identity": str(signal.identity),
        "kind": signal.kind.value,
        "weight": signal.weight,
        "confidence": signal.confidence.label,
        "observedAt": signal.observed_at.isoformat(),
        "key": signal.key,
        "summary": signal.summary,
        "evidence": dict(signal.evidence),
        "owaspNhi": signal.owasp_nhi,
        "nistCsf": signal.nist_csf,
    }


def signal_from_dict(data: Mapping[str, object]) -> Signal:
    """The inverse of ``signal_to_dict``; raises ValueError naming what is wrong."""
    try:
        namespace, _, name = str(data["identity"]).partition("/")
        evidence = data.get("evidence") or {}
        if not isinstance(evidence, Mapping):
            raise ValueError("evidence must be a mapping")
        weight = data["weight"]
        if not isinstance(weight, int | float):
            raise ValueError("weight must be a number")
        return Signal(
            type=str(data["type"]),
            identity=Identity(namespace=namespace, name=name),
            kind=SignalKind(str(data["kind"])),
            weight=float(weight),
            confidence=Confidence.parse(str(data["confidence"])),
            observed_at=datetime.fromisoformat(str(data["observedAt"])),
            key=str(data["key"]),
            summary=str(data.get("summary", "")),
            evidence={str(k): str(v) for k, v in evidence.items()},
            owasp_nhi=str(data.get("owaspNhi", "")),
            nist_csf=str(data.get("nistCsf", "")),
        )
    except KeyError as exc:
        raise ValueError(f"stored signal lacks {exc}") from None
