"""The custom resources of ``identityrisk.dev/v1alpha1``, as pydantic models.

These models are the single source of truth for the API: ``crds/*.yaml`` is generated from them
by :mod:`identity_risk.api.crdgen` (a test fails when the two drift), the operator parses the
objects it reads through them, and ``kubectl risk simulate`` validates a policy file with them
offline. Cross-field rules that the API server must enforce are written here as CEL
(``x-kubernetes-validations``) next to the field they guard, with a message a person can act on.

Spec models are frozen and forbid unknown fields, so a typo in a policy file is an error rather
than a silently ignored setting. Status models ignore unknown fields so that an older operator can
read a newer status.
"""

from __future__ import annotations

import enum
import itertools
import re
from datetime import datetime, timedelta
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.alias_generators import to_camel
from pydantic.config import JsonDict, JsonValue

from identity_risk.domain import ActionType, Mode

GROUP = "identityrisk.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
CATEGORY = "identityrisk"

MAX_BANDS = 8
MAX_ACTIONS_PER_BAND = 12
MIN_TOKEN_SECONDS = 600

DURATION_PATTERN = r"^([0-9]+(ms|s|m|h|d))+$"
_DURATION_PART = re.compile(r"([0-9]+)(ms|s|m|h|d)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> timedelta:
    """Parse a Kubernetes-style duration such as ``90s``, ``15m`` or ``1h30m`` (plus ``d``)."""
    if not re.fullmatch(DURATION_PATTERN, text):
        raise ValueError(
            f"invalid duration {text!r}: use a number and a unit (ms, s, m, h, d), e.g. 30m or 1h30m"
        )
    seconds = sum(int(n) * _UNIT_SECONDS[unit] for n, unit in _DURATION_PART.findall(text))
    return timedelta(seconds=seconds)


def _cel(rule: str, message: str, *, field_path: str | None = None) -> JsonDict:
    entry: JsonDict = {"rule": rule, "message": message}
    if field_path is not None:
        entry["fieldPath"] = field_path
    return entry


class Spec(BaseModel):
    """Base of user-written objects: camelCase on the wire, frozen, unknown fields rejected."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        frozen=True,
        extra="forbid",
        use_enum_values=False,
    )


class Status(BaseModel):
    """Base of operator-written status: camelCase on the wire, tolerant of unknown fields."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        frozen=True,
        extra="ignore",
    )


def _duration_field(default: str | None, description: str) -> Any:
    return Field(default=default, pattern=DURATION_PATTERN, description=description)


# --------------------------------------------------------------------------------------------
# Shared pieces
# --------------------------------------------------------------------------------------------


class LabelSelectorOperator(enum.StrEnum):
    IN = "In"
    NOT_IN = "NotIn"
    EXISTS = "Exists"
    DOES_NOT_EXIST = "DoesNotExist"


class LabelSelectorRequirement(Spec):
    """One ``matchExpressions`` entry of a standard Kubernetes label selector."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                _cel(
                    "self.operator in ['In', 'NotIn'] ? size(self.values) > 0 : size(self.values) == 0",
                    "values must be non-empty for In and NotIn, and empty for Exists and DoesNotExist",
                )
            ]
        }
    )

    key: str = Field(min_length=1, max_length=317, description="The label key.")
    operator: LabelSelectorOperator = Field(description="In, NotIn, Exists or DoesNotExist.")
    values: list[str] = Field(
        default_factory=list, max_length=64, description="Values for In and NotIn."
    )


class LabelSelector(Spec):
    """A standard Kubernetes label selector. An empty selector matches everything."""

    match_labels: dict[str, str] = Field(
        default_factory=dict, description="Labels that must all be present with these values."
    )
    match_expressions: list[LabelSelectorRequirement] = Field(
        default_factory=list, max_length=32, description="Requirements that must all hold."
    )

    def matches(self, labels: dict[str, str]) -> bool:
        """Whether ``labels`` satisfy this selector (Kubernetes semantics)."""
        for key, value in self.match_labels.items():
            if labels.get(key) != value:
                return False
        for req in self.match_expressions:
            present = req.key in labels
            if req.operator is LabelSelectorOperator.IN:
                ok = present and labels[req.key] in req.values
            elif req.operator is LabelSelectorOperator.NOT_IN:
                ok = not present or labels[req.key] not in req.values
            elif req.operator is LabelSelectorOperator.EXISTS:
                ok = present
            else:
                ok = not present
            if not ok:
                return False
        return True


class Condition(Status):
    """A standard Kubernetes status condition."""

    type: str
    status: str = Field(description="True, False or Unknown.")
    reason: str = ""
    message: str = ""
    last_transition_time: datetime | None = None
    observed_generation: int | None = None


class ConfidenceLevel(enum.StrEnum):
    LOW = "Low"
    MEDIUM = "Medium"
    HIGH = "High"


# --------------------------------------------------------------------------------------------
# IdentityRiskPolicy
# --------------------------------------------------------------------------------------------


class IdentitySelector(Spec):
    """Which workload identities (ServiceAccounts) a policy covers."""

    namespace_selector: LabelSelector = Field(
        default_factory=LabelSelector,
        description="Namespaces whose labels match are covered. Empty: every namespace.",
    )
    service_account_selector: LabelSelector = Field(
        default_factory=LabelSelector,
        description="ServiceAccounts whose labels match are covered. Empty: every ServiceAccount.",
    )
    exclude_namespaces: list[str] = Field(
        default_factory=list, max_length=256, description="Namespaces never covered."
    )
    exclude_service_accounts: list[str] = Field(
        default_factory=list,
        max_length=256,
        description="ServiceAccounts never covered, as namespace/name.",
        json_schema_extra={"items": {"type": "string", "pattern": "^[a-z0-9-.]+/[a-z0-9-.]+$"}},
    )


class OnTimeout(enum.StrEnum):
    DENY = "Deny"
    ESCALATE = "Escalate"
    EXPIRE = "Expire"


# Which parameters each action type takes, and which it requires. The CEL rules the API server
# enforces and the validator used offline are both generated from these two tables.
ACTION_PARAMETERS: dict[str, frozenset[ActionType]] = {
    "maxTokenSeconds": frozenset({ActionType.SHORTEN_TOKEN_TTL}),
    "timeout": frozenset({ActionType.REQUIRE_APPROVAL}),
    "onTimeout": frozenset({ActionType.REQUIRE_APPROVAL}),
    "duration": frozenset(
        {ActionType.DENY_API_ACCESS, ActionType.RESTRICT_SCOPE, ActionType.QUARANTINE_PODS}
    ),
    "allowDNS": frozenset({ActionType.QUARANTINE_PODS}),
    "secretSelector": frozenset({ActionType.ROTATE_SECRETS}),
}
REQUIRED_PARAMETERS: dict[ActionType, tuple[str, str]] = {
    ActionType.SHORTEN_TOKEN_TTL: (
        "maxTokenSeconds",
        f"the longest projected-token lifetime allowed, at least {MIN_TOKEN_SECONDS}",
    ),
    ActionType.REQUIRE_APPROVAL: (
        "timeout",
        "how long a decision waits for a RiskApproval, e.g. 30m",
    ),
}


def _types_phrase(types: frozenset[ActionType]) -> str:
    names = sorted(t.value for t in types)
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _required_message(action: ActionType) -> str:
    param, why = REQUIRED_PARAMETERS[action]
    return f"{action.value} requires {param} ({why})"


def _applies_message(param: str) -> str:
    return f"{param} applies only to {_types_phrase(ACTION_PARAMETERS[param])}"


def _action_rules() -> list[JsonValue]:
    rules: list[JsonValue] = [
        _cel(
            f"self.type != '{action.value}' || has(self.{param})",
            _required_message(action),
            field_path=f".{param}",
        )
        for action, (param, _) in REQUIRED_PARAMETERS.items()
    ]
    for param, types in ACTION_PARAMETERS.items():
        allowed = ", ".join(f"'{t.value}'" for t in sorted(types))
        rules.append(
            _cel(
                f"!has(self.{param}) || self.type in [{allowed}]",
                _applies_message(param),
                field_path=f".{param}",
            )
        )
    return rules


class Action(Spec):
    """One response a band orders. Parameters apply only to the action types that use them."""

    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": _action_rules()})

    type: ActionType = Field(description="The action: " + ", ".join(a.value for a in ActionType))
    max_token_seconds: int | None = Field(
        default=None,
        ge=MIN_TOKEN_SECONDS,
        le=86400 * 365,
        description="ShortenTokenTTL: the longest projected service-account token lifetime.",
    )
    timeout: str | None = _duration_field(
        None, "RequireApproval: how long the decision waits for a RiskApproval (e.g. 30m)."
    )
    on_timeout: OnTimeout | None = Field(
        default=None,
        description="RequireApproval: Deny (drop the pending actions), Escalate (take the "
        "next band's actions) or Expire (record and do nothing). Default Expire.",
    )
    duration: str | None = _duration_field(
        None,
        "DenyAPIAccess, RestrictScope, QuarantinePods: lift the action automatically after "
        "this long. Empty: until released.",
    )
    allow_dns: bool | None = Field(
        default=None,
        alias="allowDNS",
        description="QuarantinePods: let quarantined pods still resolve DNS (egress to port 53).",
    )
    secret_selector: LabelSelector | None = Field(
        default=None,
        description="RotateSecrets: restrict rotation to opted-in secrets matching these labels.",
    )

    @model_validator(mode="after")
    def _parameters_fit_type(self) -> Action:
        wire = self.params
        if self.type in REQUIRED_PARAMETERS and REQUIRED_PARAMETERS[self.type][0] not in wire:
            raise ValueError(_required_message(self.type))
        for param in wire:
            if self.type not in ACTION_PARAMETERS.get(param, frozenset()):
                raise ValueError(_applies_message(param))
        return self

    @property
    def params(self) -> dict[str, Any]:
        """The parameters set on this action, in wire form, for records and plans."""
        return self.model_dump(by_alias=True, exclude_none=True, exclude={"type"}, mode="json")


class Band(Spec):
    """A risk band: from ``minScore`` up to the next band, at or above ``minConfidence``."""

    name: str = Field(
        min_length=1,
        max_length=63,
        pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$",
        description="Band name, e.g. low, medium, high, critical (lowercase DNS label).",
    )
    min_score: int = Field(ge=0, le=100, description="Lowest score (0-100) in this band.")
    min_confidence: ConfidenceLevel = Field(
        default=ConfidenceLevel.LOW,
        description="Evidence must be at least this confident for the band to apply; otherwise "
        "the identity stays in the highest lower band whose requirement is met.",
    )
    actions: list[Action] = Field(
        default_factory=list,
        max_length=MAX_ACTIONS_PER_BAND,
        description="Ordered actions taken when an identity enters this band.",
    )


def _band_order_rule() -> str:
    pairs = [
        f"(size(self) < {i + 2} || self[{i}].minScore < self[{i + 1}].minScore)"
        for i in range(MAX_BANDS - 1)
    ]
    return " && ".join(pairs)


_BANDS_RULES: list[JsonValue] = [
    _cel(
        "self.all(b, self.exists_one(c, c.name == b.name))",
        "band names must be unique",
    ),
    _cel(
        _band_order_rule(),
        "bands must be listed in strictly increasing order of minScore",
    ),
]


class CircuitBreaker(Spec):
    """Pause enforcement when too many identities cross into action bands at once."""

    max_identities: int = Field(
        default=5, ge=1, le=10000, description="Identities crossing bands within window to trip."
    )
    window: str = _duration_field("5m", "The window over which crossings are counted.")


class Safeguards(Spec):
    """Limits that keep enforcement from turning into an outage."""

    max_actions_per_minute: int = Field(
        default=20,
        ge=1,
        le=10000,
        description="Cluster-wide cap on enforcement actions per minute.",
    )
    circuit_breaker: CircuitBreaker = Field(default_factory=CircuitBreaker)
    protected_namespaces: list[str] = Field(
        default_factory=lambda: ["kube-system"],
        max_length=256,
        description="Namespaces never acted on (the operator's own namespace is always added).",
    )
    honour_fallbacks: bool = Field(
        default=True,
        description="Honour a workload's declared gentler fallback (annotation "
        "identityrisk.dev/fallback on its ServiceAccount).",
    )


class Hysteresis(Spec):
    """Keep an identity on a band boundary from flapping between bands."""

    margin: int = Field(
        default=5, ge=0, le=50, description="Points below a band's minScore before stepping down."
    )
    hold: str = _duration_field("10m", "Minimum time in a band before stepping down.")


class Scoring(Spec):
    """Overrides of the built-in scoring."""

    half_life: str = _duration_field("6h", "Signals lose half their weight after this long.")
    weights: dict[str, float] = Field(
        default_factory=dict,
        description="Per-signal-type base weight overrides (points), e.g. TokenReplay: 80.",
    )


class Approvers(Spec):
    """Who may approve or deny this policy's pending decisions."""

    users: list[str] = Field(
        default_factory=list, max_length=256, description="Usernames allowed to answer."
    )
    groups: list[str] = Field(
        default_factory=list, max_length=256, description="Groups whose members may answer."
    )
    allow_owners: bool = Field(
        default=False,
        description="The identity's owner (identityrisk.dev/owner annotation) may also approve.",
    )


class WebhookTarget(Spec):
    url: str = Field(pattern=r"^https?://", description="Receives each decision as JSON (POST).")


class Notification(Spec):
    webhooks: list[WebhookTarget] = Field(
        default_factory=list, max_length=16, description="JSON webhooks told of every decision."
    )


class IdentityRiskPolicySpec(Spec):
    """What an IdentityRiskPolicy declares: who it covers, its bands, and how it may act."""

    selector: IdentitySelector = Field(default_factory=IdentitySelector)
    mode: Mode = Field(
        default=Mode.AUDIT,
        description="Audit decides and records but never acts; Enforce also acts.",
    )
    priority: int = Field(
        default=0,
        ge=-1000,
        le=1000,
        description="When several policies cover an identity, the highest priority wins "
        "(ties: alphabetical by name).",
    )
    bands: list[Band] = Field(
        min_length=1,
        max_length=MAX_BANDS,
        description="Risk bands in increasing order of minScore.",
        json_schema_extra={"x-kubernetes-validations": _BANDS_RULES},
    )
    scoring: Scoring = Field(default_factory=Scoring)
    hysteresis: Hysteresis = Field(default_factory=Hysteresis)
    safeguards: Safeguards = Field(default_factory=Safeguards)
    approvers: Approvers = Field(default_factory=Approvers)
    notification: Notification = Field(
        default_factory=Notification, description="Where decisions are sent besides Events."
    )

    @field_validator("bands")
    @classmethod
    def _bands_are_coherent(cls, bands: list[Band]) -> list[Band]:
        names = [b.name for b in bands]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"band names must be unique (repeated: {', '.join(duplicates)})")
        scores = [b.min_score for b in bands]
        if any(a >= b for a, b in itertools.pairwise(scores)):
            raise ValueError("bands must be listed in strictly increasing order of minScore")
        return bands


class PolicyStatus(Status):
    observed_generation: int | None = None
    identities_covered: int | None = None
    identities_by_band: dict[str, int] = Field(default_factory=dict)
    conditions: list[Condition] = Field(default_factory=list)


class IdentityRiskPolicy(BaseModel):
    """Cluster-scoped policy: which identities, which bands, which responses."""

    KIND: ClassVar[str] = "IdentityRiskPolicy"
    model_config = ConfigDict(populate_by_name=True, frozen=True, extra="ignore")

    api_version: str = Field(default=API_VERSION, alias="apiVersion")
    kind: str = "IdentityRiskPolicy"
    metadata: dict[str, Any] = Field(default_factory=dict)
    spec: IdentityRiskPolicySpec
    status: PolicyStatus | None = None

    @property
    def name(self) -> str:
        return str(self.metadata.get("name", ""))


# --------------------------------------------------------------------------------------------
# WorkloadIdentityRisk
# --------------------------------------------------------------------------------------------


class ContributingSignal(Status):
    """A signal as it counts towards the current score."""

    type: str
    points: float = Field(description="Points this signal contributes to the score now.")
    confidence: ConfidenceLevel
    summary: str = ""
    evidence: dict[str, str] = Field(default_factory=dict)
    owasp_nhi: str = ""
    nist_csf: str = ""
    observed_at: datetime | None = None


class EnforcementState(enum.StrEnum):
    NONE = "None"
    PENDING_APPROVAL = "PendingApproval"
    ENFORCED = "Enforced"
    RELEASED = "Released"
    AUDIT_ONLY = "AuditOnly"
    PAUSED = "Paused"


class WorkloadIdentityRiskSpec(Spec):
    """Which ServiceAccount this record scores (created and kept by the operator)."""

    service_account_name: str = Field(
        min_length=1, max_length=253, description="The ServiceAccount (same namespace) scored here."
    )


class WorkloadIdentityRiskStatus(Status):
    score: float | None = Field(default=None, description="Current score, 0-100.")
    band: str | None = None
    confidence: ConfidenceLevel | None = None
    policy: str | None = None
    owner: str | None = None
    enforcement: EnforcementState = EnforcementState.NONE
    last_decision: str | None = None
    last_evaluated: datetime | None = None
    signals: list[ContributingSignal] = Field(default_factory=list)
    baseline: dict[str, Any] = Field(
        default_factory=dict,
        description="Summary of the learned baseline (operations, user agents, networks, rate).",
        json_schema_extra={"x-kubernetes-preserve-unknown-fields": True},
    )
    scorer_state: dict[str, Any] = Field(
        default_factory=dict,
        description="What the scorer needs to resume after a restart (opaque).",
        json_schema_extra={"x-kubernetes-preserve-unknown-fields": True},
    )


class WorkloadIdentityRisk(BaseModel):
    KIND: ClassVar[str] = "WorkloadIdentityRisk"
    model_config = ConfigDict(populate_by_name=True, frozen=True, extra="ignore")

    api_version: str = Field(default=API_VERSION, alias="apiVersion")
    kind: str = "WorkloadIdentityRisk"
    metadata: dict[str, Any] = Field(default_factory=dict)
    spec: WorkloadIdentityRiskSpec
    status: WorkloadIdentityRiskStatus | None = None


# --------------------------------------------------------------------------------------------
# RiskDecision
# --------------------------------------------------------------------------------------------


class IdentityReference(Spec):
    """The workload identity a decision is about."""

    namespace: str = Field(min_length=1, max_length=63, description="Its namespace.")
    service_account_name: str = Field(
        min_length=1, max_length=253, description="The ServiceAccount's name."
    )
    uid: str | None = Field(default=None, description="The ServiceAccount's UID when decided.")


class SignalSnapshot(Spec):
    """A signal as it counted towards the score at decision time."""

    type: str = Field(description="Signal type, e.g. TokenReplay.")
    points: float = Field(description="Points it contributed to the score.")
    confidence: ConfidenceLevel = Field(description="Low, Medium or High.")
    summary: str = Field(default="", description="What happened, in one sentence.")
    evidence: dict[str, str] = Field(
        default_factory=dict, description="Which request, pod, IP or credential showed it."
    )
    owasp_nhi: str = Field(default="", description="OWASP Non-Human Identity Top 10 item.")
    nist_csf: str = Field(default="", description="NIST CSF 2.0 subcategory.")


class DecisionPath(enum.StrEnum):
    DEFAULT = "Default"
    FALLBACK = "Fallback"


class RiskDecisionSpec(Spec):
    """One immutable link of the chain: what was scored, what was decided, what was planned."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                _cel(
                    "self == oldSelf",
                    "a RiskDecision's spec is immutable: it is a link of the chain",
                )
            ]
        }
    )

    identity: IdentityReference = Field(description="Who the decision is about.")
    owner: str | None = Field(default=None, description="The identity's owner, when declared.")
    policy: str = Field(min_length=1, description="The IdentityRiskPolicy that decided.")
    mode: Mode
    score: float = Field(ge=0, le=100, description="The score (0-100) that was decided on.")
    confidence: ConfidenceLevel = Field(description="Confidence of the evidence behind it.")
    band: str = Field(description="The band the identity entered.")
    previous_band: str | None = Field(default=None, description="The band it left, if any.")
    disposition: str = Field(
        default="Act",
        description="What may be done: Act (carry the actions out), Audit (policy in Audit "
        "mode), Protected, Exempt, CircuitOpen, RateLimited or NoChange. Anything but Act "
        "records the decision and runs Notify only.",
    )
    path: DecisionPath = Field(
        default=DecisionPath.DEFAULT,
        description="Default, or Fallback when the workload's declared fallback was honoured.",
    )
    signals: list[SignalSnapshot] = Field(
        default_factory=list, max_length=64, description="The signals behind the score."
    )
    actions: list[Action] = Field(
        default_factory=list,
        max_length=MAX_ACTIONS_PER_BAND * 2,
        description="The actions planned, in order.",
    )
    reasons: list[str] = Field(
        default_factory=list, max_length=64, description="Why this decision, in plain words."
    )
    decided_at: datetime = Field(description="When it was decided.")


class ActionPhase(enum.StrEnum):
    PENDING = "Pending"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    SKIPPED = "Skipped"
    RELEASED = "Released"


class ActionOutcome(Status):
    type: ActionType
    phase: ActionPhase
    message: str = ""
    changed: list[str] = Field(
        default_factory=list, description="What the action changed, so it can be released."
    )
    credentials: list[str] = Field(
        default_factory=list,
        description="RevokeToken: the credential-ids denied at the authorization webhook.",
    )
    allowed_operations: list[str] = Field(
        default_factory=list,
        description="RestrictScope: the operation keys (verb group/resource namespace) the "
        "identity may still use; everything else is denied at the authorization webhook.",
    )
    until: datetime | None = Field(
        default=None, description="When the action lifts by itself (from its duration)."
    )
    at: datetime | None = None


class DecisionPhase(enum.StrEnum):
    RECORDED = "Recorded"
    AWAITING_APPROVAL = "AwaitingApproval"
    EXECUTING = "Executing"
    ENFORCED = "Enforced"
    AUDITED = "Audited"
    DENIED = "Denied"
    EXPIRED = "Expired"
    FAILED = "Failed"
    RELEASED = "Released"


class ApprovalState(Status):
    state: str = Field(description="Pending, Approved, Denied or TimedOut.")
    by: str | None = None
    at: datetime | None = None


class ChainLink(Status):
    index: int
    hash: str
    previous_hash: str
    signature: str
    key_id: str


class ReleaseRecord(Status):
    """``kubectl risk release``: who asked, when, and the chain link that records it."""

    by: str = Field(default="", description="Who asked for the release.")
    at: datetime
    chain: ChainLink | None = None


class RiskDecisionStatus(Status):
    phase: DecisionPhase = DecisionPhase.RECORDED
    actions: list[ActionOutcome] = Field(default_factory=list)
    approval: ApprovalState | None = None
    chain: ChainLink | None = None
    release: ReleaseRecord | None = None
    conditions: list[Condition] = Field(default_factory=list)


class RiskDecision(BaseModel):
    KIND: ClassVar[str] = "RiskDecision"
    model_config = ConfigDict(populate_by_name=True, frozen=True, extra="ignore")

    api_version: str = Field(default=API_VERSION, alias="apiVersion")
    kind: str = "RiskDecision"
    metadata: dict[str, Any] = Field(default_factory=dict)
    spec: RiskDecisionSpec
    status: RiskDecisionStatus | None = None


# --------------------------------------------------------------------------------------------
# RiskApproval
# --------------------------------------------------------------------------------------------


class Verdict(enum.StrEnum):
    APPROVE = "Approve"
    DENY = "Deny"


class RiskApprovalSpec(Spec):
    """A person's answer to a pending decision. Who answered is stamped by the operator."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                _cel("self == oldSelf", "a RiskApproval cannot be changed; create a new one")
            ]
        }
    )

    decision: str = Field(min_length=1, max_length=253, description="The RiskDecision's name.")
    verdict: Verdict = Field(
        description="Approve carries out the pending actions; Deny drops them."
    )
    comment: str = Field(default="", max_length=2048, description="Why, for the record.")


class RiskApprovalStatus(Status):
    approved_by: str | None = Field(
        default=None, description="Stamped by the operator from the admission request's user."
    )
    groups: list[str] = Field(default_factory=list)
    accepted: bool | None = None
    message: str = ""


class RiskApproval(BaseModel):
    KIND: ClassVar[str] = "RiskApproval"
    model_config = ConfigDict(populate_by_name=True, frozen=True, extra="ignore")

    api_version: str = Field(default=API_VERSION, alias="apiVersion")
    kind: str = "RiskApproval"
    metadata: dict[str, Any] = Field(default_factory=dict)
    spec: RiskApprovalSpec
    status: RiskApprovalStatus | None = None


# --------------------------------------------------------------------------------------------
# RiskException
# --------------------------------------------------------------------------------------------


class RiskExceptionSpec(Spec):
    """A time-boxed, owned exemption for one identity (or the workloads a selector picks)."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                _cel(
                    "has(self.serviceAccountName) != has(self.podSelector)",
                    "set exactly one of serviceAccountName or podSelector",
                )
            ]
        }
    )

    service_account_name: str | None = Field(
        default=None, min_length=1, max_length=253, description="The exempted ServiceAccount."
    )
    pod_selector: LabelSelector | None = Field(
        default=None, description="Or: the exempted workloads' pods, by label."
    )
    expires: datetime = Field(description="When the exemption ends (RFC 3339). Required.")
    owner: str = Field(
        min_length=1, max_length=253, description="Who answers for this exemption. Required."
    )
    reason: str = Field(min_length=1, max_length=2048, description="Why it is needed.")
    signal_types: list[str] = Field(
        default_factory=list,
        max_length=64,
        description="Exempt only these signal types. Empty: exempt from enforcement entirely "
        "(decisions are still recorded).",
    )


class RiskExceptionStatus(Status):
    active: bool | None = None
    message: str = ""


class RiskException(BaseModel):
    KIND: ClassVar[str] = "RiskException"
    model_config = ConfigDict(populate_by_name=True, frozen=True, extra="ignore")

    api_version: str = Field(default=API_VERSION, alias="apiVersion")
    kind: str = "RiskException"
    metadata: dict[str, Any] = Field(default_factory=dict)
    spec: RiskExceptionSpec
    status: RiskExceptionStatus | None = None


# --------------------------------------------------------------------------------------------
# IdentitySignal
# --------------------------------------------------------------------------------------------


class IdentitySignalSpec(Spec):
    """A signal from outside the cluster's audit stream: a secret scanner, a runtime detector."""

    service_account_name: str = Field(
        min_length=1, max_length=253, description="The ServiceAccount (same namespace) concerned."
    )
    type: str = Field(
        min_length=1,
        max_length=63,
        pattern=r"^[A-Z][A-Za-z0-9]*$",
        description="Signal type in PascalCase, e.g. SecretExposed, RuntimeAlert.",
    )
    confidence: ConfidenceLevel = Field(description="Low, Medium or High.")
    weight: float | None = Field(
        default=None, ge=0, le=100, description="Base points; default per type."
    )
    source: str = Field(min_length=1, max_length=253, description="What raised it.")
    summary: str = Field(default="", max_length=1024, description="What was found.")
    evidence: dict[str, str] = Field(
        default_factory=dict, description="Where it was found (never the secret itself)."
    )
    credential_id: str | None = Field(
        default=None, description="The leaked token's credential-id (JTI=...), when known."
    )
    observed_at: datetime | None = Field(
        default=None, description="When it was observed. Default: when the operator read it."
    )


class IdentitySignalStatus(Status):
    accepted: bool | None = None
    message: str = ""


class IdentitySignal(BaseModel):
    KIND: ClassVar[str] = "IdentitySignal"
    model_config = ConfigDict(populate_by_name=True, frozen=True, extra="ignore")

    api_version: str = Field(default=API_VERSION, alias="apiVersion")
    kind: str = "IdentitySignal"
    metadata: dict[str, Any] = Field(default_factory=dict)
    spec: IdentitySignalSpec
    status: IdentitySignalStatus | None = None
