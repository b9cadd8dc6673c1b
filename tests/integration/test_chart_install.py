"""``helm install`` of charts/identity-risk into the real test control plane.

A control plane of its own (the chart's MutatingWebhookConfiguration would otherwise slow every pod
creation of the shared one: there is no kube-proxy, so its Service is unreachable). Pods are kwok
fakes, so "the Deployment is available" proves the manifests are accepted and schedulable, not
that the image runs; the operator itself runs as the chart's ServiceAccount in the end-to-end
suite (``make e2e-chart-rbac``).
"""

from __future__ import annotations

import base64
import http.client
import json
import ssl
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import require_binaries

from identity_risk.testing.controlplane import (
    DEFAULT_BIN_DIR,
    ClusterState,
    ControlPlane,
    free_port,
)
from identity_risk.testing.scenario import Api, wait_for

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "identity-risk"
NAMESPACE = "identity-risk"
OPERATOR = f"system:serviceaccount:{NAMESPACE}:identity-risk-operator"


@dataclass
class Installed:
    state: ClusterState
    api: Api

    def run(self, tool: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [str(DEFAULT_BIN_DIR / tool), f"--kubeconfig={self.state.kubeconfig}", *args],
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"{tool} {' '.join(args)}:\n{result.stdout}{result.stderr}")
        return result

    def can(self, verb: str, resource: str, *, group: str = "", namespace: str = "") -> bool:
        status, review = self.api.call(
            "POST",
            "/apis/authorization.k8s.io/v1/subjectaccessreviews",
            {
                "apiVersion": "authorization.k8s.io/v1",
                "kind": "SubjectAccessReview",
                "spec": {
                    "user": OPERATOR,
                    "groups": ["system:serviceaccounts", f"system:serviceaccounts:{NAMESPACE}"],
                    "resourceAttributes": {
                        "verb": verb,
                        "group": group,
                        "resource": resource.partition("/")[0],
                        "subresource": resource.partition("/")[2],
                        "namespace": namespace,
                    },
                },
            },
        )
        assert status == 201, review
        allowed: bool = review["status"].get("allowed", False)
        return allowed


@pytest.fixture(scope="module")
def installed() -> Iterator[Installed]:
    require_binaries()
    if not (DEFAULT_BIN_DIR / "helm").exists():
        pytest.skip("helm missing; run hack/controlplane/build.sh")
    plane = ControlPlane(die_with_parent=True)
    try:
        state = plane.start()
        api = Api(url=state.apiserver_url, ca_file=plane.pki.ca.cert, admin=plane.pki.admin)
        cluster = Installed(state=state, api=api)
        cluster.run(
            "helm",
            "install",
            "identity-risk",
            str(CHART),
            f"--namespace={NAMESPACE}",
            "--create-namespace",
            "--wait",
            "--timeout=120s",
        )
        yield cluster
    finally:
        plane.stop()


def test_helm_install_with_defaults_succeeds(installed: Installed) -> None:
    status = installed.run("helm", "status", "identity-risk", f"--namespace={NAMESPACE}").stdout
    assert "STATUS: deployed" in status
    deployment = installed.api.get(
        f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments/identity-risk-operator"
    )
    assert deployment is not None
    assert deployment["status"].get("availableReplicas") == 2  # leader + follower
    for crd in (ROOT / "crds").glob("*.yaml"):
        name = crd.name.removesuffix(".yaml")
        assert installed.api.get(f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}")
    hook = installed.api.get(
        "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/identity-risk-operator"
    )
    assert hook is not None


@pytest.mark.parametrize(
    "values", ["kind-values.yaml", "hardened-values.yaml", "minimal-values.yaml"]
)
def test_values_combination_is_accepted_by_the_apiserver(installed: Installed, values: str) -> None:
    # cert-manager-values.yaml needs cert-manager's and the Prometheus Operator's CRDs: template
    # and lint cover it (tests/chart).
    result = installed.run(
        "helm",
        "upgrade",
        "identity-risk",
        str(CHART),
        f"--namespace={NAMESPACE}",
        "-f",
        str(CHART / "ci" / values),
        "--dry-run=server",
    )
    assert "STATUS: pending-upgrade" in result.stdout


# What the operator's ServiceAccount may and may not do, asked of the apiserver's RBAC.
MAY = [
    ("list", "secrets", "", ""),
    ("watch", "clusterrolebindings", "rbac.authorization.k8s.io", ""),
    ("create", "riskdecisions", "identityrisk.dev", "shop"),
    ("patch", "riskdecisions/status", "identityrisk.dev", "shop"),
    ("create", "pods/eviction", "", "shop"),
    ("create", "events", "", "shop"),
    ("create", "secrets", "", NAMESPACE),
    ("patch", "pods", "", "shop"),  # QuarantinePods labels
    ("create", "networkpolicies", "networking.k8s.io", "shop"),
    ("delete", "serviceaccounts", "", "shop"),  # RecreateServiceAccount
    ("patch", "secrets", "", "shop"),  # RotateSecrets
    ("update", "leases", "coordination.k8s.io", NAMESPACE),  # --leader-elect
]
MAY_NOT = [
    # Git owns these: the operator never writes them, so Argo CD never fights it.
    *[
        (verb, resource, group, "shop")
        for verb in ("update", "patch", "delete")
        for resource, group in (
            ("deployments", "apps"),
            ("statefulsets", "apps"),
            ("roles", "rbac.authorization.k8s.io"),
            ("rolebindings", "rbac.authorization.k8s.io"),
            ("identityriskpolicies", "identityrisk.dev"),
        )
    ],
    ("update", "serviceaccounts", "", "shop"),
    ("patch", "serviceaccounts", "", "shop"),
    ("update", "riskdecisions", "identityrisk.dev", "shop"),  # the spec is immutable anyway
    ("delete", "pods", "", "shop"),  # pods leave through the Eviction API only (PDBs honoured)
    ("create", "secrets", "", "shop"),  # only its own, in its own namespace
    ("delete", "secrets", "", "shop"),
    ("update", "networkpolicies", "networking.k8s.io", "shop"),  # only its own: create/delete
    ("create", "serviceaccounts/token", "", "shop"),
    ("patch", "identityriskpolicies/status", "identityrisk.dev", ""),
    ("create", "riskapprovals", "identityrisk.dev", "shop"),  # people approve, not the operator
    ("update", "leases", "coordination.k8s.io", "kube-system"),  # only its own Lease namespace
    ("patch", "mutatingwebhookconfigurations", "admissionregistration.k8s.io", ""),  # any name
]


@pytest.mark.parametrize(("verb", "resource", "group", "namespace"), MAY, ids=str)
def test_the_chart_grants(
    installed: Installed, verb: str, resource: str, group: str, namespace: str
) -> None:
    assert installed.can(verb, resource, group=group, namespace=namespace)


@pytest.mark.parametrize(("verb", "resource", "group", "namespace"), MAY_NOT, ids=str)
def test_the_chart_does_not_grant(
    installed: Installed, verb: str, resource: str, group: str, namespace: str
) -> None:
    assert not installed.can(verb, resource, group=group, namespace=namespace)


def _policy_diff(installed: Installed, path: Path, *apply: str) -> subprocess.CompletedProcess[str]:
    installed.run("kubectl", "apply", *apply, "-f", str(path))
    return installed.run("kubectl", "diff", "-f", str(path), check=False)


# How Argo CD applies: client-side (its default) or with the ServerSideApply sync option.
@pytest.mark.parametrize(
    "apply", [(), ("--server-side", "--force-conflicts")], ids=["client-side", "server-side"]
)
@pytest.mark.parametrize("example", ["policy-audit.yaml", "policy-enforce.yaml"])
def test_a_policy_from_git_shows_no_drift_after_apply(
    installed: Installed, example: str, apply: tuple[str, ...]
) -> None:
    path = ROOT / "examples" / example
    diff = _policy_diff(installed, path, *apply, "--field-manager=argocd-controller")
    assert diff.returncode == 0, f"perpetual diff:\n{diff.stdout}"
    # The API server did default fields Git does not write; a diff from Git ignores them.
    name = next(
        line.split(":", 1)[1].strip()
        for line in path.read_text().splitlines()
        if line.startswith("  name:")
    )
    live: dict[str, Any] = (
        installed.api.get(f"/apis/identityrisk.dev/v1alpha1/identityriskpolicies/{name}") or {}
    )
    assert "priority" in live["spec"]


def test_the_operator_generates_its_webhook_certificate_as_the_charts_service_account(
    installed: Installed, tmp_path: Path
) -> None:
    status, body = installed.api.call(
        "POST",
        f"/api/v1/namespaces/{NAMESPACE}/serviceaccounts/identity-risk-operator/token",
        {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {}},
    )
    assert status == 201, body
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [
                    {
                        "name": "c",
                        "cluster": {
                            "server": installed.state.apiserver_url,
                            "certificate-authority": str(installed.api.ca_file),
                        },
                    }
                ],
                "users": [{"name": "sa", "user": {"token": body["status"]["token"]}}],
                "contexts": [{"name": "c", "context": {"cluster": "c", "user": "sa"}}],
                "current-context": "c",
            }
        )
    )
    port = free_port()
    log = (tmp_path / "operator.log").open("wb")
    operator = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "identity_risk.cli.operator_main",
            "run",
            f"--kubeconfig={kubeconfig}",
            f"--namespace={NAMESPACE}",
            f"--listen=127.0.0.1:{port}",
            f"--tls-dir={tmp_path / 'tls'}",
            f"--decision-log={tmp_path / 'decisions.jsonl'}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:

        def secret() -> dict[str, Any] | None:
            assert operator.poll() is None, (tmp_path / "operator.log").read_text()
            return installed.api.get(
                f"/api/v1/namespaces/{NAMESPACE}/secrets/identity-risk-operator-tls"
            )

        stored = wait_for("the generated webhook Secret", secret, timeout=60)
        ca = tmp_path / "ca.crt"
        ca.write_bytes(base64.b64decode(stored["data"]["ca.crt"]))

        def ready() -> bool:
            assert operator.poll() is None, (tmp_path / "operator.log").read_text()
            # Verified against the generated CA, for the NodePort's address.
            context = ssl.create_default_context(cafile=str(ca))
            conn = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=2)
            try:
                conn.request("GET", "/healthz")
                return conn.getresponse().status == 200
            except ConnectionRefusedError:
                return False
            finally:
                conn.close()

        wait_for("the operator to serve with the generated certificate", ready, timeout=60)
        assert "generated the webhook CA" in (tmp_path / "operator.log").read_text()
    finally:
        operator.terminate()
        operator.wait(timeout=30)
        log.close()
