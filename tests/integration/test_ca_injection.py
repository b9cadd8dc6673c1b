"""TLS mode generate: the operator writes its generated CA into the chart's
MutatingWebhookConfiguration's caBundle at startup, once (idempotent), on the real control plane."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from conftest import require_binaries

from identity_risk.testing.controlplane import ControlPlane, free_port
from identity_risk.testing.operator import OPERATOR_NAMESPACE, OperatorProcess
from identity_risk.testing.scenario import Api, install_crds

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
NAME = "identity-risk-operator"
MWC = f"/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/{NAME}"
NEVER = {"matchLabels": {"identityrisk.dev/never": "matches"}}  # admits nothing of the suite


def webhook_configuration(port: int) -> dict[str, object]:
    def hook(name: str, group: str, resource: str) -> dict[str, object]:
        return {
            "name": f"{name}.identityrisk.dev",
            "admissionReviewVersions": ["v1"],
            "sideEffects": "None",
            "failurePolicy": "Ignore",
            "objectSelector": NEVER,
            "clientConfig": {"url": f"https://127.0.0.1:{port}/mutate"},  # no caBundle yet
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
        "metadata": {"name": NAME},
        "webhooks": [
            hook("pods", "", "pods"),
            hook("riskapprovals", "identityrisk.dev", "riskapprovals"),
        ],
    }


def test_the_generated_ca_becomes_the_webhooks_ca_bundle(tmp_path: Path) -> None:
    require_binaries()
    plane = ControlPlane(root=tmp_path / "plane", die_with_parent=True)
    state = plane.start()
    port = free_port()
    operator = OperatorProcess(
        state=state,
        pki=plane.pki,
        port=port,
        workdir=tmp_path,
        generate_tls=True,
        extra_args=[f"--webhook-configuration={NAME}"],
    )
    try:
        api = Api(url=state.apiserver_url, ca_file=plane.pki.ca.cert, admin=plane.pki.admin)
        install_crds(api, ROOT / "crds")
        api.create(
            "/api/v1/namespaces",
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": OPERATOR_NAMESPACE}},
        )
        api.create(
            "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations",
            webhook_configuration(port),
        )
        operator.start()
        generated = base64.b64encode((operator.tls_dir / "ca.crt").read_bytes()).decode()
        secret = api.get(f"/api/v1/namespaces/{OPERATOR_NAMESPACE}/secrets/{NAME}-tls") or {}
        assert secret["data"]["ca.crt"] == generated  # the CA kept for every replica
        first = api.get(MWC) or {}
        assert [w["clientConfig"].get("caBundle") for w in first["webhooks"]] == [generated] * 2

        operator.stop()
        operator.start()  # a restart reads the same CA: nothing to write
        again = api.get(MWC) or {}
        assert again["metadata"]["resourceVersion"] == first["metadata"]["resourceVersion"]
        assert "caBundle: unchanged" in operator.log_tail(200)
    finally:
        operator.stop()
        plane.stop()
