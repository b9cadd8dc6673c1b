"""What a ServiceAccount is allowed to do: effective RBAC permissions and a privilege level.

Threat evidence against an identity matters in proportion to what the identity can do: a stolen
cluster-admin token must outrank a stolen read-only one. This module resolves a ServiceAccount's
grants from Roles, ClusterRoles (aggregated ones too, by resolving ``aggregationRule`` label
selectors) and the bindings whose subjects name it directly or through the groups every
ServiceAccount belongs to (``system:serviceaccounts``, ``system:serviceaccounts:<ns>``,
``system:authenticated``), then classifies them into the risky patterns posture signals report
and into a ``PrivilegeLevel`` the scorer uses as an amplifier.

Matching follows the apiserver's RBAC evaluation (``*`` wildcards, ``resource/subresource``,
``*/subresource``); ``resourceNames`` restrictions are kept as evidence but a grant restricted to
names still counts as the capability (conservative for risk).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from identity_risk.domain import Identity
from identity_risk.signals.catalogue import SignalType
from identity_risk.signals.inventory import Binding, Inventory, PolicyRule, Role

CLUSTER_ADMIN_ROLE = "cluster-admin"
_WORKLOAD_RESOURCES = (
    ("", "pods"),
    ("apps", "deployments"),
    ("apps", "daemonsets"),
    ("apps", "statefulsets"),
    ("apps", "replicasets"),
    ("batch", "jobs"),
    ("batch", "cronjobs"),
    ("", "replicationcontrollers"),
)
_RBAC = "rbac.authorization.k8s.io"
_ADMISSION = "admissionregistration.k8s.io"


# "create" on these asks the apiserver a question; it changes nothing. Every authenticated
# identity holds the self-reviews through system:basic-user, so counting them as writes would
# make every ServiceAccount a writer.
_REVIEW_RESOURCES = frozenset(
    {
        "selfsubjectaccessreviews",
        "selfsubjectrulesreviews",
        "selfsubjectreviews",
        "subjectaccessreviews",
        "localsubjectaccessreviews",
        "tokenreviews",
    }
)
_WRITE_VERBS = frozenset({"create", "update", "patch", "delete", "deletecollection", "*"})


def _writes(rule: PolicyRule) -> bool:
    if not _WRITE_VERBS.intersection(rule.verbs) or not rule.resources:
        return False
    return not all(r in _REVIEW_RESOURCES for r in rule.resources)


class PrivilegeLevel(enum.IntEnum):
    """How much an identity could do with its permissions, ordered. The scorer amplifies by it."""

    NONE = 0
    READ = 1
    WRITE = 2
    SENSITIVE = 3
    ESCALATION = 4
    ADMIN = 5

    @property
    def label(self) -> str:
        return self.name.capitalize()


@dataclass(frozen=True, slots=True)
class Grant:
    """One rule an identity holds, where it holds it (``namespace`` empty = cluster-wide), and why."""

    namespace: str
    rule: PolicyRule
    via: str

    @property
    def cluster_wide(self) -> bool:
        return not self.namespace


@dataclass(frozen=True, slots=True)
class EffectivePermissions:
    """Everything a ServiceAccount may do, with the risky patterns it amounts to."""

    identity: Identity
    grants: tuple[Grant, ...]
    cluster_admin_via: str = ""

    def allows(
        self, verb: str, resource: str, *, api_group: str = "", namespace: str = "", subresource: str = ""
    ) -> Grant | None:  # fmt: skip
        """The first grant allowing the request (``namespace`` empty = a cluster-wide request)."""
        for grant in self.grants:
            if grant.namespace and grant.namespace != namespace:
                continue
            if rule_allows(grant.rule, verb, api_group, resource, subresource):
                return grant
        return None

    def risky_patterns(self) -> dict[SignalType, str]:
        """The risky capabilities held, each with a readable "via" for evidence."""
        found: dict[SignalType, str] = {}

        def note(kind: SignalType, grant: Grant | None) -> None:
            if grant is not None and kind not in found:
                scope = "cluster-wide" if grant.cluster_wide else f"in {grant.namespace}"
                found[kind] = f"{grant.via} ({scope})"

        if self.cluster_admin_via:
            found[SignalType.CLUSTER_ADMIN] = self.cluster_admin_via
        for grant in self.grants:
            rule = grant.rule
            if "*" in rule.verbs or "*" in rule.resources:
                note(SignalType.WILDCARD_PERMISSION, grant)
        for verb in ("get", "list", "watch"):
            secrets = self.allows(verb, "secrets")
            if secrets is not None and secrets.cluster_wide:
                note(SignalType.SECRETS_CLUSTER_WIDE, secrets)
        for sub in ("exec", "attach"):
            for verb in ("create", "get"):
                note(SignalType.POD_EXEC_PERMISSION, self._anywhere(verb, "", "pods", sub))
        for group, resource in _WORKLOAD_RESOURCES:
            note(SignalType.WORKLOAD_CREATE_PERMISSION, self._anywhere("create", group, resource))
        for resource in ("roles", "clusterroles"):
            for verb in ("bind", "escalate"):
                note(SignalType.ESCALATE_PERMISSION, self._anywhere(verb, _RBAC, resource))
        for group, resource in (("", "users"), ("", "groups"), ("", "serviceaccounts")):
            note(SignalType.ESCALATE_PERMISSION, self._anywhere("impersonate", group, resource))
        for resource in ("roles", "clusterroles", "rolebindings", "clusterrolebindings"):
            for verb in ("create", "update", "patch"):
                note(SignalType.RBAC_WRITE_PERMISSION, self._anywhere(verb, _RBAC, resource))
        note(
            SignalType.TOKEN_CREATE_PERMISSION,
            self._anywhere("create", "", "serviceaccounts", "token"),
        )
        for verb in ("get", "create"):
            note(SignalType.NODES_PROXY_PERMISSION, self._anywhere(verb, "", "nodes", "proxy"))
        note(
            SignalType.CSR_APPROVAL_PERMISSION,
            self._anywhere(
                "update", "certificates.k8s.io", "certificatesigningrequests", "approval"
            ),
        )
        for resource in ("mutatingwebhookconfigurations", "validatingwebhookconfigurations"):
            for verb in ("create", "update", "patch"):
                note(
                    SignalType.WEBHOOK_CONFIG_PERMISSION, self._anywhere(verb, _ADMISSION, resource)
                )
        return found

    def _anywhere(self, verb: str, group: str, resource: str, sub: str = "") -> Grant | None:
        for grant in self.grants:
            if rule_allows(grant.rule, verb, group, resource, sub):
                return grant
        return None

    def level(self) -> PrivilegeLevel:
        """The privilege level these permissions amount to."""
        if not self.grants and not self.cluster_admin_via:
            return PrivilegeLevel.NONE
        patterns = self.risky_patterns()
        if SignalType.CLUSTER_ADMIN in patterns:
            return PrivilegeLevel.ADMIN
        if patterns.keys() & {
            SignalType.ESCALATE_PERMISSION,
            SignalType.RBAC_WRITE_PERMISSION,
            SignalType.TOKEN_CREATE_PERMISSION,
            SignalType.NODES_PROXY_PERMISSION,
            SignalType.CSR_APPROVAL_PERMISSION,
            SignalType.WEBHOOK_CONFIG_PERMISSION,
            SignalType.SECRETS_CLUSTER_WIDE,
        }:
            return PrivilegeLevel.ESCALATION
        if patterns.keys() & {
            SignalType.WILDCARD_PERMISSION,
            SignalType.POD_EXEC_PERMISSION,
            SignalType.WORKLOAD_CREATE_PERMISSION,
        } or any(self._anywhere(v, "", "secrets") for v in ("get", "list", "watch")):
            return PrivilegeLevel.SENSITIVE
        if any(_writes(g.rule) for g in self.grants):
            return PrivilegeLevel.WRITE
        return PrivilegeLevel.READ


def rule_allows(rule: PolicyRule, verb: str, api_group: str, resource: str, sub: str = "") -> bool:
    """Whether one RBAC rule allows a resource request (the apiserver's matching rules)."""
    if not rule.resources:
        return False
    if "*" not in rule.verbs and verb not in rule.verbs:
        return False
    if "*" not in rule.api_groups and api_group not in rule.api_groups:
        return False
    combined = f"{resource}/{sub}" if sub else resource
    for candidate in rule.resources:
        if candidate in ("*", combined):
            return True
        if sub and candidate == f"*/{sub}":
            return True
    return False


def _subject_matches(binding: Binding, identity: Identity) -> bool:
    groups = ("system:serviceaccounts", f"system:serviceaccounts:{identity.namespace}",
              "system:authenticated")  # fmt: skip
    for subject in binding.subjects:
        if subject.kind == "ServiceAccount":
            namespace = subject.namespace or binding.namespace
            if subject.name == identity.name and namespace == identity.namespace:
                return True
        elif (subject.kind == "Group" and subject.name in groups) or (
            subject.kind == "User" and subject.name == identity.username
        ):
            return True
    return False


def role_rules(role: Role, inventory: Inventory) -> tuple[PolicyRule, ...]:
    """A role's rules, plus for an aggregated ClusterRole those of every ClusterRole it selects."""
    if not role.aggregation:
        return role.rules
    rules = list(role.rules)
    for other in inventory.roles:
        if other.namespace or other is role:
            continue
        if any(selector.matches(other.labels) for selector in role.aggregation):
            rules.extend(r for r in other.rules if r not in rules)
    return tuple(rules)


def effective_permissions(identity: Identity, inventory: Inventory) -> EffectivePermissions:
    """Every grant this ServiceAccount holds through any binding (memoised per inventory)."""
    key = ("permissions", identity)
    cached = inventory._cache.get(key)
    if isinstance(cached, EffectivePermissions):
        return cached
    grants: list[Grant] = []
    admin_via = ""
    for binding in inventory.bindings:
        if not _subject_matches(binding, identity):
            continue
        if binding.role_kind == "ClusterRole":
            role = inventory.cluster_role(binding.role_name)
        else:
            role = inventory.role(binding.namespace, binding.role_name)
        if (
            binding.role_kind == "ClusterRole"
            and binding.role_name == CLUSTER_ADMIN_ROLE
            and not binding.namespace
        ):
            admin_via = binding.describe
        if role is None:
            continue
        for rule in role_rules(role, inventory):
            grants.append(Grant(namespace=binding.namespace, rule=rule, via=binding.describe))
            if (
                not binding.namespace
                and "*" in rule.verbs
                and "*" in rule.resources
                and "*" in rule.api_groups
                and not admin_via
            ):
                admin_via = binding.describe
    result = EffectivePermissions(
        identity=identity, grants=tuple(grants), cluster_admin_via=admin_via
    )
    inventory._cache[key] = result
    return result


def privilege_level(identity: Identity, inventory: Inventory) -> PrivilegeLevel:
    """How privileged this ServiceAccount is, for amplifying threat evidence (memoised)."""
    key = ("privilege", identity)
    cached = inventory._cache.get(key)
    if isinstance(cached, PrivilegeLevel):
        return cached
    level = effective_permissions(identity, inventory).level()
    inventory._cache[key] = level
    return level
