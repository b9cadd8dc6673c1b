"""What the authorization webhook answers: deny, or no opinion — never allow.

The enforcement point sits at the authorization decision, so a decision to deny an identity, to
deny one leaked token (by its ``credential-id``) or to restrict an identity to its observed
baseline takes effect on that identity's very next API request. RBAC stays the source of what is
permitted: this webhook can only take permissions away.

The state is a plain immutable value rebuilt from RiskDecisions, so every operator replica answers
the same from the same records; ``review`` is a pure function of a SubjectAccessReview, that state
and the time.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from identity_risk.domain import Identity
from identity_risk.ingest import operation_key

CREDENTIAL_ID_KEY = "authentication.kubernetes.io/credential-id"


class BlockKind(enum.StrEnum):
    DENY_IDENTITY = "DenyIdentity"
    DENY_CREDENTIAL = "DenyCredential"
    RESTRICT_SCOPE = "RestrictScope"


@dataclass(frozen=True, slots=True)
class Block:
    """One enforcement in force at the authorization webhook, traceable to its decision."""

    kind: BlockKind
    identity: Identity
    decision: str
    """``namespace/name`` of the RiskDecision that ordered it."""
    credential_id: str = ""
    allowed: frozenset[str] = frozenset()
    """RESTRICT_SCOPE: the operation keys (``ingest.operation_key``) the identity may still use."""
    until: datetime | None = None

    def active(self, now: datetime) -> bool:
        return self.until is None or now < self.until


@dataclass(frozen=True, slots=True)
class Request:
    """The parts of a SubjectAccessReview that matter here."""

    user: str
    credential_id: str
    operation: str
    """The request's operation key (``ingest.operation_key``); empty when it names none."""

    @classmethod
    def from_review(cls, review: Mapping[str, Any]) -> Request:
        """Read a ``SubjectAccessReview`` (v1) body; raise ValueError when it is not one."""
        if review.get("kind") != "SubjectAccessReview" or not isinstance(review.get("spec"), dict):
            raise ValueError("expected a SubjectAccessReview with a spec")
        spec = review["spec"]
        extra = spec.get("extra") or {}
        cred = extra.get(CREDENTIAL_ID_KEY) or []
        attrs = spec.get("resourceAttributes")
        other = spec.get("nonResourceAttributes")
        operation = ""
        if isinstance(attrs, dict):
            operation = operation_key(
                str(attrs.get("verb", "")),
                str(attrs.get("group", "")),
                str(attrs.get("resource", "")),
                str(attrs.get("subresource", "")),
                str(attrs.get("namespace", "")),
            )
        elif isinstance(other, dict):
            operation = operation_key(str(other.get("verb", "")), path=str(other.get("path", "")))
        return cls(
            user=str(spec.get("user", "")),
            credential_id=str(cred[0]) if isinstance(cred, list) and cred else "",
            operation=operation,
        )


@dataclass(frozen=True, slots=True)
class Verdict:
    denied: bool
    reason: str = ""
    decision: str = ""

    def response(self, review: Mapping[str, Any]) -> dict[str, Any]:
        """The SubjectAccessReview to send back to the apiserver."""
        status: dict[str, Any] = {"allowed": False}
        if self.denied:
            status |= {"denied": True, "reason": self.reason}
        return {
            "apiVersion": review.get("apiVersion", "authorization.k8s.io/v1"),
            "kind": "SubjectAccessReview",
            "status": status,
        }


NO_OPINION = Verdict(denied=False)


@dataclass(frozen=True, slots=True)
class AuthorizationState:
    """Every block in force, indexed the way requests look them up."""

    by_user: Mapping[str, tuple[Block, ...]] = field(default_factory=dict)
    by_credential: Mapping[str, tuple[Block, ...]] = field(default_factory=dict)

    @classmethod
    def of(cls, blocks: Iterable[Block]) -> AuthorizationState:
        by_user: dict[str, list[Block]] = {}
        by_cred: dict[str, list[Block]] = {}
        for block in blocks:
            if block.kind is BlockKind.DENY_CREDENTIAL:
                by_cred.setdefault(block.credential_id, []).append(block)
            else:
                by_user.setdefault(block.identity.username, []).append(block)
        return cls(
            by_user={k: tuple(v) for k, v in by_user.items()},
            by_credential={k: tuple(v) for k, v in by_cred.items()},
        )

    @property
    def blocks(self) -> tuple[Block, ...]:
        out = [b for bs in self.by_user.values() for b in bs]
        out += [b for bs in self.by_credential.values() for b in bs]
        return tuple(sorted(out, key=lambda b: (b.decision, b.kind.value, b.credential_id)))

    def with_blocks(self, blocks: Iterable[Block]) -> AuthorizationState:
        return AuthorizationState.of([*self.blocks, *blocks])

    def without_decision(self, decision: str) -> AuthorizationState:
        """The state once a decision's blocks are released."""
        return AuthorizationState.of(b for b in self.blocks if b.decision != decision)

    def without_kind(self, decision: str, kind: BlockKind) -> AuthorizationState:
        """The state once one kind of a decision's blocks is released (its other blocks stay)."""
        return AuthorizationState.of(
            b for b in self.blocks if b.decision != decision or b.kind is not kind
        )

    def replace_decision(self, decision: str, blocks: Iterable[Block]) -> AuthorizationState:
        return self.without_decision(decision).with_blocks(blocks)


def review(request: Request, state: AuthorizationState, *, now: datetime) -> Verdict:
    """Deny when a block in force covers the request; otherwise no opinion (RBAC decides)."""
    for block in (
        state.by_credential.get(request.credential_id, ()) if request.credential_id else ()
    ):
        if block.active(now):
            return Verdict(
                denied=True,
                decision=block.decision,
                reason=f"identity-risk: this token ({block.credential_id}) was revoked by "
                f"RiskDecision {block.decision}; the pod's next token is not affected",
            )
    for block in state.by_user.get(request.user, ()):
        if not block.active(now):
            continue
        if block.kind is BlockKind.DENY_IDENTITY:
            return Verdict(
                denied=True,
                decision=block.decision,
                reason=f"identity-risk: {block.identity} is denied API access by RiskDecision "
                f"{block.decision}; see `kubectl risk explain {block.identity}`",
            )
        if (
            block.kind is BlockKind.RESTRICT_SCOPE
            and request.operation
            and request.operation not in block.allowed
        ):
            return Verdict(
                denied=True,
                decision=block.decision,
                reason=f"identity-risk: {block.identity} is restricted to its observed baseline "
                f"({len(block.allowed)} operations) by RiskDecision {block.decision}; "
                f"'{request.operation.strip()}' is outside it; see `kubectl risk explain "
                f"{block.identity}`",
            )
    return NO_OPINION
