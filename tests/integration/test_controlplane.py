"""The test control plane is a real cluster wired to the operator's webhooks as users run it."""

from __future__ import annotations

import ipaddress
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from identity_risk.testing.cluster import (
    Cluster,
    bind_cluster_role,
    eventually,
    make_pod,
    make_service_account,
    request_token,
)
from identity_risk.testing.controlplane import (
    DEFAULT_BIN_DIR,
    ClusterState,
    ControlPlane,
    ControlPlaneError,
)
from identity_risk.testing.receivers import AuditEvent, Verdict

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]

CRDS = sorted((ROOT / "crds").glob("*.yaml"))
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))
INVALID = sorted((ROOT / "tests" / "data" / "invalid").glob("*.yaml"))
EXTRA = "authentication.kubernetes.io/"
WHOAMI = "/apis/authentication.k8s.io/v1/selfsubjectreviews"
WHOAMI_BODY = {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}


def expected_message(path: Path) -> str:
    for line in path.read_text().splitlines():
        if line.startswith("# expect:"):
            return line.removeprefix("# expect:").strip()
    raise AssertionError(f"{path} has no '# expect:' line")


@pytest.fixture(scope="session")
def crds_installed(cluster: Cluster) -> Cluster:
    for crd in CRDS:
        cluster.kubectl("apply", "--server-side", "-f", str(crd))
    if CRDS:
        cluster.kubectl("wait", "--for=condition=Established", "--timeout=60s", "crd", "--all")
    for prerequisite in (p for p in EXAMPLES if p.name.startswith("00-")):
        cluster.kubectl("apply", "-f", str(prerequisite))
    return cluster


# The API -------------------------------------------------------------------------------------


@pytest.mark.parametrize("crd", CRDS, ids=[p.stem for p in CRDS])
def test_crd_applies_and_is_established(cluster: Cluster, crd: Path) -> None:
    cluster.kubectl("apply", "--server-side", "-f", str(crd))
    name = json.loads(
        cluster.kubectl("create", "--dry-run=client", "-o=json", "-f", str(crd)).stdout
    )
    cluster.kubectl(
        "wait", "--for=condition=Established", "--timeout=60s", f"crd/{name['metadata']['name']}"
    )


@pytest.mark.parametrize("example", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_applies(crds_installed: Cluster, example: Path) -> None:
    crds_installed.kubectl("apply", "-f", str(example))


@pytest.mark.parametrize("manifest", INVALID, ids=[p.stem for p in INVALID])
def test_invalid_manifest_is_rejected_naming_the_field(
    crds_installed: Cluster, manifest: Path
) -> None:
    result = crds_installed.kubectl("create", "--dry-run=server", "-f", str(manifest), check=False)
    assert result.returncode != 0, f"{manifest.name} was accepted"
    assert expected_message(manifest) in result.stderr


# Workloads -----------------------------------------------------------------------------------


def test_deployment_gets_running_pods_with_loopback_ips(cluster: Cluster, namespace: str) -> None:
    cluster.create(
        f"/apis/apps/v1/namespaces/{namespace}/deployments",
        {
            "metadata": {"name": "web"},
            "spec": {
                "replicas": 3,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "web", "image": "registry.invalid/web:1"}]},
                },
            },
        },
    )

    def running_pods() -> list[dict[str, Any]] | None:
        _, pods = cluster.api("GET", f"/api/v1/namespaces/{namespace}/pods?labelSelector=app%3Dweb")
        items = [
            p
            for p in pods.get("items", [])
            if p["status"].get("phase") == "Running" and p["status"].get("podIP")
        ]
        return items if len(items) == 3 else None

    pods = eventually(running_pods, timeout=60, what="3 Running pods")
    ips = [ipaddress.ip_address(p["status"]["podIP"]) for p in pods]
    assert all(ip.is_loopback for ip in ips), ips
    assert len(set(ips)) == 3
    assert all(p["spec"].get("nodeName", "").startswith("kwok-node-") for p in pods)


# Tokens and the audit webhook ----------------------------------------------------------------


def test_pod_bound_token_authenticates_until_the_pod_is_deleted(
    cluster: Cluster, namespace: str
) -> None:
    make_service_account(cluster, namespace, "app")
    pod = make_pod(cluster, namespace, "app-0", service_account="app")
    token = request_token(cluster, namespace, "app", pod=pod)

    status, review = cluster.api("POST", WHOAMI, WHOAMI_BODY, token=token)
    assert status == 201
    user = review["status"]["userInfo"]
    assert user["username"] == f"system:serviceaccount:{namespace}:app"
    assert user["extra"][EXTRA + "pod-name"] == ["app-0"]

    deleted = time.monotonic()
    cluster.api("DELETE", f"/api/v1/namespaces/{namespace}/pods/app-0")
    eventually(
        lambda: cluster.api("POST", WHOAMI, WHOAMI_BODY, token=token)[0] == 401,
        timeout=60,
        what="the token to stop authenticating",
    )
    delay = time.monotonic() - deleted
    print(f"\n[measure] pod-bound token rejected {delay:.1f}s after the pod was deleted")
    assert delay < 30


def test_audit_webhook_receives_the_pods_request_with_its_identity(
    cluster: Cluster, namespace: str
) -> None:
    make_service_account(cluster, namespace, "app")
    pod = make_pod(cluster, namespace, "app-0", service_account="app")
    token = request_token(cluster, namespace, "app", pod=pod)
    pod_ip = pod["status"]["podIP"]
    username = f"system:serviceaccount:{namespace}:app"

    # Acting as the pod: the request leaves from the pod's own (loopback) address.
    status, _ = cluster.api("POST", WHOAMI, WHOAMI_BODY, token=token, source_ip=pod_ip)
    assert status == 201

    def from_the_pod(event: AuditEvent) -> bool:
        return (
            event.get("user", {}).get("username") == username
            and event.get("requestURI") == WHOAMI
            and event.get("stage") == "ResponseComplete"
        )

    event = cluster.receiver.wait_for_event(from_the_pod, timeout=30)
    extra = event["user"]["extra"]
    assert extra[EXTRA + "pod-name"] == ["app-0"]
    assert extra[EXTRA + "pod-uid"] == [pod["metadata"]["uid"]]
    assert extra[EXTRA + "credential-id"][0].startswith("JTI=")
    assert event["sourceIPs"][0] == pod_ip


# The authorization webhook -------------------------------------------------------------------


def test_authorization_webhook_denies_one_identity_before_rbac(
    cluster: Cluster, namespace: str
) -> None:
    tokens = {}
    for name in ("suspect", "bystander"):
        make_service_account(cluster, namespace, name)
        bind_cluster_role(cluster, namespace, name, role="view")
        tokens[name] = request_token(cluster, namespace, name)
    pods = f"/api/v1/namespaces/{namespace}/pods"
    assert cluster.api("GET", pods, token=tokens["suspect"])[0] == 200  # RBAC allows it

    suspect = f"system:serviceaccount:{namespace}:suspect"

    def deny_suspect(review: dict[str, Any]) -> Verdict:
        if review["spec"]["user"] == suspect:
            return Verdict(denied=True, reason="identity-risk: test denies this identity")
        return Verdict()

    cluster.receiver.authorizer = deny_suspect
    status, body = cluster.api("GET", pods, token=tokens["suspect"])
    assert status == 403
    assert "identity-risk: test denies this identity" in body["message"]
    assert cluster.api("GET", pods, token=tokens["bystander"])[0] == 200


def test_authorization_webhook_is_not_asked_about_people(cluster: Cluster) -> None:
    cluster.receiver.reviews.clear()
    assert cluster.api("GET", "/api/v1/namespaces")[0] == 200  # the admin, a certificate user
    assert not any(r["spec"].get("user") == "identity-risk-admin" for r in cluster.receiver.reviews)


def test_failing_authorization_webhook_falls_through_to_rbac(
    cluster: Cluster, namespace: str
) -> None:
    make_service_account(cluster, namespace, "app")
    bind_cluster_role(cluster, namespace, "app", role="view")
    token = request_token(cluster, namespace, "app")

    def broken(review: dict[str, Any]) -> Verdict:
        raise RuntimeError("receiver failure")

    cluster.receiver.authorizer = broken
    assert cluster.api("GET", f"/api/v1/namespaces/{namespace}/pods", token=token)[0] == 200


# hack/cluster --------------------------------------------------------------------------------


def _pid_alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


@pytest.mark.usefixtures("controlplane_binaries")
def test_hack_cluster_up_then_down_leaves_nothing_behind(tmp_path: Path) -> None:
    """`up` with no operator listening works; `down` from another process stops every PID."""
    env = {
        **os.environ,
        "IDENTITY_RISK_CLUSTER_STATE": str(tmp_path / "cluster.json"),
        "PYTHON": sys.executable,
    }
    started = time.monotonic()
    up = subprocess.run(
        [str(ROOT / "hack" / "cluster"), "up"], env=env, capture_output=True, text=True, timeout=180
    )
    elapsed = time.monotonic() - started
    assert up.returncode == 0, up.stderr
    print(f"\n[measure] hack/cluster up to all-Ready: {elapsed:.1f}s\n{up.stdout}")
    assert "export KUBECONFIG=" in up.stdout

    pointer = json.loads((tmp_path / "cluster.json").read_text())
    state = ClusterState.load(Path(pointer["state"]))
    assert set(state.pids) == {
        "etcd",
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
        "kwok",
    }
    assert all(_pid_alive(pid) for pid in state.pids.values())
    nodes = subprocess.run(
        [str(DEFAULT_BIN_DIR / "kubectl"), "get", "nodes", "-o", "name"],
        env={**env, "KUBECONFIG": state.kubeconfig},
        capture_output=True,
        text=True,
        check=True,
    )
    assert nodes.stdout.split() == [f"node/{n}" for n in state.nodes]

    down = subprocess.run(
        [str(ROOT / "hack" / "cluster"), "down"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert down.returncode == 0, down.stderr
    assert not [name for name, pid in state.pids.items() if _pid_alive(pid)]
    assert not Path(state.root).exists()
    assert not (tmp_path / "cluster.json").exists()


@pytest.mark.usefixtures("controlplane_binaries")
def test_a_component_that_fails_to_start_is_reported_with_its_log() -> None:
    plane = ControlPlane(extra_apiserver_args=["--no-such-flag=1"])
    with pytest.raises(ControlPlaneError, match="kube-apiserver exited") as failure:
        plane.start(timeout=30)
    assert "no-such-flag" in str(failure.value)
    assert plane.state is not None
    assert not [name for name, pid in plane.state.pids.items() if _pid_alive(pid)]
    assert not Path(plane.root).exists()
