"""The first closed loop, end to end: a stolen pod token is replayed, and the operator acts.

Every test here runs against the real control plane with its audit and authorization webhooks
pointed at the operator process; the assertions are on what the API server does next.
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path
from typing import Any

import pytest
from harness import Operated

from identity_risk.cli.kubectl_risk import main as kubectl_risk
from identity_risk.testing.controlplane import api_request
from identity_risk.testing.scenario import (
    ATTACKER_IP,
    deploy_workload,
    pod_token,
    read_configmaps,
    running_pod,
    wait_for,
)

pytestmark = pytest.mark.integration

REPORT = Path(__file__).resolve().parents[2] / ".cache" / "e2e-latency.json"


def stolen_token(operated: Operated, mode: str) -> dict[str, Any]:
    """Deploy a workload, use its pod token normally, then from the attacker's address."""
    api = operated.api
    namespace = operated.namespace(mode)
    deploy_workload(api, namespace=namespace, name="checkout", labels=operated.labels(mode))
    pod = running_pod(api, namespace=namespace, app="checkout")
    token = pod_token(api, pod)
    pod_ip = pod["status"]["podIP"]
    for _ in range(3):
        assert read_configmaps(api, namespace=namespace, token=token, source_ip=pod_ip) == 200
    return {"namespace": namespace, "pod": pod, "token": token, "pod_ip": pod_ip}


def first_403_after_replay(operated: Operated, world: dict[str, Any]) -> float:
    """Replay the token from the attacker; seconds until the attacker first gets 403."""
    api, namespace, token = operated.api, world["namespace"], world["token"]
    start = time.monotonic()
    assert read_configmaps(api, namespace=namespace, token=token, source_ip=ATTACKER_IP) == 200

    def denied() -> bool:
        status = read_configmaps(api, namespace=namespace, token=token, source_ip=ATTACKER_IP)
        return status == 403

    wait_for("the replayed token to be denied", denied, timeout=30, every=0.05)
    return time.monotonic() - start


def decision_of(operated: Operated, namespace: str) -> dict[str, Any]:
    def recorded() -> dict[str, Any] | None:
        items = (operated.custom("riskdecisions", namespace) or {}).get("items", [])
        done = [d for d in items if (d.get("status") or {}).get("phase") in ("Enforced", "Audited")]
        return done[0] if done else None

    found: dict[str, Any] = wait_for("a finished RiskDecision", recorded, timeout=30)
    return found


def test_stolen_token_is_revoked_and_the_pod_gets_a_fresh_one(operated: Operated) -> None:
    api = operated.api
    world = stolen_token(operated, "enforce")
    namespace, pod = world["namespace"], world["pod"]
    bystander = running_pod(api, namespace=namespace, app="checkout")  # same pod, before: ok

    first_403_after_replay(operated, world)

    # The credential is dead, from any address, also the pod's own.
    status = read_configmaps(
        api, namespace=namespace, token=world["token"], source_ip=world["pod_ip"]
    )
    assert status == 403
    # The pod was evicted and its Deployment made a new one, whose new token works.
    fresh = running_pod(api, namespace=namespace, app="checkout", exclude=pod["metadata"]["name"])
    new_token = pod_token(api, fresh)
    assert (
        read_configmaps(
            api, namespace=namespace, token=new_token, source_ip=fresh["status"]["podIP"]
        )
        == 200
    )
    decision = decision_of(operated, namespace)
    assert decision["spec"]["band"] == "high"
    assert decision["spec"]["signals"][0]["type"] == "TokenReplay"
    outcomes = {a["type"]: a for a in decision["status"]["actions"]}
    assert outcomes["RevokeToken"]["phase"] == "Succeeded"
    assert outcomes["RevokeToken"]["credentials"]
    assert decision["status"]["chain"]["signature"]
    events = (
        api.get(f"/api/v1/namespaces/{namespace}/events?fieldSelector=reason%3DRiskDecision") or {}
    )
    assert any("TokenReplay" in e["message"] for e in events.get("items", []))
    assert bystander["metadata"]["name"] == pod["metadata"]["name"]


def test_other_identities_keep_working(operated: Operated) -> None:
    api = operated.api
    world = stolen_token(operated, "enforce")
    namespace = world["namespace"]
    other = "ledger"
    deploy_workload(api, namespace=namespace, name=other, labels=operated.labels("enforce"))
    other_pod = running_pod(api, namespace=namespace, app=other)
    other_token = pod_token(api, other_pod)
    other_ip = other_pod["status"]["podIP"]

    first_403_after_replay(operated, world)
    for _ in range(5):
        assert (
            read_configmaps(api, namespace=namespace, token=other_token, source_ip=other_ip) == 200
        )


def test_audit_mode_records_the_decision_and_changes_nothing(operated: Operated) -> None:
    api = operated.api
    world = stolen_token(operated, "audit")
    namespace, token = world["namespace"], world["token"]
    assert read_configmaps(api, namespace=namespace, token=token, source_ip=ATTACKER_IP) == 200
    decision = decision_of(operated, namespace)
    assert decision["spec"]["mode"] == "Audit"
    assert decision["status"]["phase"] == "Audited"
    assert {a["type"]: a["phase"] for a in decision["status"]["actions"]}["RevokeToken"] == (
        "Skipped"
    )
    # Nothing changed: the attacker's token still works, the pod was not evicted.
    assert read_configmaps(api, namespace=namespace, token=token, source_ip=ATTACKER_IP) == 200
    assert (
        running_pod(api, namespace=namespace, app="checkout")["metadata"]["name"]
        == (world["pod"]["metadata"]["name"])
    )


def test_replay_to_first_403_latency(operated: Operated) -> None:
    """20 independent stolen-token replays; reports p50/p99 of replay → first 403."""
    samples = []
    for _ in range(20):
        world = stolen_token(operated, "enforce")
        samples.append(first_403_after_replay(operated, world))
    samples.sort()
    p50 = statistics.median(samples)
    p99 = samples[min(len(samples) - 1, round(0.99 * (len(samples) - 1)))]
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORT.write_text(
        json.dumps({"samples": samples, "p50": p50, "p99": p99, "n": len(samples)}, indent=2)
    )
    print(f"\nreplay -> first 403 over {len(samples)} runs: p50 {p50:.2f}s, p99 {p99:.2f}s")
    assert len(samples) == 20


@pytest.mark.parametrize("path", ["/audit", "/authorize"])
def test_callers_without_the_apiserver_credential_are_refused(
    operated: Operated, path: str
) -> None:
    import ssl

    ctx = ssl.create_default_context(cafile=str(operated.pki.ca.cert))
    # the cluster admin's certificate is signed by the same CA, but is not the apiserver's
    ctx.load_cert_chain(str(operated.pki.admin.cert), str(operated.pki.admin.key))
    status, _ = api_request(
        f"https://127.0.0.1:{operated.operator.port}", ctx, "POST", path, {"kind": "EventList"}
    )
    assert status == 401
    anonymous = ssl.create_default_context(cafile=str(operated.pki.ca.cert))
    status, _ = api_request(
        f"https://127.0.0.1:{operated.operator.port}",
        anonymous,
        "POST",
        path,
        {"kind": "EventList"},
    )
    assert status == 401


def test_a_forged_audit_batch_changes_no_score(operated: Operated) -> None:
    import ssl

    namespace = operated.namespace("enforce")
    forged = {
        "apiVersion": "audit.k8s.io/v1",
        "kind": "EventList",
        "items": [
            {
                "apiVersion": "audit.k8s.io/v1",
                "kind": "Event",
                "level": "Metadata",
                "auditID": f"forged-{i}",
                "stage": "ResponseComplete",
                "requestURI": f"/api/v1/namespaces/{namespace}/secrets",
                "verb": "list",
                "user": {"username": f"system:serviceaccount:{namespace}:victim"},
                "sourceIPs": ["203.0.113.9"],
                "userAgent": "curl/8.0",
                "objectRef": {"resource": "secrets", "namespace": namespace},
                "responseStatus": {"code": 200},
                "requestReceivedTimestamp": "2026-12-04T12:00:00.000000Z",
                "stageTimestamp": "2026-12-04T12:00:00.000000Z",
            }
            for i in range(50)
        ],
    }
    ctx = ssl.create_default_context(cafile=str(operated.pki.ca.cert))
    ctx.load_cert_chain(str(operated.pki.admin.cert), str(operated.pki.admin.key))
    status, _ = api_request(
        f"https://127.0.0.1:{operated.operator.port}", ctx, "POST", "/audit", forged
    )
    assert status == 401
    time.sleep(3)
    assert operated.custom("workloadidentityrisks", namespace, "victim") is None


def test_kubectl_risk_verify_passes_and_names_an_altered_entry(
    operated: Operated, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stolen = stolen_token(operated, "enforce")
    first_403_after_replay(operated, stolen)
    decision_of(operated, stolen["namespace"])
    kubeconfig = f"--kubeconfig={operated.state.kubeconfig}"
    log = operated.operator.decision_log

    # From the cluster's RiskDecisions, and from the operator's log file.
    assert kubectl_risk(["verify", kubeconfig]) == 0
    assert "chain intact" in capsys.readouterr().out
    assert kubectl_risk(["verify", "--log", str(log), kubeconfig]) == 0
    assert "chain intact" in capsys.readouterr().out

    lines = log.read_text().splitlines()
    victim = len(lines) // 2
    entry = json.loads(lines[victim])
    entry["payload"]["spec"]["score"] = 1.0
    lines[victim] = json.dumps(entry)
    altered = tmp_path / "altered.jsonl"
    altered.write_text("\n".join(lines) + "\n")
    assert kubectl_risk(["verify", "--log", str(altered), kubeconfig]) == 1
    out = capsys.readouterr().out
    assert f"BROKEN at link {victim} ({entry['payload']['decision']})" in out


def test_kubectl_risk_explain_accounts_for_the_score(
    operated: Operated, capsys: pytest.CaptureFixture[str]
) -> None:
    stolen = stolen_token(operated, "enforce")
    first_403_after_replay(operated, stolen)
    namespace = stolen["namespace"]
    wait_for(
        "the identity's risk record",
        lambda: (operated.custom("workloadidentityrisks", namespace, "checkout") or {}).get(
            "status"
        ),
    )
    code = kubectl_risk(
        ["explain", "-n", namespace, "checkout", f"--kubeconfig={operated.state.kubeconfig}"]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert "TokenReplay" in out
    assert ATTACKER_IP in out
