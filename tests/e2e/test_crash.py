"""Crash safety: a decision interrupted between two actions is finished once, not repeated."""

from __future__ import annotations

import signal
import time

import pytest
from harness import Operated
from test_stolen_token import decision_of, stolen_token

from identity_risk.record.log import read_links
from identity_risk.testing.scenario import (
    ATTACKER_IP,
    pod_token,
    read_configmaps,
    running_pod,
    wait_for,
)

pytestmark = pytest.mark.integration


def test_sigkill_between_actions_resumes_without_acting_twice(operated: Operated) -> None:
    api, operator = operated.api, operated.operator
    operator.stop()
    operator.start(env={"IDENTITY_RISK_FAILPOINT": "kill-after:RevokeToken"})
    world = stolen_token(operated, "crash")
    namespace, first_pod = world["namespace"], world["pod"]["metadata"]["name"]

    assert read_configmaps(api, namespace=namespace, token=world["token"], source_ip=ATTACKER_IP)
    assert operator.wait_exit(timeout=30) == -signal.SIGKILL

    # Killed right after RevokeToken was recorded, before DenyAPIAccess ran.
    items = (operated.custom("riskdecisions", namespace) or {}).get("items", [])
    assert len(items) == 1
    interrupted = items[0]
    assert interrupted["status"]["phase"] == "Executing"
    assert [a["type"] for a in interrupted["status"]["actions"]] == ["RevokeToken"]
    replacement = running_pod(api, namespace=namespace, app="checkout", exclude=first_pod)
    fresh_token = pod_token(api, replacement)
    fresh_ip = replacement["status"]["podIP"]

    operator.start()
    decision = decision_of(operated, namespace)
    assert decision["metadata"]["name"] == interrupted["metadata"]["name"]
    assert decision["status"]["phase"] == "Enforced"
    assert [(a["type"], a["phase"]) for a in decision["status"]["actions"]] == [
        ("RevokeToken", "Succeeded"),
        ("DenyAPIAccess", "Succeeded"),
    ]
    # DenyAPIAccess took effect: even the fresh pod's new token is refused ...
    wait_for(
        "the identity to be denied",
        lambda: (
            read_configmaps(api, namespace=namespace, token=fresh_token, source_ip=fresh_ip) == 403
        ),
        timeout=15,
    )
    # ... and RevokeToken was not repeated: the replacement pod was not evicted again.
    time.sleep(2)
    assert (
        running_pod(api, namespace=namespace, app="checkout")["metadata"]["name"]
        == (replacement["metadata"]["name"])
    )
    key = f"{namespace}/{decision['metadata']['name']}"
    assert [link.payload["decision"] for link in read_links(operator.decision_log)].count(key) == 1
    operator.stop()
    operator.start()  # leave a healthy operator for the rest of the session
