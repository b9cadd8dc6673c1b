"""The compact, immutable form of one audited API request that the rest of the core reads.

An ``audit.k8s.io/v1`` Event carries far more than risk detection needs (request and response
bodies, managed fields, nested metadata) in a shape that is awkward to match on. Detectors run on
every request, so they get a flat record with exactly the facts they use, already normalised:
the trustworthy source IP picked, the bound-token claims unwrapped from their one-element lists,
the ServiceAccount identity resolved, the time parsed once. It is a ``msgspec.Struct`` rather than
a dataclass because building one per event is on the hot path and a frozen Struct is several times
cheaper to construct than a frozen dataclass.
"""

from __future__ import annotations

from datetime import datetime

import msgspec

from identity_risk.domain import Identity

ANONYMOUS_USERNAME = "system:anonymous"

DECISION_ALLOW = "allow"
DECISION_FORBID = "forbid"

READ_VERBS = frozenset({"get", "list", "watch"})
WRITE_VERBS = frozenset({"create", "update", "patch", "delete", "deletecollection"})

MAX_NONRESOURCE_PATH = 128
IMPERSONATING = " (impersonating)"


def operation_key(
    verb: str,
    group: str = "",
    resource: str = "",
    subresource: str = "",
    namespace: str = "",
    path: str | None = None,
    impersonating: bool = False,
) -> str:
    """The one spelling of an operation: the baseline's key, and what RestrictScope allows.

    A resource request is ``"<verb> <group>/<resource>[/<subresource>] <namespace>"`` (core
    group empty, so ``"list /configmaps payments"``; cluster-scoped ends in a space); a
    non-resource request (``path`` given) is ``"<verb> <path>"`` without its query, cut at 128
    characters. `` (impersonating)`` is appended when the request impersonated someone. The audit
    decoder and the authorization webhook (SubjectAccessReview attributes) both spell keys here,
    so a learned baseline and a later request compare equal. Positional calls are cheapest: the
    decoder calls this once per event.
    """
    if path is not None:
        key = f"{verb} {path.partition('?')[0][:MAX_NONRESOURCE_PATH]}"
    elif subresource:
        key = f"{verb} {group}/{resource}/{subresource} {namespace}"
    else:
        key = f"{verb} {group}/{resource} {namespace}"
    return key + IMPERSONATING if impersonating else key


class AuditRecord(msgspec.Struct, frozen=True, gc=False):
    """One API request as the detectors see it.

    Strings are empty (never None) when the event did not carry the field, so matching stays a
    plain comparison. ``epoch`` is ``timestamp`` as POSIX seconds, kept beside it because state
    arithmetic runs on every request. ``operation`` is the request's baseline key: verb, API group,
    resource[/subresource] and namespace (or the path of a non-resource request), marked
    ``(impersonating)`` when the request impersonated another user.

    Field order is part of the interface: the decoder constructs records positionally, which is
    four times cheaper than by keyword. Everyone else should pass keywords.
    """

    audit_id: str
    stage: str
    timestamp: datetime
    epoch: float
    username: str
    verb: str
    groups: tuple[str, ...] = ()
    identity: Identity | None = None
    anonymous: bool = False
    impersonated_user: str = ""
    resource: str = ""
    subresource: str = ""
    namespace: str = ""
    name: str = ""
    api_group: str = ""
    operation: str = ""
    decision: str = ""
    reason: str = ""
    response_code: int = 0
    source_ip: str = ""
    user_agent: str = ""
    pod_name: str = ""
    pod_uid: str = ""
    node_name: str = ""
    credential_id: str = ""
    request_uri: str = ""
    privileged: bool = False
    host_path: bool = False
    host_namespace: bool = False

    @property
    def denied(self) -> bool:
        """The request was refused by authorization (decision ``forbid`` or HTTP 403)."""
        return self.decision == DECISION_FORBID or self.response_code == 403

    @property
    def allowed(self) -> bool:
        """Authorization let the request through (it may still have failed for other reasons)."""
        if self.decision:
            return self.decision == DECISION_ALLOW
        return 0 < self.response_code < 400 or self.response_code in (404, 409, 422)

    @property
    def is_write(self) -> bool:
        return self.verb in WRITE_VERBS

    @property
    def full_resource(self) -> str:
        """``resource/subresource`` as RBAC spells it (``pods/exec``), or the bare resource."""
        return f"{self.resource}/{self.subresource}" if self.subresource else self.resource

    def describe(self) -> str:
        """A one-line, human-readable account of the request for signal evidence."""
        target = self.full_resource or self.request_uri
        if self.api_group and self.resource:
            target = f"{target}.{self.api_group}"
        if self.name:
            target = f"{target}/{self.name}"
        where = f" in {self.namespace}" if self.namespace else ""
        outcome = self.decision or (str(self.response_code) if self.response_code else "")
        return f"{self.verb} {target}{where}" + (f" ({outcome})" if outcome else "")
