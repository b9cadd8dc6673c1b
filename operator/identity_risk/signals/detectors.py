"""Behavioural detectors: what one audited request says about the identity that made it.

Each detector is a pure function ``(record, state, inventory, config) -> list[Signal]`` that reads
the identity's state as it was *before* this request; ``Detectors.observe`` runs them all and then
folds the request into the state. They are ordered cheapest-first and each bails out on the first
comparison that rules it out, because they run on every request.

Confidence follows what the evidence can prove: a bound token used away from its pod is High (the
apiserver vouches for the token's binding and the source IP); an escalation the apiserver allowed
from an identity whose baseline never did it is High; a denied attempt, or anything during
warm-up, is Medium; deviations from a statistical baseline are Low.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import MappingProxyType

from identity_risk.domain import Confidence, Identity, Signal
from identity_risk.ingest.record import AuditRecord
from identity_risk.signals.catalogue import CATALOGUE, SignalType
from identity_risk.signals.inventory import Inventory
from identity_risk.signals.state import (
    HUMAN_USER_AGENT_FAMILIES,
    BaselineConfig,
    IdentityState,
    user_agent_family,
)

_RBAC = "rbac.authorization.k8s.io"
_ADMISSION = "admissionregistration.k8s.io"
_WRITES = frozenset({"create", "update", "patch"})
_WORKLOADS = frozenset({"pods", "deployments", "daemonsets", "statefulsets", "replicasets",
                        "jobs", "cronjobs", "replicationcontrollers"})  # fmt: skip
SELF_REVIEWS = frozenset({"selfsubjectaccessreviews", "selfsubjectrulesreviews"})


@dataclass(frozen=True, slots=True, kw_only=True)
class DetectorConfig:
    """Thresholds of the behavioural and posture detectors; defaults suit a production cluster."""

    baseline: BaselineConfig = field(default_factory=BaselineConfig)
    impossible_travel_window: timedelta = timedelta(minutes=10)
    dormancy: timedelta = timedelta(days=30)
    forbid_window: timedelta = timedelta(minutes=1)
    forbid_burst: int = 5
    trusted_networks: tuple[str, ...] = ()
    """Network keys (``203.0.113.0/24``) outside the cluster that identities may call from."""
    shared_service_account_workloads: int = 3
    max_token_lifetime: timedelta = timedelta(hours=24)
    weights: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))
    """Per signal type weight overrides (``{"TokenReplay": 60}``)."""


def _when(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat()


def make_signal(
    kind: SignalType,
    *,
    identity: Identity,
    observed_at: datetime,
    key: str,
    summary: str,
    evidence: Mapping[str, str],
    config: DetectorConfig,
    confidence: Confidence | None = None,
    scale: float = 1.0,
) -> Signal:
    """A signal of a catalogued type with its default weight (or override), scaled."""
    spec = CATALOGUE[kind]
    weight = config.weights.get(kind.value, spec.weight) * scale
    return Signal(
        type=kind.value,
        identity=identity,
        kind=spec.kind,
        weight=weight,
        confidence=confidence if confidence is not None else spec.confidence,
        observed_at=observed_at,
        key=f"{kind.value}:{key}",
        summary=summary,
        evidence=MappingProxyType(dict(evidence)),
        owasp_nhi=spec.owasp_nhi,
        nist_csf=spec.nist_csf,
    )


def _evidence(record: AuditRecord, **extra: str) -> dict[str, str]:
    evidence = {
        "request": record.describe(),
        "auditID": record.audit_id,
        "sourceIP": record.source_ip,
        "userAgent": record.user_agent,
        "time": record.timestamp.isoformat(),
    }
    if record.pod_name:
        owner = record.identity
        evidence["tokenPod"] = f"{owner.namespace}/{record.pod_name}" if owner else record.pod_name
    if record.credential_id:
        evidence["credentialID"] = record.credential_id
    evidence.update({k: v for k, v in extra.items() if v})
    return evidence


# --- classification shared by detectors and learning -----------------------------------------


def escalation_pattern(record: AuditRecord, identity: Identity) -> tuple[str, bool] | None:
    """The privilege-escalation pattern a request matches, and whether it is a strong one."""
    verb, resource, group, sub = record.verb, record.resource, record.api_group, record.subresource
    if verb == "impersonate" or record.impersonated_user:
        return "impersonate", True
    if verb in ("escalate", "bind"):
        return f"rbac-{verb}", True
    if group == _RBAC and verb in _WRITES and not sub:
        return f"write-{resource}", resource.startswith("cluster")
    if resource == "serviceaccounts" and sub == "token" and verb == "create":
        if record.name != identity.name or record.namespace != identity.namespace:
            return "token-for-other-identity", True
        return None
    if resource == "pods" and sub in ("exec", "attach", "ephemeralcontainers"):
        return f"pods-{sub}", False
    if resource == "nodes" and sub == "proxy":
        return "nodes-proxy", True
    if (
        resource == "certificatesigningrequests"
        and (sub == "approval" or verb == "approve")
        and verb in ("update", "patch", "approve")
    ):
        return "csr-approval", True
    if (
        group == _ADMISSION
        and resource.endswith("webhookconfigurations")
        and (verb in _WRITES or verb == "delete")
    ):
        return "webhook-configuration-write", True
    if (
        verb == "create"
        and resource in _WORKLOADS
        and not sub
        and (record.privileged or record.host_path or record.host_namespace)
    ):
        return "privileged-workload", True
    return None


def is_secret_access(record: AuditRecord) -> bool:
    return record.resource == "secrets" and not record.api_group and not record.subresource


def is_sensitive(record: AuditRecord, identity: Identity) -> bool:
    """Operations that are never learned into a baseline after warm-up."""
    return (
        is_secret_access(record)
        or record.resource in SELF_REVIEWS
        or escalation_pattern(record, identity) is not None
    )


# --- the detectors ------------------------------------------------------------------------


def detect_token_replay(
    record: AuditRecord, state: IdentityState, inventory: Inventory, config: DetectorConfig
) -> list[Signal]:
    """A pod-bound token used from an IP that is neither its pod's nor its node's (NHI2)."""
    if not record.pod_uid and not record.pod_name:
        return []
    ip = record.source_ip
    identity = state.identity
    if record.pod_uid:
        pod = inventory.pod_by_uid(record.pod_uid)
    else:
        pod = inventory.pod(identity.namespace, record.pod_name)
    node_name = pod.node if pod is not None else record.node_name
    node = inventory.node(node_name) if node_name else None
    node_ips = node.ips if node is not None else ()
    if pod is not None and pod.ips:
        if ip in pod.ips or ip in node_ips:
            return []
        confidence, scale, why = Confidence.HIGH, 1.0, "neither its pod's IP nor its node's"
        pod_ips = ", ".join(pod.ips)
    else:
        # The pod is not (yet) in the inventory: only an address outside the cluster is proof.
        if ip in node_ips or not inventory.knows_networks:
            return []
        if inventory.locate(ip).kind != "external":
            return []
        confidence, scale, why = (
            Confidence.MEDIUM,
            0.7,
            "outside the cluster (pod not in inventory)",
        )
        pod_ips = ""
    return [
        make_signal(
            SignalType.TOKEN_REPLAY,
            identity=identity,
            observed_at=record.timestamp,
            key=f"{record.credential_id or record.pod_uid}@{ip}",
            summary=(
                f"token bound to pod {identity.namespace}/{record.pod_name} used from {ip}, {why}"
            ),
            evidence=_evidence(
                record,
                tokenPod=f"{identity.namespace}/{record.pod_name}",
                podIPs=pod_ips,
                node=node_name,
                nodeIPs=", ".join(node_ips),
            ),
            config=config,
            confidence=confidence,
            scale=scale,
        )
    ]


def detect_impossible_travel(
    record: AuditRecord, state: IdentityState, inventory: Inventory, config: DetectorConfig
) -> list[Signal]:
    """One credential used from two network locations within a short window."""
    credential = record.credential_id
    if not credential:
        return []
    seen = state.credentials.get(credential)
    if not seen:
        return []
    if len(seen) == 1 and next(iter(seen.values()))[0] == record.source_ip:
        return []
    location = inventory.locate(record.source_ip)
    if location.kind == "unknown" or (len(seen) == 1 and location.network in seen):
        return []
    window = config.impossible_travel_window.total_seconds()
    inside = location.kind != "external"
    for network, (ip, last) in seen.items():
        if network == location.network or not 0 <= record.epoch - last <= window:
            continue
        # Moving between the cluster's own networks (dual-stack, pods on other nodes) is not
        # travel; a bound token used from the wrong pod is token replay's to report.
        if inside and inventory.locate(ip).kind != "external":
            continue
        return [
            make_signal(
                SignalType.IMPOSSIBLE_TRAVEL,
                identity=state.identity,
                observed_at=record.timestamp,
                key=f"{credential}:{'|'.join(sorted((network, location.network)))}",
                summary=(
                    f"credential {credential} used from {record.source_ip} ({location.network})"
                    f" {record.epoch - last:.0f}s after {ip} ({network})"
                ),
                evidence=_evidence(
                    record,
                    previousIP=ip,
                    previousNetwork=network,
                    previousTime=_when(last),
                    network=location.network,
                ),
                config=config,
            )
        ]
    return []


def detect_anomalous_location(
    record: AuditRecord, state: IdentityState, inventory: Inventory, config: DetectorConfig
) -> list[Signal]:
    """A request from outside the cluster's pod and node networks, not in the baseline."""
    if not record.source_ip or not inventory.knows_networks:
        return []
    location = inventory.locate(record.source_ip)
    if location.kind != "external" or location.network in config.trusted_networks:
        return []
    if location.network in state.networks:
        return []
    # With nothing learned yet there is no "usual" place to deviate from: report at Low, and let
    # the baseline learn it (an external CI runner calls from outside from its first request).
    first_sight = not state.networks
    return [
        make_signal(
            SignalType.ANOMALOUS_LOCATION,
            identity=state.identity,
            observed_at=record.timestamp,
            key=location.network,
            summary=f"request from {record.source_ip}, outside the cluster's pod and node networks",
            evidence=_evidence(record, network=location.network),
            config=config,
            confidence=Confidence.LOW if first_sight else None,
            scale=0.5 if first_sight else 1.0,
        )
    ]


def detect_human_use(
    record: AuditRecord, state: IdentityState, inventory: Inventory, config: DetectorConfig
) -> list[Signal]:
    """Human tooling (kubectl, curl, …) using an identity whose baseline is its app client."""
    family = user_agent_family(record.user_agent)
    if family not in HUMAN_USER_AGENT_FAMILIES or family in state.user_agents:
        return []
    usual = sorted(f for f in state.user_agents if f not in HUMAN_USER_AGENT_FAMILIES)
    if not usual:
        return []
    return [
        make_signal(
            SignalType.HUMAN_USE,
            identity=state.identity,
            observed_at=record.timestamp,
            key=family,
            summary=f"{family} used with this workload identity, which normally uses {', '.join(usual)}",
            evidence=_evidence(record, family=family, baselineFamilies=", ".join(usual)),
            config=config,
        )
    ]


def detect_privilege_escalation(
    record: AuditRecord, state: IdentityState, inventory: Inventory, config: DetectorConfig
) -> list[Signal]:
    """Writes to RBAC, bind/escalate/impersonate, tokens for others, privileged pods, exec, …"""
    match = escalation_pattern(record, state.identity)
    if match is None or record.operation in state.operations:
        return []
    pattern, strong = match
    warm = state.is_warm(record.epoch, config.baseline)
    if record.denied:
        confidence, scale, outcome = Confidence.MEDIUM, (0.5 if strong else 0.3), "denied"
    elif strong and warm:
        confidence, scale, outcome = Confidence.HIGH, 1.0, "allowed"
    elif strong or warm:
        confidence, scale, outcome = Confidence.MEDIUM, (0.8 if strong else 0.6), "allowed"
    else:
        # Still learning what this identity normally does: a GitOps controller applying Roles
        # on install day looks exactly like this. Enrich, do not restrict.
        confidence, scale, outcome = Confidence.LOW, 0.6, "allowed"
    return [
        make_signal(
            SignalType.PRIVILEGE_ESCALATION,
            identity=state.identity,
            observed_at=record.timestamp,
            key=f"{pattern}:{record.operation}",
            summary=f"{pattern.replace('-', ' ')} ({outcome}): {record.describe()}",
            evidence=_evidence(record, pattern=pattern, reason=record.reason),
            config=config,
            confidence=confidence,
            scale=scale,
        )
    ]


def detect_credential_access(
    record: AuditRecord, state: IdentityState, inventory: Inventory, config: DetectorConfig
) -> list[Signal]:
    """Listing or watching secrets, or reading them outside the baseline or namespace."""
    if not is_secret_access(record) or record.operation in state.operations:
        return []
    verb = record.verb
    own = state.identity.namespace
    warm = state.is_warm(record.epoch, config.baseline)
    if verb in ("list", "watch"):
        scope = "cluster-wide" if not record.namespace else f"in {record.namespace}"
        strong = not record.namespace or record.namespace != own
        # During warm-up a secrets controller listing cluster-wide is indistinguishable from
        # credential harvesting: enrich only (Low) until the baseline says otherwise.
        strength = Confidence.HIGH if strong else Confidence.MEDIUM
        confidence = strength if warm else Confidence.LOW
        scale = 1.0 if strong else 0.7
    elif verb == "get":
        if record.namespace == own:
            if not warm:
                return []
            scope, confidence, scale = f"in {own}, outside its baseline", Confidence.LOW, 0.4
        else:
            scope, confidence, scale = (
                f"in another namespace ({record.namespace})",
                Confidence.MEDIUM,
                0.8,
            )
    else:
        return []
    if record.denied:
        confidence, scale = min(confidence, Confidence.MEDIUM), scale * 0.5
    return [
        make_signal(
            SignalType.CREDENTIAL_ACCESS,
            identity=state.identity,
            observed_at=record.timestamp,
            key=record.operation,
            summary=f"{verb} secrets {scope} ({'denied' if record.denied else 'allowed'})",
            evidence=_evidence(record, secret=record.name),
            config=config,
            confidence=confidence,
            scale=scale,
        )
    ]


def detect_reconnaissance(
    record: AuditRecord, state: IdentityState, inventory: Inventory, config: DetectorConfig
) -> list[Signal]:
    """Self-subject access/rules reviews, and bursts of forbidden requests."""
    signals: list[Signal] = []
    if record.resource in SELF_REVIEWS and record.operation not in state.operations:
        signals.append(
            make_signal(
                SignalType.RECONNAISSANCE,
                identity=state.identity,
                observed_at=record.timestamp,
                key=record.resource,
                summary=f"asked the apiserver what it may do ({record.resource})",
                evidence=_evidence(record),
                config=config,
                scale=0.5,
            )
        )
    if record.denied:
        window = config.forbid_window.total_seconds()
        bucket = math.floor(record.epoch / window)
        count = state.forbid_count + 1 if bucket == state.forbid_bucket else 1
        if count == config.forbid_burst:
            signals.append(
                make_signal(
                    SignalType.RECONNAISSANCE,
                    identity=state.identity,
                    observed_at=record.timestamp,
                    key="forbidden-burst",
                    summary=f"{count} forbidden requests within {window:.0f}s",
                    evidence=_evidence(record, forbidden=str(count), reason=record.reason),
                    config=config,
                    confidence=Confidence.MEDIUM,
                )
            )
    return signals


def detect_dormant_reactivated(
    record: AuditRecord, state: IdentityState, inventory: Inventory, config: DetectorConfig
) -> list[Signal]:
    """An identity silent for longer than the dormancy period is used again (NHI1)."""
    last = state.last_seen
    if last is None or record.epoch - last < config.dormancy.total_seconds():
        return []
    days = (record.epoch - last) / 86400
    return [
        make_signal(
            SignalType.DORMANT_REACTIVATED,
            identity=state.identity,
            observed_at=record.timestamp,
            key=_when(last),
            summary=f"first request after {days:.0f} days of silence",
            evidence=_evidence(record, lastSeen=_when(last)),
            config=config,
        )
    ]


def detect_rate_deviation(
    record: AuditRecord, state: IdentityState, inventory: Inventory, config: DetectorConfig
) -> list[Signal]:
    """The request rate crosses well above the learned per-window peak (after warm-up)."""
    baseline = config.baseline
    limit = state.rate_limit(baseline)
    if state.rate_count < math.floor(limit) or not state.is_warm(record.epoch, baseline):
        return []  # cheap pre-check: even counting this request cannot cross the limit
    count = state.count_in_rate_bucket(record.epoch, baseline)
    if count != math.floor(limit) + 1:
        return []
    window = baseline.rate_window.total_seconds()
    return [
        make_signal(
            SignalType.RATE_DEVIATION,
            identity=state.identity,
            observed_at=record.timestamp,
            key=f"rate:{state.rate_bucket_of(record.epoch, baseline)}",
            summary=f"more than {limit:.0f} requests in {window:.0f}s (learned peak {state.rate_peak})",
            evidence=_evidence(record, learnedPeak=str(state.rate_peak), limit=f"{limit:.0f}"),
            config=config,
        )
    ]


def detect_baseline_deviation(
    record: AuditRecord, state: IdentityState, inventory: Inventory, config: DetectorConfig
) -> list[Signal]:
    """An ordinary operation the identity never performed during warm-up (flagged once)."""
    if record.operation in state.operations or not state.is_warm(record.epoch, config.baseline):
        return []
    if is_sensitive(record, state.identity):
        return []  # the dedicated detectors speak for these
    if len(state.operations) >= config.baseline.max_operations:
        return []  # a full baseline cannot tell new from forgotten
    return [
        make_signal(
            SignalType.BASELINE_DEVIATION,
            identity=state.identity,
            observed_at=record.timestamp,
            key=record.operation,
            summary=f"outside its learned baseline: {record.describe()}",
            evidence=_evidence(record, operation=record.operation),
            config=config,
        )
    ]


Detector = Callable[[AuditRecord, IdentityState, Inventory, DetectorConfig], list[Signal]]

BEHAVIOURAL_DETECTORS: tuple[Detector, ...] = (
    detect_token_replay,
    detect_impossible_travel,
    detect_anomalous_location,
    detect_human_use,
    detect_privilege_escalation,
    detect_credential_access,
    detect_reconnaissance,
    detect_dormant_reactivated,
    detect_rate_deviation,
    detect_baseline_deviation,
)
"""Every behavioural detector, in the order ``Detectors.detect`` runs them."""
