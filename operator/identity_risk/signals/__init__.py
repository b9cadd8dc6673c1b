"""Records → signals: per-identity state, the inventory snapshot, and every detector.

Public interface (what the scorer, the operator and ``kubectl risk simulate`` call)::

    detectors = Detectors(config=DetectorConfig())            # thresholds, baseline caps, weights
    states = IdentityStates()                                 # or IdentityStates.from_dict(saved)
    inventory = Inventory.from_objects(k8s_json_dicts, pod_cidrs=[...], node_cidrs=[...])

    for record in records:                                    # ingest.AuditRecord
        signals = detectors.observe(record, states, inventory)   # detect, then learn
    detectors.posture(identity, inventory, now=now, state=states.find(identity))
    privilege_level(identity, inventory) -> PrivilegeLevel    # NONE < READ < … < ADMIN

``observe`` returns ``[]`` for requests not made by a ServiceAccount. Every ``Signal`` carries a
``SignalType`` value as ``type``, a ``key`` that is stable for the same fact (re-observing refreshes
rather than stacks), readable ``evidence``, and its OWASP NHI and NIST CSF 2.0 mappings
(``CATALOGUE``). Persist ``states.to_dict()``; restore with ``IdentityStates.from_dict``.
"""

from __future__ import annotations

from datetime import datetime

from identity_risk.domain import Confidence, Identity, Signal
from identity_risk.ingest.record import AuditRecord
from identity_risk.signals.catalogue import CATALOGUE, SignalSpec, SignalType
from identity_risk.signals.detectors import (
    BEHAVIOURAL_DETECTORS,
    DetectorConfig,
    is_sensitive,
)
from identity_risk.signals.inventory import Inventory, Location
from identity_risk.signals.posture import posture
from identity_risk.signals.rbac import (
    EffectivePermissions,
    PrivilegeLevel,
    effective_permissions,
    privilege_level,
)
from identity_risk.signals.state import BaselineConfig, IdentityState, IdentityStates

# Who/where anomalies: a request that raised one is never learned, even during warm-up, so an
# attacker active during warm-up cannot make their client or network part of the baseline. What
# an identity does is learned during warm-up (that is the warm-up's purpose).
_UNTRUSTED_ORIGIN = frozenset(
    {
        SignalType.TOKEN_REPLAY.value,
        SignalType.IMPOSSIBLE_TRAVEL.value,
        SignalType.ANOMALOUS_LOCATION.value,
        SignalType.HUMAN_USE.value,
    }
)


def _taints_baseline(signal: Signal) -> bool:
    if signal.confidence is Confidence.HIGH:
        return True
    return signal.type in _UNTRUSTED_ORIGIN and signal.confidence is not Confidence.LOW


class Detectors:
    """All detectors under one configuration: the single entry point of this package."""

    __slots__ = ("config",)

    def __init__(self, *, config: DetectorConfig | None = None) -> None:
        self.config = config or DetectorConfig()

    def detect(
        self, record: AuditRecord, state: IdentityState, inventory: Inventory
    ) -> list[Signal]:
        """The behavioural signals of one request, judged against ``state``. Pure: reads only."""
        config = self.config
        signals: list[Signal] = []
        for detector in BEHAVIOURAL_DETECTORS:
            found = detector(record, state, inventory, config)
            if found:
                signals.extend(found)
        return signals

    def observe(
        self, record: AuditRecord, states: IdentityStates | IdentityState, inventory: Inventory
    ) -> list[Signal]:
        """Detect on one request, then fold it into its identity's state.

        Accepts the whole ``IdentityStates`` (the identity's state is created on first sight)
        or one ``IdentityState``. Requests by users that are not ServiceAccounts yield ``[]``.
        """
        identity = record.identity
        if identity is None:
            return []
        if isinstance(states, IdentityStates):
            state = states.get(identity, now=record.timestamp)
        else:
            state = states
        signals = self.detect(record, state, inventory)
        location = inventory.locate(record.source_ip) if record.source_ip else None
        state.learn(
            record,
            config=self.config.baseline,
            network=location.network if location is not None else "",
            external=location is not None and location.kind == "external",
            sensitive=is_sensitive(record, identity),
            forbid_window=self.config.forbid_window.total_seconds(),
            suspicious=bool(signals) and any(_taints_baseline(s) for s in signals),
        )
        return signals

    def posture(
        self,
        identity: Identity,
        inventory: Inventory,
        *,
        now: datetime,
        state: IdentityState | None = None,
    ) -> list[Signal]:
        """The posture signals of one ServiceAccount (see ``signals.posture.posture``)."""
        return posture(identity, inventory, now=now, state=state, config=self.config)


__all__ = [
    "BEHAVIOURAL_DETECTORS",
    "CATALOGUE",
    "BaselineConfig",
    "DetectorConfig",
    "Detectors",
    "EffectivePermissions",
    "IdentityState",
    "IdentityStates",
    "Inventory",
    "Location",
    "PrivilegeLevel",
    "SignalSpec",
    "SignalType",
    "effective_permissions",
    "posture",
    "privilege_level",
]
