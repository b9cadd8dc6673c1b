"""RiskExceptions: time-boxed, owned exemptions, and what they exempt an identity from.

An exception either narrows scoring (``signalTypes``: those signals do not count) or, with no
signal types, exempts the identity from enforcement while decisions are still recorded. Expiry
is compared with the ``now`` passed in, so an expired exception simply stops matching.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from identity_risk.api.v1alpha1 import RiskException
from identity_risk.policy.coverage import IdentityContext


def active_exceptions(
    exceptions: Iterable[RiskException], *, ctx: IdentityContext, now: datetime
) -> tuple[RiskException, ...]:
    """The exceptions that apply to ``ctx.identity`` at ``now`` (unexpired, matching)."""
    out = []
    for exc in exceptions:
        if exc.spec.expires <= now:
            continue
        # As kubectl would, an exception written without a namespace lives in "default".
        if (exc.metadata.get("namespace") or "default") != ctx.identity.namespace:
            continue
        if exc.spec.service_account_name is not None:
            if exc.spec.service_account_name != ctx.identity.name:
                continue
        elif exc.spec.pod_selector is not None:
            if not any(exc.spec.pod_selector.matches(dict(p)) for p in ctx.pod_labels):
                continue
        else:
            continue
        out.append(exc)
    return tuple(sorted(out, key=lambda e: (e.spec.expires, str(e.metadata.get("name", "")))))


def exempt_signal_types(active: Iterable[RiskException]) -> frozenset[str]:
    """Signal types that must not count towards the score (from type-scoped exceptions)."""
    return frozenset(t for exc in active for t in exc.spec.signal_types)


def enforcement_exemption(active: Iterable[RiskException]) -> RiskException | None:
    """The first exception that exempts the identity from enforcement entirely, if any."""
    for exc in active:
        if not exc.spec.signal_types:
            return exc
    return None


def describe(exc: RiskException) -> str:
    name = exc.metadata.get("name", "?")
    ns = exc.metadata.get("namespace", "")
    where = f"{ns}/{name}" if ns else str(name)
    return (
        f"RiskException {where} (owner {exc.spec.owner}, until {exc.spec.expires.isoformat()}):"
        f" {exc.spec.reason}"
    )
