"""One real control plane per test session, with a webhook receiver the apiserver is wired to.

The apiserver's audit and authorization webhooks point at a ``WebhookReceiver`` started on a known
port before the apiserver; tests swap its ``authorizer`` and read its audit events. Operator
end-to-end tests can build the same way with the operator's own server in the receiver's place
(``ControlPlane(webhook_base_url=..., webhook_ca_file=...)``).

The binaries come from ``hack/controlplane/build.sh``. Without them these tests are skipped, unless
``IDENTITY_RISK_REQUIRE_CONTROLPLANE=1`` (CI), where that is a failure.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

from identity_risk.testing.cluster import Cluster
from identity_risk.testing.controlplane import BINARIES, DEFAULT_BIN_DIR, ControlPlane, free_port
from identity_risk.testing.receivers import WebhookReceiver, no_opinion


def require_binaries() -> None:
    missing = [b for b in (*BINARIES, "kubectl") if not (DEFAULT_BIN_DIR / b).exists()]
    if missing:
        msg = (
            f"control-plane binaries missing ({', '.join(missing)}); run hack/controlplane/build.sh"
        )
        if os.environ.get("IDENTITY_RISK_REQUIRE_CONTROLPLANE"):
            pytest.fail(msg)
        pytest.skip(msg)


@pytest.fixture
def controlplane_binaries() -> None:
    require_binaries()


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    require_binaries()
    port = free_port()
    plane = ControlPlane(webhook_base_url=f"https://127.0.0.1:{port}", die_with_parent=True)
    receiver = WebhookReceiver(port=port, tls=plane.pki.server_context()).start()
    try:
        state = plane.start()
        yield Cluster(state=state, pki=plane.pki, receiver=receiver)
    finally:
        plane.stop()
        receiver.stop()


@pytest.fixture(autouse=True)
def _reset_authorizer(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if "cluster" in request.fixturenames:
        request.getfixturevalue("cluster").receiver.authorizer = no_opinion


@pytest.fixture
def namespace(cluster: Cluster) -> Iterator[str]:
    name = f"t-{uuid.uuid4().hex[:8]}"
    cluster.create("/api/v1/namespaces", {"metadata": {"name": name}})
    yield name
    cluster.api("DELETE", f"/api/v1/namespaces/{name}")
