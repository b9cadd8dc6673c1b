"""Which policy covers an identity, and whether the identity may be acted on at all.

Two questions that must each have exactly one answer in the codebase. ``protection_reason`` is
the only place that decides an identity is protected (protected namespaces, kube-system and the
operator's own namespace by default, the operator's own ServiceAccount, and a ServiceAccount or
namespace carrying the break-glass annotation); every effect asks it rather than re-deriving the
rule. ``select_policy`` applies the policies' label selectors and
exclusions and resolves overlaps by priority, then name, so the choice is deterministic.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

from identity_risk.api.v1alpha1 import IdentityRiskPolicy, LabelSelector
from identity_risk.domain import Identity

ALWAYS_PROTECTED_NAMESPACES = frozenset({"kube-system"})
DEFAULT_OPERATOR_NAMESPACE = "identity-risk"
DEFAULT_OPERATOR_SERVICE_ACCOUNT = "identity-risk-operator"
BREAK_GLASS_ANNOTATION = "identityrisk.dev/break-glass"
"""``"true"`` on a ServiceAccount or its Namespace: never act there (decisions are still recorded)."""

_NO_LABELS: Mapping[str, str] = MappingProxyType({})


@dataclass(frozen=True, slots=True, kw_only=True)
class OperatorSelf:
    """The operator's own identity: never acted on, and its namespace is always protected."""

    namespace: str = DEFAULT_OPERATOR_NAMESPACE
    service_account: str = DEFAULT_OPERATOR_SERVICE_ACCOUNT

    @property
    def identity(self) -> Identity:
        return Identity(namespace=self.namespace, name=self.service_account)


@dataclass(frozen=True, slots=True, kw_only=True)
class IdentityContext:
    """What policy needs to know about an identity beyond its signals (from the inventory)."""

    identity: Identity
    namespace_labels: Mapping[str, str] = field(default_factory=lambda: _NO_LABELS)
    service_account_labels: Mapping[str, str] = field(default_factory=lambda: _NO_LABELS)
    pod_labels: tuple[Mapping[str, str], ...] = ()
    """Labels of the pods running as this identity (for RiskExceptions' podSelector)."""
    owner: str = ""
    break_glass: str = ""
    """Where the break-glass annotation is set (``ServiceAccount ns/name``, ``Namespace ns``)."""


def protection_reason(
    *,
    identity: Identity,
    protected_namespaces: Iterable[str],
    operator: OperatorSelf,
    break_glass: str = "",
) -> str | None:
    """Why ``identity`` must never be acted on, or None if it may be. The one place that decides.

    ``break_glass`` names the object carrying the break-glass annotation, if any
    (``IdentityContext.break_glass``).
    """
    if identity == operator.identity:
        return f"{identity} is the operator's own identity"
    if identity.namespace == operator.namespace:
        return f"namespace {identity.namespace} is the operator's own"
    if identity.namespace in ALWAYS_PROTECTED_NAMESPACES or identity.namespace in set(
        protected_namespaces
    ):
        return f"namespace {identity.namespace} is protected"
    if break_glass:
        return f"break-glass: {break_glass} is annotated {BREAK_GLASS_ANNOTATION}=true"
    return None


def is_break_glass(annotations: Mapping[str, str] | None) -> bool:
    """Whether an object's annotations declare break-glass."""
    return str((annotations or {}).get(BREAK_GLASS_ANNOTATION, "")).strip().lower() == "true"


def covers(policy: IdentityRiskPolicy, *, ctx: IdentityContext) -> bool:
    """Whether ``policy``'s selector and exclusions take in this identity."""
    sel = policy.spec.selector
    ident = ctx.identity
    if ident.namespace in sel.exclude_namespaces:
        return False
    if f"{ident.namespace}/{ident.name}" in sel.exclude_service_accounts:
        return False
    return _matches(sel.namespace_selector, ctx.namespace_labels) and _matches(
        sel.service_account_selector, ctx.service_account_labels
    )


def select_policy(
    policies: Sequence[IdentityRiskPolicy], *, ctx: IdentityContext
) -> IdentityRiskPolicy | None:
    """The policy that governs ``ctx.identity``: highest priority, then alphabetical by name."""
    best: IdentityRiskPolicy | None = None
    for p in policies:
        if not covers(p, ctx=ctx):
            continue
        if best is None or (-p.spec.priority, p.name) < (-best.spec.priority, best.name):
            best = p
    return best


def _matches(selector: LabelSelector, labels: Mapping[str, str]) -> bool:
    return selector.matches(dict(labels))
