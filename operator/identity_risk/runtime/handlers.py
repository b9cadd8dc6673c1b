"""kopf wiring: thin translations from watch events to the live operator.

Every handler here is ``on.event``: kopf keeps no progress annotations and adds no finalizers,
so the operator never writes to objects it does not own (Pods, ServiceAccounts, Roles, bindings
belong to other controllers and to Git; Argo CD must not see drift from us). The handlers only
copy what they see into the live operator; they never block on the API server.
"""

from __future__ import annotations

import logging
from typing import Any

import kopf
from kubernetes import client

from identity_risk.api.v1alpha1 import GROUP, VERSION
from identity_risk.runtime.live import LiveOperator

log = logging.getLogger(__name__)

INVENTORY = (
    ("", "v1", "pods"),
    ("", "v1", "serviceaccounts"),
    ("", "v1", "secrets"),
    ("", "v1", "namespaces"),
    ("", "v1", "nodes"),
    ("rbac.authorization.k8s.io", "v1", "roles"),
    ("rbac.authorization.k8s.io", "v1", "clusterroles"),
    ("rbac.authorization.k8s.io", "v1", "rolebindings"),
    ("rbac.authorization.k8s.io", "v1", "clusterrolebindings"),
)
KIND_OF = {
    "pods": "Pod",
    "serviceaccounts": "ServiceAccount",
    "secrets": "Secret",
    "namespaces": "Namespace",
    "nodes": "Node",
    "roles": "Role",
    "clusterroles": "ClusterRole",
    "rolebindings": "RoleBinding",
    "clusterrolebindings": "ClusterRoleBinding",
}


def connection_info(api_client: client.ApiClient) -> kopf.ConnectionInfo:
    """kopf's credentials from the same client configuration the effects use."""
    cfg = api_client.configuration
    token = (cfg.api_key or {}).get("authorization", "") or (cfg.api_key or {}).get(
        "BearerToken", ""
    )
    _, _, value = str(token).partition(" ")
    return kopf.ConnectionInfo(
        server=cfg.host,
        ca_path=cfg.ssl_ca_cert,
        insecure=not cfg.verify_ssl,
        scheme="Bearer" if value else None,
        token=value or None,
        certificate_path=cfg.cert_file,
        private_key_path=cfg.key_file,
    )


def _inventory_handler(live: LiveOperator, kind: str) -> Any:
    def on_inventory(event: dict[str, Any], body: kopf.Body, **_: Any) -> None:
        obj = {**dict(body), "kind": kind}  # watch events of core kinds may omit it
        if event.get("type") == "DELETED":
            live.store.delete(obj)
        else:
            live.store.upsert(obj)

    return on_inventory


def build_registry(live: LiveOperator, api_client: client.ApiClient) -> kopf.OperatorRegistry:
    """A kopf registry with every handler the operator needs, bound to ``live``."""
    registry = kopf.OperatorRegistry()

    @kopf.on.login(registry=registry)
    def login(**_: Any) -> kopf.ConnectionInfo:
        return connection_info(api_client)

    @kopf.on.startup(registry=registry)
    def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
        settings.posting.enabled = False  # our Events are written by the executor, with context
        settings.watching.server_timeout = 300
        settings.networking.request_timeout = 60

    for group, version, plural in INVENTORY:
        kopf.on.event(group, version, plural, registry=registry, id=f"inventory-{plural}")(
            _inventory_handler(live, KIND_OF[plural])
        )

    @kopf.on.event(GROUP, VERSION, "identityriskpolicies", registry=registry)  # type: ignore[arg-type]
    def on_policy(event: dict[str, Any], body: kopf.Body, **_: Any) -> None:
        problem = live.set_policy(dict(body), deleted=event.get("type") == "DELETED")
        if problem:
            log.warning("%s", problem)

    @kopf.on.event(GROUP, VERSION, "riskexceptions", registry=registry)  # type: ignore[arg-type]
    def on_exception(event: dict[str, Any], body: kopf.Body, **_: Any) -> None:
        problem = live.set_exception(dict(body), deleted=event.get("type") == "DELETED")
        if problem:
            log.warning("%s", problem)

    @kopf.on.event(GROUP, VERSION, "identitysignals", registry=registry)  # type: ignore[arg-type]
    def on_signal(event: dict[str, Any], body: kopf.Body, **_: Any) -> None:
        if event.get("type") in (None, "ADDED"):
            try:
                live.add_external_signal(dict(body))
            except ValueError as exc:
                log.warning(
                    "IdentitySignal %s ignored: %s", body.get("metadata", {}).get("name"), exc
                )

    @kopf.on.event(GROUP, VERSION, "riskdecisions", registry=registry)  # type: ignore[arg-type]
    def on_decision(event: dict[str, Any], body: kopf.Body, **_: Any) -> None:
        live.observe_decision(dict(body), deleted=event.get("type") == "DELETED")

    @kopf.on.event(GROUP, VERSION, "riskapprovals", registry=registry)  # type: ignore[arg-type]
    def on_approval(event: dict[str, Any], body: kopf.Body, **_: Any) -> None:
        if event.get("type") in (None, "ADDED"):
            live.on_approval(dict(body))

    @kopf.on.event(GROUP, VERSION, "workloadidentityrisks", registry=registry)  # type: ignore[arg-type]
    def on_wir(event: dict[str, Any], body: kopf.Body, **_: Any) -> None:
        if event.get("type") is None:  # the initial listing: resume where we left off
            live.restore(dict(body))
        if event.get("type") != "DELETED":
            live.observe_feedback(dict(body))

    return registry
