"""Two operator replicas on the real control plane elect one leader through a Lease.

Both run ``identity-risk run --leader-elect`` on ports of their own: exactly one holds the Lease
and reads ``/audit`` batches (2xx), the other answers 503 (the apiserver's batch webhook retries);
both answer ``/authorize``. SIGKILL the leader and the other takes the Lease once it expires.
"""

from __future__ import annotations

import http.client
import json
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import require_binaries

from identity_risk.testing.controlplane import ControlPlane, Pki, free_port
from identity_risk.testing.operator import OPERATOR_NAMESPACE, OperatorProcess
from identity_risk.testing.scenario import Api, install_crds, wait_for

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
LEASE = (
    f"/apis/coordination.k8s.io/v1/namespaces/{OPERATOR_NAMESPACE}/leases/identity-risk-operator"
)
EVENT_LIST = b'{"kind":"EventList","apiVersion":"audit.k8s.io/v1","items":[]}'
SAR = {
    "apiVersion": "authorization.k8s.io/v1",
    "kind": "SubjectAccessReview",
    "spec": {"user": "system:serviceaccount:shop:web", "resourceAttributes": {"verb": "get"}},
}


def post(pki: Pki, port: int, path: str, body: bytes) -> tuple[int, str]:
    context = ssl.create_default_context(cafile=str(pki.ca.cert))
    context.load_cert_chain(str(pki.webhook_client.cert), str(pki.webhook_client.key))
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=5)
    try:
        conn.request("POST", path, body=body, headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        response.read()
        return response.status, response.getheader("Retry-After") or ""
    finally:
        conn.close()


@pytest.fixture(scope="module")
def replicas(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Api, dict[str, OperatorProcess]]]:
    require_binaries()
    root = tmp_path_factory.mktemp("leader")
    plane = ControlPlane(root=root / "plane", die_with_parent=True)
    state = plane.start()
    operators: dict[str, OperatorProcess] = {}
    try:
        api = Api(url=state.apiserver_url, ca_file=plane.pki.ca.cert, admin=plane.pki.admin)
        install_crds(api, ROOT / "crds")
        api.create(
            "/api/v1/namespaces",
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": OPERATOR_NAMESPACE}},
        )
        for name in ("replica-a", "replica-b"):
            workdir = root / name
            workdir.mkdir()
            operators[name] = OperatorProcess(
                state=state,
                pki=plane.pki,
                port=free_port(),
                workdir=workdir,
                extra_args=["--leader-elect"],
                env={"POD_NAME": name},
            )
            operators[name].start()
        yield api, operators
    finally:
        for operator in operators.values():
            operator.stop()
        plane.stop()


def holder(api: Api) -> str:
    lease = api.get(LEASE) or {}
    return str((lease.get("spec") or {}).get("holderIdentity") or "")


def test_one_replica_leads_and_the_other_takes_over_when_it_dies(
    replicas: tuple[Api, dict[str, OperatorProcess]],
) -> None:
    api, operators = replicas
    wait_for("a replica to hold the Lease", lambda: holder(api) in operators, timeout=20)
    leader_name = holder(api)
    (follower_name,) = set(operators) - {leader_name}
    leader, follower = operators[leader_name], operators[follower_name]
    pki = leader.pki

    # The leader's take-over runs on its executor thread; a batch may race it by a moment.
    wait_for(
        "the leader to read batches",
        lambda: post(pki, leader.port, "/audit", EVENT_LIST)[0] == 200,
        timeout=10,
    )
    assert post(pki, follower.port, "/audit", EVENT_LIST) == (503, "5")
    for operator in (leader, follower):  # every replica answers authorization reviews
        assert post(pki, operator.port, "/authorize", json.dumps(SAR).encode())[0] == 200
    time.sleep(6)  # a renew period later, still the same leader
    assert holder(api) == leader_name

    assert leader.proc is not None
    leader.proc.kill()  # SIGKILL: no release of the Lease, it has to expire
    leader.proc.wait()
    killed = time.monotonic()
    wait_for("the follower to take the Lease", lambda: holder(api) == follower_name, timeout=25)
    assert time.monotonic() - killed <= 22
    wait_for(
        "the new leader to read batches",
        lambda: post(pki, follower.port, "/audit", EVENT_LIST)[0] == 200,
        timeout=10,
    )
    lease = api.get(LEASE) or {}
    assert lease["spec"]["leaseTransitions"] >= 1
    assert "leading" in follower.log_tail(200)
