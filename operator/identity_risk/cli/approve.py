"""``kubectl risk approve|deny``: answer a decision that waits for approval.

Creates a RiskApproval for the decision. Who answered is not sent: the operator's admission
webhook stamps it from your credentials, and the operator checks it against the policy's
approvers. The command then waits briefly for the operator's verdict and prints it, so a refusal
(not an approver, decision not waiting) is seen at once rather than discovered later.
"""

from __future__ import annotations

import argparse
import secrets
import time
from typing import Any

from identity_risk.api import v1alpha1 as v1
from identity_risk.cli.cluster import api_errors, connect
from identity_risk.cli.explain import context_namespace, target

EXIT_OK = 0
EXIT_REFUSED = 1
EXIT_NO_ANSWER = 3


def add_parser(sub: Any) -> None:
    for verb, verdict, what in (
        ("approve", v1.Verdict.APPROVE, "carry out the actions a decision is waiting to take"),
        ("deny", v1.Verdict.DENY, "drop the actions a decision is waiting to take"),
    ):
        p: argparse.ArgumentParser = sub.add_parser(
            verb,
            help=f"{what} (creates a RiskApproval)",
            description=f"{what[0].upper()}{what[1:]}. Creates a RiskApproval; the operator "
            "stamps who you are from your credentials and checks it against the policy's "
            "approvers.",
        )
        p.add_argument("decision", metavar="DECISION",
                       help="RiskDecision NAME (in -n NAMESPACE) or NAMESPACE/NAME")  # fmt: skip
        p.add_argument("-n", "--namespace", help="default: the kubeconfig context's namespace")
        p.add_argument("--comment", default="", help="why, for the record")
        p.add_argument("--wait", type=float, default=15.0,
                       help="seconds to wait for the operator's verdict (0: do not wait)")  # fmt: skip
        p.add_argument("--kubeconfig", help="default: $KUBECONFIG or ~/.kube/config")
        p.set_defaults(run=run, verdict=verdict)


def approval_manifest(
    *, namespace: str, decision: str, verdict: v1.Verdict, comment: str, suffix: str
) -> dict[str, Any]:
    """The RiskApproval to create (no approver in it: the operator stamps that)."""
    name = f"{decision[: 253 - len(suffix) - 8]}-{verdict.value.lower()}-{suffix}"
    obj = v1.RiskApproval(
        metadata={"name": name, "namespace": namespace},
        spec=v1.RiskApprovalSpec(decision=decision, verdict=verdict, comment=comment),
    )
    return obj.model_dump(by_alias=True, exclude_none=True, mode="json")


def run(args: argparse.Namespace) -> int:
    default_ns = "default"
    if args.namespace is None and "/" not in args.decision:
        default_ns = context_namespace(kubeconfig=args.kubeconfig)
    namespace, name = target(args.decision, namespace=args.namespace, default_namespace=default_ns)
    kube = connect(kubeconfig=args.kubeconfig)
    body = approval_manifest(
        namespace=namespace,
        decision=name,
        verdict=args.verdict,
        comment=args.comment,
        suffix=secrets.token_hex(3),
    )
    approval = body["metadata"]["name"]
    with api_errors(f"create RiskApproval {namespace}/{approval}"):
        kube.create_custom("RiskApproval", namespace, body)
    print(f"riskapproval {namespace}/{approval} created ({args.verdict.value} {name})")
    deadline = time.monotonic() + max(0.0, args.wait)
    while time.monotonic() < deadline:
        with api_errors(f"read RiskApproval {namespace}/{approval}"):
            obj = kube.get_custom("RiskApproval", namespace, approval) or {}
        status = obj.get("status") or {}
        if status.get("accepted") is not None:
            print(("accepted: " if status["accepted"] else "refused: ") + str(status["message"]))
            return EXIT_OK if status["accepted"] else EXIT_REFUSED
        time.sleep(0.5)
    if args.wait > 0:
        print("no verdict from the operator yet; see: kubectl get riskapproval -n", namespace)
        return EXIT_NO_ANSWER
    return EXIT_OK
