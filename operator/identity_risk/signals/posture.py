"""Posture detectors: what an identity could do and how it is configured, from the inventory.

Posture is context, not proof of compromise: every posture signal is Low confidence and of kind
``POSTURE``, so on its own it enriches the score and routes to review but never contains. Its
second use is the privilege level (``rbac.privilege_level``) that amplifies threat evidence.
"""

from __future__ import annotations

from datetime import datetime

from identity_risk.domain import Identity, Signal
from identity_risk.signals.catalogue import CATALOGUE, SignalType
from identity_risk.signals.detectors import DetectorConfig, make_signal
from identity_risk.signals.inventory import Inventory
from identity_risk.signals.rbac import effective_permissions
from identity_risk.signals.state import IdentityState

DEFAULT_SERVICE_ACCOUNT = "default"


def posture(
    identity: Identity,
    inventory: Inventory,
    *,
    now: datetime,
    state: IdentityState | None = None,
    config: DetectorConfig | None = None,
) -> list[Signal]:
    """Every posture signal for one ServiceAccount, sorted by type then key.

    ``state`` enables "automounted token never used": it fires when the identity has running
    pods with a mounted token and made no request since its state was created at least a warm-up
    period before ``now``.
    """
    config = config or DetectorConfig()
    signals: list[Signal] = []

    def add(kind: SignalType, key: str, summary: str, **evidence: str) -> None:
        signals.append(
            make_signal(
                kind, identity=identity, observed_at=now, key=key, summary=summary,
                evidence={"serviceAccount": str(identity), **evidence}, config=config,
            )
        )  # fmt: skip

    for kind, via in effective_permissions(identity, inventory).risky_patterns().items():
        add(kind, "rbac", f"{CATALOGUE[kind].title.lower()} via {via}", grantedVia=via)

    pods = inventory.pods_of(identity)
    workloads = sorted({p.workload for p in pods})
    if len(workloads) >= config.shared_service_account_workloads:
        add(
            SignalType.SHARED_SERVICE_ACCOUNT, "workloads",
            f"shared by {len(workloads)} workloads", workloads=", ".join(workloads[:20]),
        )  # fmt: skip
    if identity.name == DEFAULT_SERVICE_ACCOUNT and pods:
        add(
            SignalType.DEFAULT_SERVICE_ACCOUNT, "pods",
            f"the namespace's default ServiceAccount runs {len(pods)} pod(s)",
            pods=", ".join(sorted(p.name for p in pods)[:20]),
        )  # fmt: skip
    for secret in inventory.token_secrets_of(identity):
        add(
            SignalType.LEGACY_TOKEN_SECRET, secret.name,
            f"long-lived token Secret {secret.namespace}/{secret.name} never expires",
            secret=f"{secret.namespace}/{secret.name}",
        )  # fmt: skip
    limit = config.max_token_lifetime.total_seconds()
    long_lived = sorted(
        (p for p in pods if (p.token_expiration_seconds or 0) > limit), key=lambda p: p.name
    )
    if long_lived:
        longest = max(p.token_expiration_seconds or 0 for p in long_lived)
        add(
            SignalType.LONG_TOKEN_LIFETIME, "projected",
            f"projected token lifetime up to {longest / 3600:.0f}h (limit {limit / 3600:.0f}h)",
            pods=", ".join(p.name for p in long_lived[:20]), expirationSeconds=str(longest),
        )  # fmt: skip
    if state is not None and state.requests == 0 and pods:
        sa = inventory.service_account(identity)
        sa_automount = sa.automount if sa is not None else None
        mounted = [
            p for p in pods
            if p.automount is True or (p.automount is None and sa_automount is not False)
        ]  # fmt: skip
        tracked = now.timestamp() - state.created_at
        if mounted and tracked >= config.baseline.warmup.total_seconds():
            add(
                SignalType.UNUSED_AUTOMOUNTED_TOKEN, "automount",
                f"token mounted into {len(mounted)} pod(s) but never used in {tracked / 3600:.0f}h",
                pods=", ".join(sorted(p.name for p in mounted)[:20]),
            )  # fmt: skip
    signals.sort(key=lambda s: (s.type, s.key))
    return signals
