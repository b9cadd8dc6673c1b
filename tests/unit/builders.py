"""Object builders for tests: audit events and Kubernetes objects as the apiserver would send them.

Every builder returns plain JSON-shaped dicts (or bytes for wire batches) with realistic defaults,
so a test states only what matters to it::

    event = make_audit_event(sa=("shop", "web"), verb="list", resource="secrets", source_ip=ATTACKER_IP)
    inventory = make_inventory(make_pod(name="web-1", sa="web", ip=POD_IP), make_node())

Defaults describe one healthy pod ``shop/web-1`` on node ``node-a`` using ServiceAccount
``shop/web`` from its own IP with its bound token, in a cluster whose pod CIDR is 10.244.0.0/16.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec

from identity_risk.domain import Identity
from identity_risk.ingest import AuditRecord, parse_event
from identity_risk.ingest.dedupe import Deduplicator
from identity_risk.signals import (
    BaselineConfig,
    DetectorConfig,
    Detectors,
    IdentityState,
    Inventory,
)

T0 = datetime(2026, 1, 5, 9, 0, 0, tzinfo=UTC)
POD_CIDR = "10.244.0.0/16"
NODE_CIDR = "192.168.10.0/24"
POD_IP = "10.244.1.17"
OTHER_POD_IP = "10.244.2.33"
NODE_IP = "192.168.10.11"
ATTACKER_IP = "203.0.113.66"
POD_UID = "6f1c2b9e-0000-4000-8000-000000000017"
CREDENTIAL_ID = "JTI=4c1f0d0e-7a55-4a8e-9d2b-1e3f5a6b7c8d"
APP_USER_AGENT = "shop-web/1.4.2 (linux/amd64) kubernetes/abc123"
KUBECTL_USER_AGENT = "kubectl/v1.31.0 (linux/amd64) kubernetes/9edcffc"

WEB = Identity(namespace="shop", name="web")
FAST_WARMUP = DetectorConfig(
    baseline=BaselineConfig(warmup=timedelta(minutes=10), warmup_min_requests=20)
)
"""A detector config whose warm-up fits in a test: 10 minutes and 20 requests."""

_audit_ids = itertools.count(1)

JSON = dict[str, Any]


def ts(t: datetime | float) -> str:
    """RFC 3339 with microseconds, as the apiserver writes MicroTime."""
    if isinstance(t, int | float):
        t = T0 + timedelta(seconds=t)
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def make_audit_event(
    *,
    sa: tuple[str, str] | None = ("shop", "web"),
    username: str | None = None,
    groups: Sequence[str] | None = None,
    verb: str = "get",
    resource: str | None = "configmaps",
    subresource: str = "",
    namespace: str | None = None,
    name: str = "",
    api_group: str = "",
    decision: str | None = "allow",
    reason: str = "RBAC: allowed by RoleBinding",
    code: int | None = None,
    source_ip: str = POD_IP,
    source_ips: Sequence[str] | None = None,
    user_agent: str = APP_USER_AGENT,
    at: datetime | float = 0.0,
    stage: str = "ResponseComplete",
    audit_id: str | None = None,
    bound: bool = True,
    pod_name: str = "web-1",
    pod_uid: str = POD_UID,
    node_name: str = "node-a",
    credential_id: str = CREDENTIAL_ID,
    request_object: Mapping[str, Any] | None = None,
    request_uri: str | None = None,
    impersonate: str | None = None,
) -> JSON:
    """An ``audit.k8s.io/v1`` Event dict. ``at`` is a datetime or seconds after ``T0``.

    ``sa`` names the ServiceAccount (namespace, name) making the request; pass ``username`` for
    other users, ``impersonate`` for the user it acts as. ``bound`` adds the pod-bound token claims to ``user.extra``. ``namespace``
    defaults to the ServiceAccount's namespace for namespaced resources.
    """
    if username is None:
        username = f"system:serviceaccount:{sa[0]}:{sa[1]}" if sa else "jane@example.com"
    if groups is None:
        groups = (
            ["system:serviceaccounts", f"system:serviceaccounts:{sa[0]}", "system:authenticated"]
            if sa and username.startswith("system:serviceaccount:")
            else ["system:authenticated"]
        )
    if namespace is None:
        namespace = sa[0] if sa else ""
    user: JSON = {"username": username, "groups": list(groups)}
    if bound and sa:
        user["uid"] = "sa-uid"
        user["extra"] = {
            "authentication.kubernetes.io/pod-name": [pod_name],
            "authentication.kubernetes.io/pod-uid": [pod_uid],
            "authentication.kubernetes.io/node-name": [node_name],
            "authentication.kubernetes.io/credential-id": [credential_id],
        }
    if code is None:
        code = 403 if decision == "forbid" else (201 if verb == "create" else 200)
    if request_uri is None:
        path = f"/apis/{api_group}/v1" if api_group else "/api/v1"
        if namespace:
            path += f"/namespaces/{namespace}"
        if resource:
            path += f"/{resource}"
        if name:
            path += f"/{name}"
        if subresource:
            path += f"/{subresource}"
        request_uri = path
    event: JSON = {
        "kind": "Event",
        "apiVersion": "audit.k8s.io/v1",
        "level": "Metadata",
        "auditID": audit_id or f"00000000-0000-4000-8000-{next(_audit_ids):012d}",
        "stage": stage,
        "requestURI": request_uri,
        "verb": verb,
        "user": user,
        "sourceIPs": list(source_ips) if source_ips is not None else [source_ip],
        "userAgent": user_agent,
        "responseStatus": {"metadata": {}, "code": code},
        "requestReceivedTimestamp": ts(at),
        "stageTimestamp": ts(at + 0.004 if isinstance(at, float | int) else at),
        "annotations": {},
    }
    if resource:
        ref: JSON = {"resource": resource, "apiVersion": "v1"}
        if namespace:
            ref["namespace"] = namespace
        if name:
            ref["name"] = name
        if api_group:
            ref["apiGroup"] = api_group
        if subresource:
            ref["subresource"] = subresource
        event["objectRef"] = ref
    if decision is not None:
        event["annotations"]["authorization.k8s.io/decision"] = decision
        event["annotations"]["authorization.k8s.io/reason"] = reason
    if impersonate is not None:
        event["impersonatedUser"] = {"username": impersonate, "groups": ["system:authenticated"]}
    if request_object is not None:
        event["requestObject"] = dict(request_object)
        event["level"] = "Request"
    return event


def make_event_list(events: Iterable[Any]) -> bytes:
    """A webhook batch body: an EventList of the given events (or any JSON items), encoded."""
    return msgspec.json.encode(
        {
            "kind": "EventList",
            "apiVersion": "audit.k8s.io/v1",
            "metadata": {},
            "items": list(events),
        }
    )


def make_jsonl(events: Iterable[Mapping[str, Any]]) -> list[bytes]:
    """Audit log lines, as the apiserver's log backend writes them."""
    return [msgspec.json.encode(e) + b"\n" for e in events]


def make_record(**kwargs: Any) -> AuditRecord:
    """An ``AuditRecord`` parsed from ``make_audit_event(**kwargs)``."""
    record = parse_event(msgspec.json.encode(make_audit_event(**kwargs)), dedupe=Deduplicator())
    assert record is not None, kwargs
    return record


def make_pod_spec_object(
    *, privileged: bool = False, host_path: str | None = None, host_network: bool = False
) -> JSON:
    """A pod body for ``request_object`` of a pod create."""
    container: JSON = {"name": "app", "image": "busybox"}
    if privileged:
        container["securityContext"] = {"privileged": True}
    spec: JSON = {"containers": [container]}
    if host_path:
        spec["volumes"] = [{"name": "host", "hostPath": {"path": host_path}}]
    if host_network:
        spec["hostNetwork"] = True
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x"}, "spec": spec}


# --- Kubernetes objects for the inventory ----------------------------------------------------


def _meta(
    name: str, namespace: str | None, *, uid: str | None = None, labels: Mapping[str, str] | None = None,
    annotations: Mapping[str, str] | None = None,
) -> JSON:  # fmt: skip
    meta: JSON = {"name": name, "uid": uid or f"uid-{namespace or 'cluster'}-{name}"}
    if namespace is not None:
        meta["namespace"] = namespace
    if labels:
        meta["labels"] = dict(labels)
    if annotations:
        meta["annotations"] = dict(annotations)
    return meta


def make_pod(
    *,
    name: str = "web-1",
    namespace: str = "shop",
    sa: str = "web",
    ip: str | None = POD_IP,
    node: str = "node-a",
    uid: str | None = POD_UID,
    labels: Mapping[str, str] | None = None,
    owner: tuple[str, str] | None = ("ReplicaSet", "web-5d8f7c9b6"),
    automount: bool | None = None,
    token_expiration: int | None = 3607,
    secret_volumes: Sequence[str] = (),
    host_network: bool = False,
) -> JSON:
    """A running Pod. ``token_expiration`` adds the projected service-account token volume."""
    meta = _meta(name, namespace, uid=uid, labels=labels or {"app": "web"})
    if owner:
        meta["ownerReferences"] = [
            {"apiVersion": "apps/v1", "kind": owner[0], "name": owner[1], "uid": "owner-uid",
             "controller": True}
        ]  # fmt: skip
    volumes: list[JSON] = []
    if token_expiration is not None:
        volumes.append(
            {"name": "kube-api-access", "projected": {"sources": [
                {"serviceAccountToken": {"expirationSeconds": token_expiration, "path": "token"}},
                {"configMap": {"name": "kube-root-ca.crt"}},
            ]}}
        )  # fmt: skip
    volumes.extend({"name": s, "secret": {"secretName": s}} for s in secret_volumes)
    spec: JSON = {
        "serviceAccountName": sa,
        "nodeName": node,
        "containers": [{"name": "app", "image": "shop/web:1.4.2"}],
        "volumes": volumes,
    }
    if automount is not None:
        spec["automountServiceAccountToken"] = automount
    if host_network:
        spec["hostNetwork"] = True
    status: JSON = {"phase": "Running"}
    if ip:
        status["podIP"] = ip
        status["podIPs"] = [{"ip": ip}]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec, "status": status}


def make_node(
    *, name: str = "node-a", ip: str = NODE_IP, pod_cidr: str | None = "10.244.1.0/24"
) -> JSON:
    """A Node with one InternalIP and (optionally) its pod CIDR."""
    spec: JSON = {}
    if pod_cidr:
        spec["podCIDR"] = pod_cidr
        spec["podCIDRs"] = [pod_cidr]
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": _meta(name, None),
        "spec": spec,
        "status": {"addresses": [{"type": "InternalIP", "address": ip},
                                 {"type": "Hostname", "address": name}]},
    }  # fmt: skip


def make_service_account(
    *,
    name: str = "web",
    namespace: str = "shop",
    automount: bool | None = None,
    annotations: Mapping[str, str] | None = None,
    secrets: Sequence[str] = (),
) -> JSON:
    """A ServiceAccount."""
    sa: JSON = {"apiVersion": "v1", "kind": "ServiceAccount",
                "metadata": _meta(name, namespace, annotations=annotations)}  # fmt: skip
    if automount is not None:
        sa["automountServiceAccountToken"] = automount
    if secrets:
        sa["secrets"] = [{"name": s} for s in secrets]
    return sa


def make_secret(
    *,
    name: str = "web-token",
    namespace: str = "shop",
    type: str = "kubernetes.io/service-account-token",
    sa: str | None = "web",
    annotations: Mapping[str, str] | None = None,
    data: Mapping[str, str] | None = None,
) -> JSON:
    """A Secret, with data (so tests can prove the inventory never keeps it)."""
    ann = dict(annotations or {})
    if sa is not None:
        ann["kubernetes.io/service-account.name"] = sa
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": _meta(name, namespace, annotations=ann),
        "type": type,
        "data": dict(data or {"token": "c2VjcmV0LXRva2Vu"}),
    }


def make_rule(
    verbs: Sequence[str],
    resources: Sequence[str],
    *,
    api_groups: Sequence[str] = ("",),
    resource_names: Sequence[str] = (),
) -> JSON:
    """One RBAC PolicyRule."""
    rule: JSON = {"apiGroups": list(api_groups), "resources": list(resources), "verbs": list(verbs)}
    if resource_names:
        rule["resourceNames"] = list(resource_names)
    return rule


def make_role(
    *, name: str = "web", namespace: str = "shop", rules: Sequence[Mapping[str, Any]] = ()
) -> JSON:
    """A namespaced Role."""
    return {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
            "metadata": _meta(name, namespace), "rules": [dict(r) for r in rules]}  # fmt: skip


def make_cluster_role(
    *,
    name: str,
    rules: Sequence[Mapping[str, Any]] = (),
    labels: Mapping[str, str] | None = None,
    aggregate_from: Sequence[Mapping[str, str]] | None = None,
) -> JSON:
    """A ClusterRole; ``aggregate_from`` gives aggregationRule matchLabels selectors."""
    role: JSON = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                  "metadata": _meta(name, None, labels=labels), "rules": [dict(r) for r in rules]}  # fmt: skip
    if aggregate_from is not None:
        role["aggregationRule"] = {
            "clusterRoleSelectors": [{"matchLabels": dict(s)} for s in aggregate_from]
        }
    return role


def sa_subject(name: str = "web", namespace: str = "shop") -> JSON:
    return {"kind": "ServiceAccount", "name": name, "namespace": namespace}


def group_subject(name: str) -> JSON:
    return {"kind": "Group", "name": name, "apiGroup": "rbac.authorization.k8s.io"}


def make_role_binding(
    *,
    name: str = "web",
    namespace: str = "shop",
    role: str = "web",
    role_kind: str = "Role",
    subjects: Sequence[Mapping[str, Any]] | None = None,
) -> JSON:
    """A RoleBinding (of a Role or a ClusterRole) to ``subjects`` (default: ``shop/web``)."""
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": _meta(name, namespace),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind, "name": role},
        "subjects": [dict(s) for s in (subjects if subjects is not None else [sa_subject()])],
    }


def make_cluster_role_binding(
    *, name: str = "web", role: str, subjects: Sequence[Mapping[str, Any]] | None = None
) -> JSON:
    """A ClusterRoleBinding to ``subjects`` (default: ``shop/web``)."""
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": _meta(name, None),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
        "subjects": [dict(s) for s in (subjects if subjects is not None else [sa_subject()])],
    }


def default_objects() -> list[JSON]:
    """The default world: pod shop/web-1 on node-a, its ServiceAccount, its Role and binding."""
    return [
        make_node(),
        make_pod(),
        make_service_account(),
        make_role(rules=[make_rule(["get", "list"], ["configmaps"])]),
        make_role_binding(),
    ]


def make_inventory(*objects: Mapping[str, Any], defaults: bool = True) -> Inventory:
    """An inventory of ``default_objects()`` (unless ``defaults=False``) plus ``objects``.

    The cluster's pod CIDR (``POD_CIDR``) and node CIDR (``NODE_CIDR``) are always known.
    """
    base = default_objects() if defaults else []
    return Inventory.from_objects([*base, *objects], pod_cidrs=[POD_CIDR], node_cidrs=[NODE_CIDR])


def warm_state(
    *,
    identity: Identity = WEB,
    requests: int = 60,
    every: float = 30.0,
    config: DetectorConfig | None = None,
    inventory: Inventory | None = None,
    **event: Any,
) -> IdentityState:
    """A state whose baseline has been learned from ``requests`` ordinary requests.

    Requests are ``make_audit_event(**event)`` spaced ``every`` seconds apart ending just before
    ``T0``; the default config's warm-up is shortened to fit (see ``FAST_WARMUP``).
    """
    config = config or FAST_WARMUP
    inventory = inventory or make_inventory()
    detectors = Detectors(config=config)
    state = IdentityState.new(identity, now=T0 - timedelta(seconds=requests * every + 1))
    sa = (identity.namespace, identity.name)
    for i in range(requests):
        record = make_record(sa=sa, at=-(requests - i) * every, **event)
        detectors.observe(record, state, inventory)
    return state
