"""A frozen snapshot of the cluster objects detectors compare requests against.

Detectors need to know where a pod really is (to tell a replayed token from its owner), which
networks belong to the cluster, and what an identity is allowed to do. The operator gathers this
from its watches and ``kubectl risk simulate --inventory DIR`` from files; both hand plain
Kubernetes JSON dicts to ``Inventory.from_objects``, which keeps only the facts used here.

Secrets are reduced to metadata: ``data`` and ``stringData`` are never read, and the
``last-applied-configuration`` annotation (which may embed them) is dropped.

The snapshot is immutable; derived answers (effective permissions, where an IP is) are memoised
in a private cache because the same questions are asked for every request.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Any, Literal, NamedTuple

from identity_risk.domain import Identity

LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
SA_NAME_ANNOTATION = "kubernetes.io/service-account.name"
LEGACY_TOKEN_TYPE = "kubernetes.io/service-account-token"

_EMPTY: Mapping[str, str] = MappingProxyType({})
_LOCATION_CACHE_LIMIT = 65_536

LocationKind = Literal["pod", "node", "external", "unknown"]

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class Location(NamedTuple):
    """Where a source IP is: its kind and a network key used by baselines (a CIDR string)."""

    kind: LocationKind
    network: str


@dataclass(frozen=True, slots=True)
class Pod:
    namespace: str
    name: str
    uid: str
    ips: tuple[str, ...]
    node: str
    service_account: str
    labels: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    secret_refs: tuple[str, ...] = ()
    """Secrets the pod mounts (volumes, projected sources) or reads into env vars."""
    owner_kind: str = ""
    owner_name: str = ""
    automount: bool | None = None
    token_expiration_seconds: int | None = None
    host_network: bool = False
    created: datetime | None = None
    """``metadata.creationTimestamp``: tells a pod re-created after an action from its elder."""

    @property
    def identity(self) -> Identity:
        return Identity(namespace=self.namespace, name=self.service_account)

    def created_before(self, when: datetime | None) -> bool:
        """Whether the pod predates ``when``; an unknown time on either side counts as yes."""
        return self.created is None or when is None or self.created < when

    @property
    def workload(self) -> str:
        """The owning workload (a ReplicaSet's hash suffix stripped to its Deployment)."""
        if not self.owner_kind:
            return f"Pod/{self.name}"
        if self.owner_kind == "ReplicaSet" and "-" in self.owner_name:
            return f"Deployment/{self.owner_name.rsplit('-', 1)[0]}"
        if self.owner_kind == "Job" and self.owner_name[-1:].isdigit() and "-" in self.owner_name:
            return f"CronJob/{self.owner_name.rsplit('-', 1)[0]}"
        return f"{self.owner_kind}/{self.owner_name}"


@dataclass(frozen=True, slots=True)
class Node:
    name: str
    ips: tuple[str, ...]
    pod_cidrs: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ServiceAccount:
    namespace: str
    name: str
    uid: str = ""
    annotations: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    automount: bool | None = None
    secret_refs: tuple[str, ...] = ()

    @property
    def identity(self) -> Identity:
        return Identity(namespace=self.namespace, name=self.name)


@dataclass(frozen=True, slots=True)
class Secret:
    """Secret metadata only. There is deliberately no field for its data."""

    namespace: str
    name: str
    type: str
    annotations: Mapping[str, str] = field(default_factory=lambda: _EMPTY)

    @property
    def service_account(self) -> str:
        return self.annotations.get(SA_NAME_ANNOTATION, "")


@dataclass(frozen=True, slots=True)
class PolicyRule:
    verbs: tuple[str, ...]
    api_groups: tuple[str, ...] = ()
    resources: tuple[str, ...] = ()
    resource_names: tuple[str, ...] = ()
    non_resource_urls: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class LabelSelector:
    match_labels: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    match_expressions: tuple[tuple[str, str, tuple[str, ...]], ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        if any(labels.get(k) != v for k, v in self.match_labels.items()):
            return False
        for key, op, values in self.match_expressions:
            present = key in labels
            if op == "In" and (not present or labels[key] not in values):
                return False
            if op == "NotIn" and present and labels[key] in values:
                return False
            if op == "Exists" and not present:
                return False
            if op == "DoesNotExist" and present:
                return False
        return True


@dataclass(frozen=True, slots=True)
class Role:
    """A Role (``namespace`` set) or ClusterRole (``namespace`` empty)."""

    namespace: str
    name: str
    rules: tuple[PolicyRule, ...] = ()
    labels: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    aggregation: tuple[LabelSelector, ...] = ()


@dataclass(frozen=True, slots=True)
class Subject:
    kind: str
    name: str
    namespace: str = ""


@dataclass(frozen=True, slots=True)
class Binding:
    """A RoleBinding (``namespace`` set) or ClusterRoleBinding (``namespace`` empty)."""

    namespace: str
    name: str
    role_kind: str
    role_name: str
    subjects: tuple[Subject, ...] = ()

    @property
    def describe(self) -> str:
        kind = "RoleBinding" if self.namespace else "ClusterRoleBinding"
        where = f"{self.namespace}/" if self.namespace else ""
        return f"{kind} {where}{self.name} → {self.role_kind} {self.role_name}"


@dataclass(frozen=True)
class Inventory:
    """What the cluster looks like at one moment. Build with ``Inventory.from_objects``."""

    pods: tuple[Pod, ...] = ()
    nodes: tuple[Node, ...] = ()
    service_accounts: tuple[ServiceAccount, ...] = ()
    secrets: tuple[Secret, ...] = ()
    roles: tuple[Role, ...] = ()
    bindings: tuple[Binding, ...] = ()
    pod_cidrs: tuple[str, ...] = ()
    node_cidrs: tuple[str, ...] = ()
    _cache: dict[Any, Any] = field(default_factory=dict, compare=False, repr=False, hash=False)

    # --- building ---------------------------------------------------------------------------

    @classmethod
    def from_objects(
        cls,
        objects: Iterable[Mapping[str, Any]],
        *,
        pod_cidrs: Iterable[str] = (),
        node_cidrs: Iterable[str] = (),
    ) -> Inventory:
        """An inventory from Kubernetes objects as JSON dicts (``List`` kinds are flattened).

        Kinds other than Pod, Node, ServiceAccount, Secret, Role, ClusterRole, RoleBinding and
        ClusterRoleBinding are ignored. Pod CIDRs are taken from the nodes' ``spec.podCIDRs`` in
        addition to ``pod_cidrs``. Invalid CIDRs raise ``ValueError`` naming the value.
        """
        pods: list[Pod] = []
        nodes: list[Node] = []
        sas: list[ServiceAccount] = []
        secrets: list[Secret] = []
        roles: list[Role] = []
        bindings: list[Binding] = []
        for obj in _flatten(objects):
            kind = obj.get("kind")
            if kind == "Pod":
                pods.append(_pod(obj))
            elif kind == "Node":
                nodes.append(_node(obj))
            elif kind == "ServiceAccount":
                sas.append(_service_account(obj))
            elif kind == "Secret":
                secrets.append(_secret(obj))
            elif kind in ("Role", "ClusterRole"):
                roles.append(_role(obj, cluster=kind == "ClusterRole"))
            elif kind in ("RoleBinding", "ClusterRoleBinding"):
                bindings.append(_binding(obj, cluster=kind == "ClusterRoleBinding"))
        all_pod_cidrs = list(pod_cidrs)
        for node in nodes:
            all_pod_cidrs.extend(c for c in node.pod_cidrs if c not in all_pod_cidrs)
        for cidr in (*all_pod_cidrs, *node_cidrs):
            try:
                ipaddress.ip_network(cidr, strict=False)
            except ValueError:
                raise ValueError(f"invalid CIDR {cidr!r} in the inventory's networks") from None
        return cls(
            pods=tuple(pods),
            nodes=tuple(nodes),
            service_accounts=tuple(sas),
            secrets=tuple(secrets),
            roles=tuple(roles),
            bindings=tuple(bindings),
            pod_cidrs=tuple(dict.fromkeys(all_pod_cidrs)),
            node_cidrs=tuple(node_cidrs),
        )

    # --- lookups (memoised) ----------------------------------------------------------------

    def __post_init__(self) -> None:
        for name, build in _INDEXES.items():
            self._cache[name] = build(self)

    def _index(self, name: str) -> Any:
        return self._cache[name]

    def pod_by_uid(self, uid: str) -> Pod | None:
        index: dict[str, Pod] = self._cache["pod_uid"]
        return index.get(uid)

    def pod(self, namespace: str, name: str) -> Pod | None:
        index: dict[tuple[str, str], Pod] = self._index("pod_key")
        return index.get((namespace, name))

    def node(self, name: str) -> Node | None:
        index: dict[str, Node] = self._cache["node"]
        return index.get(name)

    def pods_of(self, identity: Identity) -> tuple[Pod, ...]:
        """The pods running as this ServiceAccount."""
        index: dict[Identity, tuple[Pod, ...]] = self._index("pods_by_sa")
        return index.get(identity, ())

    def service_account(self, identity: Identity) -> ServiceAccount | None:
        index: dict[Identity, ServiceAccount] = self._index("sa")
        return index.get(identity)

    def identities(self) -> tuple[Identity, ...]:
        """Every ServiceAccount known from ServiceAccount objects or from pods, sorted."""
        index: dict[Identity, tuple[Pod, ...]] = self._index("pods_by_sa")
        found = {sa.identity for sa in self.service_accounts} | set(index)
        return tuple(sorted(found))

    def token_secrets_of(self, identity: Identity) -> tuple[Secret, ...]:
        """Legacy long-lived token Secrets bound to this ServiceAccount."""
        return tuple(
            s
            for s in self.secrets
            if s.type == LEGACY_TOKEN_TYPE
            and s.namespace == identity.namespace
            and s.service_account == identity.name
        )

    def cluster_role(self, name: str) -> Role | None:
        index: dict[tuple[str, str], Role] = self._index("role")
        return index.get(("", name))

    def role(self, namespace: str, name: str) -> Role | None:
        index: dict[tuple[str, str], Role] = self._index("role")
        return index.get((namespace, name))

    @property
    def knows_networks(self) -> bool:
        """Whether pod or node CIDRs are known, so "outside the cluster" can be judged."""
        return bool(self.pod_cidrs or self.node_cidrs)

    def locate(self, ip: str) -> Location:
        """Where a source IP is: a pod network, a node, or outside (keyed by its /24 or /64)."""
        cache: dict[str, Location] = self._cache["locations"]
        found = cache.get(ip)
        if found is None:
            if len(cache) >= _LOCATION_CACHE_LIMIT:
                cache.clear()
            found = cache[ip] = self._locate(ip)
        return found

    def _locate(self, ip: str) -> Location:
        try:
            address = ipaddress.ip_address(ip)
        except ValueError:
            return Location("unknown", "")
        networks: tuple[tuple[IPNetwork, ...], tuple[IPNetwork, ...]] = self._index("networks")
        pod_networks, node_networks = networks
        node_ips: frozenset[str] = self._index("node_ips")
        if ip in node_ips:
            for net in node_networks:
                if address in net:
                    return Location("node", str(net))
            return Location("node", f"node/{ip}")
        for net in pod_networks:
            if address in net:
                return Location("pod", str(net))
        for net in node_networks:
            if address in net:
                return Location("node", str(net))
        pod_ips: dict[str, Pod] = self._index("pod_ip")
        if ip in pod_ips:
            return Location("pod", "pods")
        prefix = 24 if address.version == 4 else 64
        return Location("external", str(ipaddress.ip_network(f"{ip}/{prefix}", strict=False)))


def _networks(inv: Inventory) -> tuple[tuple[IPNetwork, ...], tuple[IPNetwork, ...]]:
    return (
        tuple(ipaddress.ip_network(c, strict=False) for c in inv.pod_cidrs),
        tuple(ipaddress.ip_network(c, strict=False) for c in inv.node_cidrs),
    )


def _pods_by_sa(inv: Inventory) -> dict[Identity, tuple[Pod, ...]]:
    grouped: dict[Identity, list[Pod]] = {}
    for pod in inv.pods:
        grouped.setdefault(pod.identity, []).append(pod)
    return {k: tuple(v) for k, v in grouped.items()}


_INDEXES: dict[str, Any] = {
    "pod_uid": lambda inv: {p.uid: p for p in inv.pods if p.uid},
    "pod_key": lambda inv: {(p.namespace, p.name): p for p in inv.pods},
    "pod_ip": lambda inv: {ip: p for p in inv.pods if not p.host_network for ip in p.ips},
    "node": lambda inv: {n.name: n for n in inv.nodes},
    "node_ips": lambda inv: frozenset(ip for n in inv.nodes for ip in n.ips),
    "pods_by_sa": _pods_by_sa,
    "sa": lambda inv: {sa.identity: sa for sa in inv.service_accounts},
    "role": lambda inv: {(r.namespace, r.name): r for r in inv.roles},
    "networks": _networks,
    "locations": lambda inv: {},
}


# --- from Kubernetes JSON --------------------------------------------------------------------


def _flatten(objects: Iterable[Mapping[str, Any]]) -> Iterable[Mapping[str, Any]]:
    for obj in objects:
        if not isinstance(obj, Mapping):
            continue
        kind = obj.get("kind")
        if isinstance(kind, str) and kind.endswith("List") and isinstance(obj.get("items"), list):
            default_kind = kind[: -len("List")]
            for item in obj["items"]:
                if isinstance(item, Mapping):
                    yield item if "kind" in item else {**item, "kind": default_kind}
        else:
            yield obj


def _map(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else _EMPTY


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _strs(value: Any) -> tuple[str, ...]:
    return tuple(v for v in _list(value) if isinstance(v, str))


def _str_map(value: Any) -> Mapping[str, str]:
    return MappingProxyType(
        {k: v for k, v in _map(value).items() if isinstance(k, str) and isinstance(v, str)}
    )


def _timestamp(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def _opt_bool(value: Any) -> bool | None:
    return value if isinstance(value, bool) else None


def _pod(obj: Mapping[str, Any]) -> Pod:
    meta, spec, status = _map(obj.get("metadata")), _map(obj.get("spec")), _map(obj.get("status"))
    ips = tuple(
        ip
        for ip in (_map(e).get("ip") for e in _list(status.get("podIPs")))
        if isinstance(ip, str) and ip
    )
    if not ips and isinstance(status.get("podIP"), str) and status["podIP"]:
        ips = (status["podIP"],)
    owner_kind = owner_name = ""
    owners = [_map(o) for o in _list(meta.get("ownerReferences"))]
    controller = next(
        (o for o in owners if o.get("controller") is True), owners[0] if owners else None
    )
    if controller is not None:
        owner_kind, owner_name = str(controller.get("kind", "")), str(controller.get("name", ""))
    secret_refs: list[str] = []
    expiration: int | None = None
    for volume in (_map(v) for v in _list(spec.get("volumes"))):
        secret_name = _map(volume.get("secret")).get("secretName")
        if isinstance(secret_name, str):
            secret_refs.append(secret_name)
        for source in (_map(s) for s in _list(_map(volume.get("projected")).get("sources"))):
            token = source.get("serviceAccountToken")
            if isinstance(token, Mapping):
                seconds = token.get("expirationSeconds", 3600)
                if isinstance(seconds, int) and (expiration is None or seconds > expiration):
                    expiration = seconds
            secret_name = _map(source.get("secret")).get("name")
            if isinstance(secret_name, str):
                secret_refs.append(secret_name)
    containers = _list(spec.get("containers")) + _list(spec.get("initContainers"))
    for container in (_map(c) for c in containers):
        for env in (_map(e) for e in _list(container.get("env"))):
            secret_name = _map(_map(env.get("valueFrom")).get("secretKeyRef")).get("name")
            if isinstance(secret_name, str) and secret_name not in secret_refs:
                secret_refs.append(secret_name)
        for source in (_map(e) for e in _list(container.get("envFrom"))):
            secret_name = _map(source.get("secretRef")).get("name")
            if isinstance(secret_name, str) and secret_name not in secret_refs:
                secret_refs.append(secret_name)
    sa = spec.get("serviceAccountName") or spec.get("serviceAccount") or "default"
    return Pod(
        namespace=str(meta.get("namespace", "default")),
        name=str(meta.get("name", "")),
        uid=str(meta.get("uid", "")),
        ips=ips,
        node=str(spec.get("nodeName", "")),
        service_account=str(sa),
        labels=_str_map(meta.get("labels")),
        secret_refs=tuple(secret_refs),
        owner_kind=owner_kind,
        owner_name=owner_name,
        automount=_opt_bool(spec.get("automountServiceAccountToken")),
        token_expiration_seconds=expiration,
        host_network=spec.get("hostNetwork") is True,
        created=_timestamp(meta.get("creationTimestamp")),
    )


def _node(obj: Mapping[str, Any]) -> Node:
    meta, spec, status = _map(obj.get("metadata")), _map(obj.get("spec")), _map(obj.get("status"))
    ips = tuple(
        str(a.get("address"))
        for a in (_map(x) for x in _list(status.get("addresses")))
        if a.get("type") in ("InternalIP", "ExternalIP") and isinstance(a.get("address"), str)
    )
    cidrs = _strs(spec.get("podCIDRs")) or (
        (spec["podCIDR"],) if isinstance(spec.get("podCIDR"), str) and spec["podCIDR"] else ()
    )
    return Node(name=str(meta.get("name", "")), ips=ips, pod_cidrs=cidrs)


def _service_account(obj: Mapping[str, Any]) -> ServiceAccount:
    meta = _map(obj.get("metadata"))
    annotations = {k: v for k, v in _str_map(meta.get("annotations")).items() if k != LAST_APPLIED}
    return ServiceAccount(
        namespace=str(meta.get("namespace", "default")),
        name=str(meta.get("name", "")),
        uid=str(meta.get("uid", "")),
        annotations=MappingProxyType(annotations),
        automount=_opt_bool(obj.get("automountServiceAccountToken")),
        secret_refs=tuple(
            str(_map(s).get("name")) for s in _list(obj.get("secrets")) if _map(s).get("name")
        ),
    )


def _secret(obj: Mapping[str, Any]) -> Secret:
    # Only metadata and type are read: never data, stringData or last-applied-configuration.
    meta = _map(obj.get("metadata"))
    annotations = {k: v for k, v in _str_map(meta.get("annotations")).items() if k != LAST_APPLIED}
    return Secret(
        namespace=str(meta.get("namespace", "default")),
        name=str(meta.get("name", "")),
        type=str(obj.get("type", "Opaque")),
        annotations=MappingProxyType(annotations),
    )


def _rule(obj: Mapping[str, Any]) -> PolicyRule:
    return PolicyRule(
        verbs=_strs(obj.get("verbs")),
        api_groups=_strs(obj.get("apiGroups")),
        resources=_strs(obj.get("resources")),
        resource_names=_strs(obj.get("resourceNames")),
        non_resource_urls=_strs(obj.get("nonResourceURLs")),
    )


def _selector(obj: Mapping[str, Any]) -> LabelSelector:
    expressions = tuple(
        (str(e.get("key", "")), str(e.get("operator", "")), _strs(e.get("values")))
        for e in (_map(x) for x in _list(obj.get("matchExpressions")))
    )
    return LabelSelector(
        match_labels=_str_map(obj.get("matchLabels")), match_expressions=expressions
    )


def _role(obj: Mapping[str, Any], *, cluster: bool) -> Role:
    meta = _map(obj.get("metadata"))
    aggregation = _map(obj.get("aggregationRule"))
    return Role(
        namespace="" if cluster else str(meta.get("namespace", "default")),
        name=str(meta.get("name", "")),
        rules=tuple(_rule(_map(r)) for r in _list(obj.get("rules"))),
        labels=_str_map(meta.get("labels")),
        aggregation=tuple(
            _selector(_map(s)) for s in _list(aggregation.get("clusterRoleSelectors"))
        ),
    )


def _binding(obj: Mapping[str, Any], *, cluster: bool) -> Binding:
    meta, ref = _map(obj.get("metadata")), _map(obj.get("roleRef"))
    return Binding(
        namespace="" if cluster else str(meta.get("namespace", "default")),
        name=str(meta.get("name", "")),
        role_kind=str(ref.get("kind", "ClusterRole" if cluster else "Role")),
        role_name=str(ref.get("name", "")),
        subjects=tuple(
            Subject(
                kind=str(s.get("kind", "")),
                name=str(s.get("name", "")),
                namespace=str(s.get("namespace", "")),
            )
            for s in (_map(x) for x in _list(obj.get("subjects")))
        ),
    )
