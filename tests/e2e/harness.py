"""The operator, running as a process, with a real control plane's webhooks pointed at it.

One control plane per session. Its audit and authorization webhooks call the operator's server on
a port chosen before the apiserver starts; the operator runs as ``identity-risk run`` in a child
process (so a test can SIGKILL it and start it again), with the control plane's PKI: the
apiserver presents ``kube-apiserver-webhook-client``, the only client name the operator accepts.
"""

from __future__ import annotations

import base64
import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from chart_sa import ENABLED as AS_CHART_SA
from chart_sa import ChartIdentity

from identity_risk.testing.controlplane import (
    BINARIES,
    DEFAULT_BIN_DIR,
    ClusterState,
    ControlPlane,
    Pki,
    free_port,
)
from identity_risk.testing.operator import OPERATOR_NAMESPACE, OperatorProcess
from identity_risk.testing.scenario import Api, install_crds

ROOT = Path(__file__).resolve().parents[2]
MODE_LABEL = "e2e.identityrisk.dev/mode"


def require_binaries() -> None:
    missing = [b for b in BINARIES if not (DEFAULT_BIN_DIR / b).exists()]
    if missing:
        msg = (
            f"control-plane binaries missing ({', '.join(missing)}); run hack/controlplane/build.sh"
        )
        if os.environ.get("IDENTITY_RISK_REQUIRE_CONTROLPLANE"):
            pytest.fail(msg)
        pytest.skip(msg)


@dataclass
class Operated:
    """The control plane and the operator wired to it."""

    api: Api
    operator: OperatorProcess
    state: ClusterState
    pki: Pki
    chart: ChartIdentity | None = None  # set when running as the chart's ServiceAccount

    def namespace(self, mode: str) -> str:
        return f"e2e-{mode}-{uuid.uuid4().hex[:6]}"

    def labels(self, mode: str) -> dict[str, str]:
        return {MODE_LABEL: mode}

    def custom(self, plural: str, namespace: str, name: str = "") -> Any:
        path = f"/apis/identityrisk.dev/v1alpha1/namespaces/{namespace}/{plural}"
        return self.api.get(f"{path}/{name}" if name else path)


def policy(name: str, *, mode: str, label: str, actions: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "apiVersion": "identityrisk.dev/v1alpha1",
        "kind": "IdentityRiskPolicy",
        "metadata": {"name": name},
        "spec": {
            "mode": mode,
            "selector": {"namespaceSelector": {"matchLabels": {MODE_LABEL: label}}},
            "safeguards": {"maxActionsPerMinute": 1000, "circuitBreaker": {"maxIdentities": 100}},
            "bands": [
                {"name": "low", "minScore": 20, "actions": [{"type": "Notify"}]},
                {"name": "high", "minScore": 60, "minConfidence": "High", "actions": actions},
            ],
        },
    }


POLICIES = [
    policy(
        "e2e-enforce",
        mode="Enforce",
        label="enforce",
        actions=[{"type": "Notify"}, {"type": "RevokeToken"}],
    ),
    policy(
        "e2e-audit",
        mode="Audit",
        label="audit",
        actions=[{"type": "Notify"}, {"type": "RevokeToken"}],
    ),
    policy(
        "e2e-crash",
        mode="Enforce",
        label="crash",
        actions=[{"type": "RevokeToken"}, {"type": "DenyAPIAccess"}],
    ),
    policy(
        "e2e-quarantine",
        mode="Enforce",
        label="quarantine",
        actions=[{"type": "Notify"}, {"type": "QuarantinePods", "allowDNS": True}],
    ),
    policy(
        "e2e-rotate",
        mode="Enforce",
        label="rotate",
        actions=[{"type": "Notify"}, {"type": "RotateSecrets"}],
    ),
    policy(
        "e2e-recreate",
        mode="Enforce",
        label="recreate",
        actions=[{"type": "Notify"}, {"type": "RecreateServiceAccount"}],
    ),
    policy(
        "e2e-restrict",
        mode="Enforce",
        label="restrict",
        actions=[{"type": "Notify"}, {"type": "RestrictScope"}],
    ),
    policy(
        "e2e-ttl",
        mode="Enforce",
        label="ttl",
        actions=[{"type": "Notify"}, {"type": "ShortenTokenTTL", "maxTokenSeconds": 600}],
    ),
]


def mutating_webhooks(port: int, pki: Pki) -> dict[str, Any]:
    """The operator's admission webhooks, as the Helm chart installs them."""
    ca_bundle = base64.b64encode(pki.ca.cert.read_bytes()).decode()
    not_ours = {
        "matchExpressions": [
            {
                "key": "kubernetes.io/metadata.name",
                "operator": "NotIn",
                "values": ["kube-system", OPERATOR_NAMESPACE],
            }
        ]
    }

    def hook(name: str, group: str, resource: str, failure: str) -> dict[str, Any]:
        return {
            "name": f"{name}.identityrisk.dev",
            "admissionReviewVersions": ["v1"],
            "sideEffects": "None",
            "failurePolicy": failure,
            "timeoutSeconds": 5,
            "namespaceSelector": not_ours,
            "clientConfig": {"url": f"https://127.0.0.1:{port}/mutate", "caBundle": ca_bundle},
            "rules": [
                {
                    "apiGroups": [group],
                    "apiVersions": ["*"],
                    "operations": ["CREATE"],
                    "resources": [resource],
                }
            ],
        }

    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": "identity-risk"},
        "webhooks": [
            hook("pods", "", "pods", "Ignore"),
            hook("riskapprovals", "identityrisk.dev", "riskapprovals", "Fail"),
        ],
    }


@pytest.fixture(scope="session")
def operated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Operated]:
    require_binaries()
    port = free_port()
    workdir = tmp_path_factory.mktemp("operator")
    chart = ChartIdentity(workdir=workdir, namespace=OPERATOR_NAMESPACE) if AS_CHART_SA else None
    plane = ControlPlane(
        webhook_base_url=f"https://127.0.0.1:{port}",
        extra_apiserver_args=chart.apiserver_args() if chart else (),
    )
    state = plane.start()
    operator = OperatorProcess(state=state, pki=plane.pki, port=port, workdir=workdir)
    try:
        api = Api(url=state.apiserver_url, ca_file=plane.pki.ca.cert, admin=plane.pki.admin)
        if chart is not None:
            chart.install(state, api)  # the chart's CRDs, namespace, ServiceAccount and RBAC
            operator.kubeconfig = chart.kubeconfig
            # As the chart runs it: leader election (one replica here, so it always leads; its
            # Lease identity survives a restart, as a pod's name does).
            operator.extra_args = ["--leader-elect"]
            operator.env = {"POD_NAME": "identity-risk-operator-e2e"}
        install_crds(api, ROOT / "crds")
        api.create(
            "/api/v1/namespaces",
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": OPERATOR_NAMESPACE}},
        )
        for body in POLICIES:
            api.create("/apis/identityrisk.dev/v1alpha1/identityriskpolicies", body)
        operator.start()
        api.create(
            "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations",
            mutating_webhooks(port, plane.pki),
        )
        time.sleep(1)  # let the watches list the policies
        yield Operated(api=api, operator=operator, state=state, pki=plane.pki, chart=chart)
    finally:
        operator.stop()
        plane.stop()
