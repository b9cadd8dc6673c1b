"""RequireApproval on the real control plane: the decision waits, an approver answers.

A stolen-token replay puts the identity in a band whose actions are [RequireApproval,
DenyAPIAccess]. Nothing is enforced until an allowed approver answers; who answered is what the
API server authenticated (impersonated users here), never what the request typed.
"""

from __future__ import annotations

import ssl
import subprocess
import sys
import time
from typing import Any

import pytest
from harness import MODE_LABEL, Operated

from identity_risk.enforce.approval import APPROVED_BY
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

CRD = "/apis/identityrisk.dev/v1alpha1"
APPROVERS_GROUP = "e2e-security-oncall"


def approval_policy(name: str, *, label: str, timeout: str, on_timeout: str) -> dict[str, Any]:
    return {
        "apiVersion": "identityrisk.dev/v1alpha1",
        "kind": "IdentityRiskPolicy",
        "metadata": {"name": name},
        "spec": {
            "mode": "Enforce",
            "selector": {"namespaceSelector": {"matchLabels": {MODE_LABEL: label}}},
            "safeguards": {"maxActionsPerMinute": 1000, "circuitBreaker": {"maxIdentities": 100}},
            "approvers": {"users": ["alice"], "groups": [APPROVERS_GROUP]},
            "bands": [
                {"name": "low", "minScore": 20, "actions": [{"type": "Notify"}]},
                {
                    "name": "high",
                    "minScore": 60,
                    "minConfidence": "High",
                    "actions": [
                        {"type": "RequireApproval", "timeout": timeout, "onTimeout": on_timeout},
                        {"type": "DenyAPIAccess"},
                    ],
                },
            ],
        },
    }


@pytest.fixture(scope="module")
def approvals(operated: Operated) -> Operated:
    """Two approval policies, and RBAC letting alice, mallory and the on-call group answer."""
    api = operated.api
    api.create(
        f"{CRD}/identityriskpolicies",
        approval_policy("e2e-approval", label="approval", timeout="1h", on_timeout="Deny"),
    )
    api.create(
        f"{CRD}/identityriskpolicies",
        approval_policy(
            "e2e-approval-timeout", label="approval-to", timeout="4s", on_timeout="Deny"
        ),
    )
    rbac = "/apis/rbac.authorization.k8s.io/v1"
    api.create(
        f"{rbac}/clusterroles",
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": "e2e-risk-approver"},
            "rules": [
                {
                    "apiGroups": ["identityrisk.dev"],
                    "resources": ["riskapprovals", "riskdecisions"],
                    "verbs": ["create", "get", "list"],
                }
            ],
        },
    )
    api.create(
        f"{rbac}/clusterrolebindings",
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": "e2e-risk-approver"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "e2e-risk-approver",
            },
            "subjects": [
                {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "alice"},
                {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "mallory"},
                {"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": APPROVERS_GROUP},
            ],
        },
    )
    escalate = approval_policy(
        "e2e-approval-escalate", label="approval-esc", timeout="4s", on_timeout="Escalate"
    )
    escalate["spec"]["bands"][1]["actions"] = [
        {"type": "RequireApproval", "timeout": "4s", "onTimeout": "Escalate"},
        {"type": "Notify"},
    ]
    escalate["spec"]["bands"].append(
        {"name": "critical", "minScore": 100, "actions": [{"type": "DenyAPIAccess"}]}
    )
    api.create(f"{CRD}/identityriskpolicies", escalate)
    human = approval_policy(
        "e2e-approval-human", label="approval-hu", timeout="1h", on_timeout="Deny"
    )
    human["spec"]["bands"] = [
        {
            "name": "medium",
            "minScore": 20,
            "minConfidence": "Medium",
            "actions": [
                {"type": "RequireApproval", "timeout": "1h", "onTimeout": "Deny"},
                {"type": "DenyAPIAccess"},
            ],
        }
    ]
    api.create(f"{CRD}/identityriskpolicies", human)
    time.sleep(1.5)  # let the operator's watch see the policies
    return operated


def replayed(operated: Operated, label: str) -> dict[str, Any]:
    """A workload whose token is replayed from the attacker: its decision waits for approval."""
    api = operated.api
    namespace = operated.namespace(label)
    deploy_workload(api, namespace=namespace, name="checkout", labels={MODE_LABEL: label})
    pod = running_pod(api, namespace=namespace, app="checkout")
    token = pod_token(api, pod)
    pod_ip = pod["status"]["podIP"]
    for _ in range(3):
        assert read_configmaps(api, namespace=namespace, token=token, source_ip=pod_ip) == 200
    assert read_configmaps(api, namespace=namespace, token=token, source_ip=ATTACKER_IP) == 200
    decision = decision_in(operated, namespace, "AwaitingApproval")
    return {"namespace": namespace, "token": token, "decision": decision}


def decision_in(operated: Operated, namespace: str, *phases: str) -> dict[str, Any]:
    def found() -> dict[str, Any] | None:
        items = (operated.custom("riskdecisions", namespace) or {}).get("items", [])
        hits = [d for d in items if (d.get("status") or {}).get("phase") in phases]
        return hits[0] if hits else None

    result: dict[str, Any] = wait_for(f"a RiskDecision in phase {phases}", found, timeout=30)
    return result


def answer_as(
    operated: Operated,
    user: str,
    *,
    namespace: str,
    decision: str,
    verdict: str = "Approve",
    group: str | None = None,
    annotations: dict[str, str] | None = None,
) -> tuple[int, dict[str, Any]]:
    """Create a RiskApproval as ``user`` (the admin impersonating them)."""
    ctx = ssl.create_default_context(cafile=str(operated.pki.ca.cert))
    ctx.load_cert_chain(str(operated.pki.admin.cert), str(operated.pki.admin.key))
    headers = {"Impersonate-User": user}
    if group:
        headers["Impersonate-Group"] = group
    body = {
        "apiVersion": "identityrisk.dev/v1alpha1",
        "kind": "RiskApproval",
        "metadata": {"name": f"{decision[:40]}-{user}", "annotations": annotations or {}},
        "spec": {"decision": decision, "verdict": verdict, "comment": "e2e"},
    }
    return api_request(
        operated.api.url,
        ctx,
        "POST",
        f"{CRD}/namespaces/{namespace}/riskapprovals",
        body,
        headers=headers,
    )


def judged(operated: Operated, namespace: str, name: str) -> dict[str, Any]:
    def status() -> dict[str, Any] | None:
        obj = operated.custom("riskapprovals", namespace, name) or {}
        st = obj.get("status") or {}
        return obj if st.get("accepted") is not None else None

    result: dict[str, Any] = wait_for(f"RiskApproval {name} to be judged", status, timeout=20)
    return result


def test_nothing_is_enforced_while_the_decision_waits(approvals: Operated) -> None:
    world = replayed(approvals, "approval")
    outcomes = world["decision"]["status"]["actions"]
    assert [o["type"] for o in outcomes] == ["RequireApproval"]
    assert outcomes[0]["phase"] == "Pending"
    assert world["decision"]["status"]["approval"]["state"] == "Pending"

    def pending() -> bool:
        risk = approvals.custom("workloadidentityrisks", world["namespace"], "checkout") or {}
        return (risk.get("status") or {}).get("enforcement") == "PendingApproval"

    wait_for("the identity's enforcement to read PendingApproval", pending, timeout=15)
    time.sleep(2)
    status = read_configmaps(
        approvals.api, namespace=world["namespace"], token=world["token"], source_ip=ATTACKER_IP
    )
    assert status == 200


def test_anyone_but_an_approver_is_refused_with_a_clear_message(approvals: Operated) -> None:
    world = replayed(approvals, "approval")
    namespace, decision = world["namespace"], world["decision"]["metadata"]["name"]
    # mallory types alice's name into the stamp: it is overwritten by who she really is
    status, obj = answer_as(
        approvals, "mallory", namespace=namespace, decision=decision,
        annotations={APPROVED_BY: "alice"},
    )  # fmt: skip
    assert status == 201, obj.get("message", obj)
    assert obj["metadata"]["annotations"][APPROVED_BY] == "mallory"
    refused = judged(approvals, namespace, obj["metadata"]["name"])
    assert refused["status"]["accepted"] is False
    assert refused["status"]["approvedBy"] == "mallory"
    assert "mallory may not answer" in refused["status"]["message"]
    events = approvals.api.get(
        f"/api/v1/namespaces/{namespace}/events?fieldSelector=reason%3DApprovalRefused"
    )
    assert any("mallory" in e["message"] for e in (events or {}).get("items", []))
    # still waiting, still not enforced
    still = approvals.custom("riskdecisions", namespace, decision)
    assert still["status"]["phase"] == "AwaitingApproval"
    code = read_configmaps(
        approvals.api, namespace=namespace, token=world["token"], source_ip=ATTACKER_IP
    )
    assert code == 200


def test_kubectl_risk_approve_by_a_non_approver_says_so(approvals: Operated) -> None:
    world = replayed(approvals, "approval")
    namespace, decision = world["namespace"], world["decision"]["metadata"]["name"]
    result = subprocess.run(
        [
            sys.executable, "-m", "identity_risk.cli.kubectl_risk", "approve", decision,
            "-n", namespace, f"--kubeconfig={approvals.state.kubeconfig}", "--comment=e2e",
        ],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 1, result.stdout + result.stderr
    assert "refused:" in result.stdout
    assert "may not answer" in result.stdout


@pytest.mark.parametrize(("user", "group"), [("alice", None), ("bob", APPROVERS_GROUP)])
def test_an_allowed_approver_carries_the_actions_out(
    approvals: Operated, user: str, group: str | None
) -> None:
    world = replayed(approvals, "approval")
    namespace, decision = world["namespace"], world["decision"]["metadata"]["name"]
    status, obj = answer_as(approvals, user, namespace=namespace, decision=decision, group=group)
    assert status == 201, obj.get("message", obj)
    accepted = judged(approvals, namespace, obj["metadata"]["name"])
    assert accepted["status"]["accepted"] is True, accepted["status"]
    done = decision_in(approvals, namespace, "Enforced")
    outcomes = {o["type"]: o for o in done["status"]["actions"]}
    assert outcomes["RequireApproval"]["phase"] == "Succeeded"
    assert outcomes["RequireApproval"]["message"] == f"approved by {user}"
    assert outcomes["DenyAPIAccess"]["phase"] == "Succeeded"
    assert done["status"]["approval"]["by"] == user

    def denied() -> bool:
        code = read_configmaps(
            approvals.api, namespace=namespace, token=world["token"], source_ip=ATTACKER_IP
        )
        return code == 403

    wait_for("the identity to be denied", denied, timeout=15)


def test_an_approver_can_deny(approvals: Operated) -> None:
    world = replayed(approvals, "approval")
    namespace, decision = world["namespace"], world["decision"]["metadata"]["name"]
    status, obj = answer_as(
        approvals, "alice", namespace=namespace, decision=decision, verdict="Deny"
    )
    assert status == 201, obj.get("message", obj)
    done = decision_in(approvals, namespace, "Denied")
    outcomes = {o["type"]: o for o in done["status"]["actions"]}
    assert outcomes["RequireApproval"]["message"] == "denied by alice"
    assert outcomes["DenyAPIAccess"]["phase"] == "Skipped"
    code = read_configmaps(
        approvals.api, namespace=namespace, token=world["token"], source_ip=ATTACKER_IP
    )
    assert code == 200


def test_with_no_answer_the_timeout_denies(approvals: Operated) -> None:
    world = replayed(approvals, "approval-to")
    namespace = world["namespace"]
    done = decision_in(approvals, namespace, "Denied")
    assert done["status"]["approval"]["state"] == "TimedOut"
    outcomes = {o["type"]: o for o in done["status"]["actions"]}
    assert "no answer within 4s" in outcomes["RequireApproval"]["message"]
    assert outcomes["DenyAPIAccess"]["phase"] == "Skipped"
    code = read_configmaps(
        approvals.api, namespace=namespace, token=world["token"], source_ip=ATTACKER_IP
    )
    assert code == 200


def test_with_no_answer_escalate_takes_the_next_bands_actions(approvals: Operated) -> None:
    world = replayed(approvals, "approval-esc")
    namespace = world["namespace"]
    expired = decision_in(approvals, namespace, "Expired")
    assert expired["spec"]["band"] == "high"
    outcomes = {o["type"]: o for o in expired["status"]["actions"]}
    assert "escalated to the next band" in outcomes["RequireApproval"]["message"]

    def critical() -> dict[str, Any] | None:
        items = (approvals.custom("riskdecisions", namespace) or {}).get("items", [])
        hits = [
            d for d in items
            if d["spec"]["band"] == "critical" and (d.get("status") or {}).get("phase") == "Enforced"
        ]  # fmt: skip
        return hits[0] if hits else None

    escalated: dict[str, Any] = wait_for("the escalated decision", critical, timeout=20)
    assert escalated["spec"]["previousBand"] == "high"
    assert any("onTimeout Escalate" in r for r in escalated["spec"]["reasons"])
    code = read_configmaps(
        approvals.api, namespace=namespace, token=world["token"], source_ip=ATTACKER_IP
    )
    assert code == 403


def test_human_use_of_a_workload_identity_waits_for_approval(approvals: Operated) -> None:
    """kubectl listing secrets with a pod's token: medium band, approved by alice, then denied."""
    api = approvals.api
    namespace = approvals.namespace("approval-hu")
    deploy_workload(api, namespace=namespace, name="checkout", labels={MODE_LABEL: "approval-hu"})
    pod = running_pod(api, namespace=namespace, app="checkout")
    token, pod_ip = pod_token(api, pod), pod["status"]["podIP"]
    for _ in range(3):
        assert read_configmaps(api, namespace=namespace, token=token, source_ip=pod_ip) == 200
    ctx = ssl.create_default_context(cafile=str(approvals.pki.ca.cert))
    status, _ = api_request(
        api.url, ctx, "GET", f"/api/v1/namespaces/{namespace}/secrets", None,
        headers={"Authorization": f"Bearer {token}", "User-Agent": "kubectl/v1.31.0 (linux/amd64)"},
        source_ip=pod_ip,
    )  # fmt: skip
    assert status == 200
    waiting = decision_in(approvals, namespace, "AwaitingApproval")
    assert waiting["spec"]["band"] == "medium"
    assert any(s["type"] == "HumanUse" for s in waiting["spec"]["signals"])
    code, obj = answer_as(
        approvals, "alice", namespace=namespace, decision=waiting["metadata"]["name"]
    )
    assert code == 201, obj.get("message", obj)
    decision_in(approvals, namespace, "Enforced")

    def denied() -> bool:
        return read_configmaps(api, namespace=namespace, token=token, source_ip=pod_ip) == 403

    wait_for("the identity to be denied", denied, timeout=15)
