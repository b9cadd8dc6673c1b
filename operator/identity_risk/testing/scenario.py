"""A compromised workload, played against a real control plane: the demo's and the e2e tests' story.

Pods never run on the test control plane (kwok fakes them), so the scenario *acts as* a pod: it
asks the TokenRequest API for a token bound to the pod, and makes requests with it from the pod's
own IP (every pod IP is a loopback address). An attacker is the same token from another loopback
address. The apiserver's audit ``sourceIPs`` tell the truth on both sides.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from identity_risk.testing.controlplane import CertPair, api_request

ATTACKER_IP = "127.0.0.66"
TIER_LABEL = "identityrisk.dev/tier"


class ScenarioError(RuntimeError):
    """A step of the scenario did not happen in time; the message says which."""


@dataclass(frozen=True)
class Api:
    """JSON requests to the apiserver as the admin or as the bearer of a token."""

    url: str
    ca_file: Path
    admin: CertPair

    def call(
        self,
        method: str,
        path: str,
        body: Mapping[str, Any] | None = None,
        *,
        token: str | None = None,
        source_ip: str | None = None,
        content_type: str = "application/json",
    ) -> tuple[int, dict[str, Any]]:
        import ssl

        ctx = ssl.create_default_context(cafile=str(self.ca_file))
        headers: dict[str, str] = {"User-Agent": "checkout/1.4 (go-client)"}
        if token is None:
            ctx.load_cert_chain(str(self.admin.cert), str(self.admin.key))
        else:
            headers["Authorization"] = f"Bearer {token}"
        return api_request(
            self.url,
            ctx,
            method,
            path,
            body,
            headers=headers,
            source_ip=source_ip,
            content_type=content_type,
        )

    def create(self, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """Create an object; one that already exists is fine (the scenario can be re-run)."""
        status, obj = self.call("POST", path, body)
        if status not in (200, 201, 409):
            raise ScenarioError(f"POST {path}: HTTP {status} {obj.get('message', obj)}")
        return obj

    def get(self, path: str) -> dict[str, Any] | None:
        status, obj = self.call("GET", path)
        return obj if status == 200 else None


def path_of(obj: Mapping[str, Any]) -> str:
    """The collection path an object is created at."""
    api_version = str(obj["apiVersion"])
    kind = str(obj["kind"])
    plural = {
        "CustomResourceDefinition": "customresourcedefinitions",
        "IdentityRiskPolicy": "identityriskpolicies",
        "RiskException": "riskexceptions",
        "IdentitySignal": "identitysignals",
        "Namespace": "namespaces",
        "ServiceAccount": "serviceaccounts",
    }.get(kind, kind.lower() + "s")
    prefix = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
    namespace = (obj.get("metadata") or {}).get("namespace")
    return f"{prefix}/namespaces/{namespace}/{plural}" if namespace else f"{prefix}/{plural}"


def apply_file(api: Api, path: Path) -> list[dict[str, Any]]:
    """Create every object in a YAML file (existing ones are left as they are)."""
    return [api.create(path_of(doc), doc) for doc in yaml.safe_load_all(path.read_text()) if doc]


def install_crds(api: Api, crds: Path, *, timeout: float = 30.0) -> None:
    for path in sorted(crds.glob("*.yaml")):
        apply_file(api, path)
    deadline = time.monotonic() + timeout
    for path in sorted(crds.glob("*.yaml")):
        name = yaml.safe_load(path.read_text())["metadata"]["name"]
        while True:
            crd = api.get(f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}") or {}
            conditions = (crd.get("status") or {}).get("conditions") or []
            if any(c["type"] == "Established" and c["status"] == "True" for c in conditions):
                break
            if time.monotonic() > deadline:
                raise ScenarioError(f"CRD {name} not Established after {timeout:.0f}s")
            time.sleep(0.2)


def deploy_workload(
    api: Api, *, namespace: str, name: str, labels: Mapping[str, str] | None = None
) -> None:
    """A namespace, a ServiceAccount with a read-only Role, and a one-replica Deployment."""
    api.create(
        "/api/v1/namespaces",
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {
                "name": namespace,
                "labels": dict(labels or {TIER_LABEL: "production"}),
                "annotations": {"identityrisk.dev/owner": "team-payments@example.com"},
            },
        },
    )
    api.create(
        f"/api/v1/namespaces/{namespace}/serviceaccounts",
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name}},
    )
    api.create(
        f"/apis/rbac.authorization.k8s.io/v1/namespaces/{namespace}/roles",
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {"name": name},
            "rules": [
                {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list"]},
                {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "list"]},
            ],
        },
    )
    api.create(
        f"/apis/rbac.authorization.k8s.io/v1/namespaces/{namespace}/rolebindings",
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": name},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
            "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": namespace}],
        },
    )
    api.create(
        f"/apis/apps/v1/namespaces/{namespace}/deployments",
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": name},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": {"app": name}},
                "template": {
                    "metadata": {"labels": {"app": name}},
                    "spec": {
                        "serviceAccountName": name,
                        "containers": [{"name": "app", "image": "example.com/checkout:1.4"}],
                    },
                },
            },
        },
    )


def running_pod(
    api: Api, *, namespace: str, app: str, exclude: str = "", timeout: float = 60.0
) -> dict[str, Any]:
    """A Running pod of ``app`` with an IP (not the one named ``exclude``)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pods = api.get(f"/api/v1/namespaces/{namespace}/pods?labelSelector=app%3D{app}") or {}
        items: list[dict[str, Any]] = pods.get("items", [])
        for pod in items:
            status = pod.get("status") or {}
            meta = pod["metadata"]
            if (
                status.get("phase") == "Running"
                and status.get("podIP")
                and meta["name"] != exclude
                and not meta.get("deletionTimestamp")
            ):
                return pod
        time.sleep(0.3)
    raise ScenarioError(f"no Running pod of {namespace}/{app} after {timeout:.0f}s")


def pod_token(api: Api, pod: Mapping[str, Any], *, seconds: int = 3600) -> str:
    """A service-account token bound to ``pod``, as the kubelet would mount it."""
    meta = pod["metadata"]
    sa = pod["spec"]["serviceAccountName"]
    status, body = api.call(
        "POST",
        f"/api/v1/namespaces/{meta['namespace']}/serviceaccounts/{sa}/token",
        {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {
                "audiences": [],
                "expirationSeconds": seconds,
                "boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": meta["name"]},
            },
        },
    )
    if status != 201:
        raise ScenarioError(f"TokenRequest for pod {meta['name']}: HTTP {status} {body}")
    token: str = body["status"]["token"]
    return token


def read_configmaps(api: Api, *, namespace: str, token: str, source_ip: str) -> int:
    status, _ = api.call(
        "GET", f"/api/v1/namespaces/{namespace}/configmaps", token=token, source_ip=source_ip
    )
    return status


def wait_for(what: str, check: Any, *, timeout: float = 30.0, every: float = 0.25) -> Any:
    """Poll ``check()`` until it returns something truthy; raise naming ``what`` otherwise."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(every)
    raise ScenarioError(f"timed out after {timeout:.0f}s waiting for {what}")
