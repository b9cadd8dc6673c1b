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

import math
from datetime import datetime

from identity_risk.domain import Confidence, Identity, Signal
from identity_risk.ingest.record import AuditRecord
from identity_risk.signals.catalogue import CATALOGUE, SignalSpec, SignalType
from identity_risk.signals.detectors import (
    BEHAVIOURAL_DETECTORS,
    SELF_REVIEWS,
    DetectorConfig,
    detect_anomalous_location,
    detect_baseline_deviation,
    detect_credential_access,
    detect_dormant_reactivated,
    detect_human_use,
    detect_impossible_travel,
    detect_privilege_escalation,
    detect_rate_deviation,
    detect_reconnaissance,
    detect_token_replay,
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
from identity_risk.signals.state import (
    HUMAN_USER_AGENT_FAMILIES,
    BaselineConfig,
    IdentityState,
    IdentityStates,
    user_agent_family,
)

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

    __slots__ = ("_dormancy", "_forbid_window", "config")

    def __init__(self, *, config: DetectorConfig | None = None) -> None:
        self.config = config or DetectorConfig()
        self._dormancy = self.config.dormancy.total_seconds()
        self._forbid_window = self.config.forbid_window.total_seconds()

    def detect(
        self, record: AuditRecord, state: IdentityState, inventory: Inventory
    ) -> list[Signal]:
        """The behavioural signals of one request, judged against ``state``. Pure: reads only.

        Runs ``BEHAVIOURAL_DETECTORS`` in order. Each call is guarded by a copy of the detector's
        own first ruling-out test, so an ordinary request does not pay for ten function calls;
        the detectors re-check, so a guard can only save work, never change the outcome
        (``test_guards_never_change_the_outcome``).
        """
        config = self.config
        signals: list[Signal] = []
        if record.pod_uid or record.pod_name:
            signals += detect_token_replay(record, state, inventory, config)
        if record.credential_id and record.credential_id in state.credentials:
            signals += detect_impossible_travel(record, state, inventory, config)
        if record.source_ip and inventory.knows_networks:
            signals += detect_anomalous_location(record, state, inventory, config)
        if user_agent_family(record.user_agent) in HUMAN_USER_AGENT_FAMILIES:
            signals += detect_human_use(record, state, inventory, config)
        novel = record.operation not in state.operations
        if novel:
            signals += detect_privilege_escalation(record, state, inventory, config)
            if record.resource == "secrets":
                signals += detect_credential_access(record, state, inventory, config)
        if record.denied or (novel and record.resource in SELF_REVIEWS):
            signals += detect_reconnaissance(record, state, inventory, config)
        last = state.last_seen
        if last is not None and record.epoch - last >= self._dormancy:
            signals += detect_dormant_reactivated(record, state, inventory, config)
        if state.rate_count >= math.floor(state.rate_limit(config.baseline)):
            signals += detect_rate_deviation(record, state, inventory, config)
        if novel:
            signals += detect_baseline_deviation(record, state, inventory, config)
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
        if record.source_ip:
            location = inventory.locate(record.source_ip)
            network, external = location.network, location.kind == "external"
        else:
            network, external = "", False
        state.learn(
            record,
            config=self.config.baseline,
            network=network,
            external=external,
            sensitive=record.operation not in state.operations and is_sensitive(record, identity),
            forbid_window=self._forbid_window,
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
