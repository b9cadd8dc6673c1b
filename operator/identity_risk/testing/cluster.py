"""A running test control plane as tests use it: kubectl, JSON requests, object builders.

Shared by the integration tests and the operator's end-to-end tests; free of pytest so that a
script (or the demo) can use it too.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from identity_risk.testing.controlplane import ClusterState, Pki, api_request
from identity_risk.testing.receivers import WebhookReceiver

T = TypeVar("T")


@dataclass(frozen=True)
class Cluster:
    state: ClusterState
    pki: Pki
    receiver: WebhookReceiver

    def kubectl(
        self, *args: str, stdin: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [
                str(Path(self.state.binaries["kube-apiserver"]).parent / "kubectl"),
                f"--kubeconfig={self.state.kubeconfig}",
                *args,
            ],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed:\n{result.stderr}")
        return result

    def api(
        self,
        method: str,
        path: str,
        body: Mapping[str, Any] | None = None,
        *,
        token: str | None = None,
        source_ip: str | None = None,
    ) -> tuple[int, dict[str, Any]]:
        """A request as the admin, or as the bearer of ``token`` (from ``source_ip``, if given)."""
        if token is None:
            ctx = self.pki.client_context(self.pki.admin)
            headers = {}
        else:
            ctx = self.pki.client_context()
            headers = {"Authorization": f"Bearer {token}"}
        return api_request(
            self.state.apiserver_url, ctx, method, path, body, headers=headers, source_ip=source_ip
        )

    def create(self, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        status, obj = self.api("POST", path, body)
        assert status == 201, f"POST {path}: HTTP {status} {obj.get('message', obj)}"
        return obj


def eventually(probe: Callable[[], T | None], *, timeout: float = 30.0, what: str = "") -> T:
    """Poll ``probe`` until it returns something other than None or False."""
    end = time.monotonic() + timeout
    while True:
        value = probe()
        if value is not None and value is not False:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or probe}")
        time.sleep(0.2)


# Builders -------------------------------------------------------------------------------------


def make_service_account(cluster: Cluster, namespace: str, name: str) -> dict[str, Any]:
    return cluster.create(
        f"/api/v1/namespaces/{namespace}/serviceaccounts", {"metadata": {"name": name}}
    )


def make_pod(
    cluster: Cluster, namespace: str, name: str, *, service_account: str
) -> dict[str, Any]:
    """A pod (kwok marks it Running with a loopback IP); returns it once it has that IP."""
    cluster.create(
        f"/api/v1/namespaces/{namespace}/pods",
        {
            "metadata": {"name": name, "labels": {"app": name}},
            "spec": {
                "serviceAccountName": service_account,
                "containers": [{"name": "app", "image": "registry.invalid/app:1"}],
            },
        },
    )

    def running() -> dict[str, Any] | None:
        _, pod = cluster.api("GET", f"/api/v1/namespaces/{namespace}/pods/{name}")
        status = pod.get("status", {})
        return pod if status.get("phase") == "Running" and status.get("podIP") else None

    return eventually(running, what=f"pod {namespace}/{name} Running with an IP")


def request_token(
    cluster: Cluster, namespace: str, service_account: str, *, pod: Mapping[str, Any] | None = None
) -> str:
    """A TokenRequest for the ServiceAccount, bound to ``pod`` when given (as a kubelet would)."""
    spec: dict[str, Any] = {"expirationSeconds": 3600}
    if pod is not None:
        meta = pod["metadata"]
        spec["boundObjectRef"] = {
            "kind": "Pod",
            "apiVersion": "v1",
            "name": meta["name"],
            "uid": meta["uid"],
        }
    review = cluster.create(
        f"/api/v1/namespaces/{namespace}/serviceaccounts/{service_account}/token",
        {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec},
    )
    token: str = review["status"]["token"]
    return token


def bind_cluster_role(
    cluster: Cluster, namespace: str, service_account: str, *, role: str = "view"
) -> None:
    cluster.create(
        f"/apis/rbac.authorization.k8s.io/v1/namespaces/{namespace}/rolebindings",
        {
            "metadata": {"name": f"{service_account}-{role}"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": role,
            },
            "subjects": [
                {"kind": "ServiceAccount", "name": service_account, "namespace": namespace}
            ],
        },
    )
