"""The signal types the detectors emit, with their default weight, confidence and mappings.

One table, so that a signal's meaning (what it is, how much it weighs by default, which OWASP
Non-Human Identity Top 10 (2025) item and NIST CSF 2.0 subcategory it maps to) is stated once and
read by detectors, the scorer's overrides, documentation and ``kubectl risk explain`` alike.

OWASP NHI Top 10 2025: NHI1 Improper Offboarding, NHI2 Secret Leakage, NHI3 Vulnerable Third-Party
NHI, NHI4 Insecure Authentication, NHI5 Overprivileged NHI, NHI6 Insecure Cloud Deployment
Configurations, NHI7 Long-Lived Secrets, NHI8 Environment Isolation, NHI9 NHI Reuse, NHI10 Human Use
of NHI.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from identity_risk.domain import Confidence, SignalKind


class SignalType(enum.StrEnum):
    """Every signal type a built-in detector emits (``Signal.type`` holds the value)."""

    # behavioural: what the identity did
    TOKEN_REPLAY = "TokenReplay"
    IMPOSSIBLE_TRAVEL = "ImpossibleTravel"
    ANOMALOUS_LOCATION = "AnomalousLocation"
    HUMAN_USE = "HumanUse"
    PRIVILEGE_ESCALATION = "PrivilegeEscalation"
    CREDENTIAL_ACCESS = "CredentialAccess"
    RECONNAISSANCE = "Reconnaissance"
    DORMANT_REACTIVATED = "DormantReactivated"
    RATE_DEVIATION = "RateDeviation"
    BASELINE_DEVIATION = "BaselineDeviation"
    # posture: what the identity could do, how it is configured
    CLUSTER_ADMIN = "ClusterAdmin"
    WILDCARD_PERMISSION = "WildcardPermission"
    SECRETS_CLUSTER_WIDE = "SecretsReadableClusterWide"
    POD_EXEC_PERMISSION = "PodExecPermission"
    WORKLOAD_CREATE_PERMISSION = "WorkloadCreatePermission"
    ESCALATE_PERMISSION = "BindEscalateImpersonatePermission"
    RBAC_WRITE_PERMISSION = "RBACWritePermission"
    TOKEN_CREATE_PERMISSION = "TokenCreatePermission"
    NODES_PROXY_PERMISSION = "NodesProxyPermission"
    CSR_APPROVAL_PERMISSION = "CSRApprovalPermission"
    WEBHOOK_CONFIG_PERMISSION = "WebhookConfigPermission"
    SHARED_SERVICE_ACCOUNT = "SharedServiceAccount"
    DEFAULT_SERVICE_ACCOUNT = "DefaultServiceAccountInUse"
    LEGACY_TOKEN_SECRET = "LegacyTokenSecret"
    LONG_TOKEN_LIFETIME = "LongTokenLifetime"
    UNUSED_AUTOMOUNTED_TOKEN = "UnusedAutomountedToken"


@dataclass(frozen=True, slots=True)
class SignalSpec:
    """The defaults of one signal type. Detectors may raise or lower confidence per instance."""

    type: SignalType
    kind: SignalKind
    weight: float
    confidence: Confidence
    owasp_nhi: str
    nist_csf: str
    title: str


_B, _P = SignalKind.BEHAVIOURAL, SignalKind.POSTURE
_L, _M, _H = Confidence.LOW, Confidence.MEDIUM, Confidence.HIGH
T = SignalType

_SPECS = (
    SignalSpec(T.TOKEN_REPLAY, _B, 45, _H, "NHI2", "DE.CM-01", "Bound token used away from its pod"),
    SignalSpec(T.IMPOSSIBLE_TRAVEL, _B, 30, _M, "NHI2", "DE.CM-01", "One credential, two network locations"),
    SignalSpec(T.ANOMALOUS_LOCATION, _B, 20, _M, "NHI2", "DE.CM-01", "Request from outside the cluster's networks"),
    SignalSpec(T.HUMAN_USE, _B, 25, _M, "NHI10", "DE.CM-03", "Human tooling using a workload identity"),
    SignalSpec(T.PRIVILEGE_ESCALATION, _B, 35, _M, "NHI5", "DE.AE-02", "Privilege escalation attempt"),
    SignalSpec(T.CREDENTIAL_ACCESS, _B, 25, _M, "NHI2", "DE.CM-03", "Access to secrets beyond the baseline"),
    SignalSpec(T.RECONNAISSANCE, _B, 10, _L, "NHI5", "DE.AE-02", "Probing its own permissions"),
    SignalSpec(T.DORMANT_REACTIVATED, _B, 20, _M, "NHI1", "DE.CM-03", "Dormant identity active again"),
    SignalSpec(T.RATE_DEVIATION, _B, 10, _L, "NHI2", "DE.AE-02", "Request rate far above its baseline"),
    SignalSpec(T.BASELINE_DEVIATION, _B, 5, _L, "NHI2", "DE.AE-02", "Operation outside its baseline"),
    SignalSpec(T.CLUSTER_ADMIN, _P, 15, _L, "NHI5", "PR.AA-05", "Has cluster-admin"),
    SignalSpec(T.WILDCARD_PERMISSION, _P, 8, _L, "NHI5", "PR.AA-05", "Wildcard RBAC rule"),
    SignalSpec(T.SECRETS_CLUSTER_WIDE, _P, 10, _L, "NHI5", "PR.AA-05", "Can read secrets cluster-wide"),
    SignalSpec(T.POD_EXEC_PERMISSION, _P, 6, _L, "NHI5", "PR.AA-05", "Can exec/attach into pods"),
    SignalSpec(T.WORKLOAD_CREATE_PERMISSION, _P, 4, _L, "NHI5", "PR.AA-05", "Can create pods or workloads"),
    SignalSpec(T.ESCALATE_PERMISSION, _P, 10, _L, "NHI5", "PR.AA-05", "Can bind, escalate or impersonate"),
    SignalSpec(T.RBAC_WRITE_PERMISSION, _P, 6, _L, "NHI5", "PR.AA-05", "Can write roles or bindings"),
    SignalSpec(T.TOKEN_CREATE_PERMISSION, _P, 8, _L, "NHI5", "PR.AA-05", "Can mint ServiceAccount tokens"),
    SignalSpec(T.NODES_PROXY_PERMISSION, _P, 8, _L, "NHI5", "PR.AA-05", "Can use nodes/proxy"),
    SignalSpec(T.CSR_APPROVAL_PERMISSION, _P, 8, _L, "NHI5", "PR.AA-05", "Can approve certificate requests"),
    SignalSpec(T.WEBHOOK_CONFIG_PERMISSION, _P, 8, _L, "NHI5", "PR.AA-05", "Can write admission webhooks"),
    SignalSpec(T.SHARED_SERVICE_ACCOUNT, _P, 4, _L, "NHI9", "PR.AA-01", "Shared by several workloads"),
    SignalSpec(T.DEFAULT_SERVICE_ACCOUNT, _P, 3, _L, "NHI9", "PR.AA-05", "Default ServiceAccount in use"),
    SignalSpec(T.LEGACY_TOKEN_SECRET, _P, 6, _L, "NHI7", "PR.AA-01", "Long-lived token Secret"),
    SignalSpec(T.LONG_TOKEN_LIFETIME, _P, 3, _L, "NHI7", "PR.AA-01", "Long projected-token lifetime"),
    SignalSpec(T.UNUSED_AUTOMOUNTED_TOKEN, _P, 2, _L, "NHI6", "PR.PS-01", "Automounted token never used"),
)  # fmt: skip

CATALOGUE: Mapping[SignalType, SignalSpec] = MappingProxyType({s.type: s for s in _SPECS})
"""Every built-in signal type's defaults, by type."""
