"""``kubectl risk release``: undo what a decision did (or every decision about a ServiceAccount).

The command asks; the operator acts. It annotates each RiskDecision with
``identityrisk.dev/release-requested-by``; the operator, which watches RiskDecisions, runs each
recorded action's releaser (labels, NetworkPolicies, authorization state, token clamps), marks
the decision Released and appends the release to the signed chain. The command waits for that and
prints what was undone, so a release that could not finish is seen at once.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Mapping, Sequence
from typing import Any

from identity_risk.cli.cluster import api_errors, connect
from identity_risk.cli.explain import context_namespace, target
from identity_risk.cli.inputs import InputError
from identity_risk.record.decisions import RELEASE_REQUESTED_BY

EXIT_OK = 0
EXIT_INCOMPLETE = 3
SA_PREFIXES = ("serviceaccount/", "serviceaccounts/", "sa/")
RELEASABLE = ("Enforced", "Failed", "AwaitingApproval", "Executing")


def add_parser(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "release",
        help="undo every reversible action of a decision, or of all decisions about a "
        "ServiceAccount",
        description="Undo every reversible action a RiskDecision took (pod labels, "
        "NetworkPolicies, authorization denials and restrictions, token clamps) and record the "
        "release in the signed chain. TARGET is a RiskDecision name, or serviceaccount/NAME "
        "for every unreleased decision about that ServiceAccount.",
    )
    p.add_argument("target", metavar="TARGET",
                   help="DECISION, NAMESPACE/DECISION or serviceaccount/NAME (sa/NAME)")  # fmt: skip
    p.add_argument("-n", "--namespace", help="default: the kubeconfig context's namespace")
    p.add_argument("--wait", type=float, default=30.0,
                   help="seconds to wait for the operator to finish (0: do not wait)")  # fmt: skip
    p.add_argument("--kubeconfig", help="default: $KUBECONFIG or ~/.kube/config")
    p.set_defaults(run=run)


def decisions_about(decisions: Sequence[Mapping[str, Any]], *, service_account: str) -> list[str]:
    """Names of the unreleased decisions about ``service_account`` (phases that may hold state)."""
    out = []
    for obj in decisions:
        spec = obj.get("spec") or {}
        phase = (obj.get("status") or {}).get("phase", "Recorded")
        identity = spec.get("identity") or {}
        if identity.get("serviceAccountName") == service_account and phase in RELEASABLE:
            out.append(str(obj["metadata"]["name"]))
    return sorted(out)


def summary(obj: Mapping[str, Any]) -> str:
    """One line per released action, from a released RiskDecision."""
    status = obj.get("status") or {}
    lines = [
        f"  {a['type']}: {a.get('message', '')}"
        for a in status.get("actions", [])
        if a.get("phase") == "Released"
    ]
    return "\n".join(lines) or "  (nothing reversible was in force)"


def run(args: argparse.Namespace) -> int:
    reference = str(args.target)
    as_sa = reference.startswith(SA_PREFIXES)
    if as_sa:
        reference = reference.split("/", 1)[1]
    default_ns = "default"
    if args.namespace is None and "/" not in reference:
        default_ns = context_namespace(kubeconfig=args.kubeconfig)
    namespace, name = target(reference, namespace=args.namespace, default_namespace=default_ns)
    kube = connect(kubeconfig=args.kubeconfig)
    if as_sa:
        with api_errors(f"list RiskDecisions in {namespace}"):
            names = decisions_about(
                kube.list_custom("RiskDecision", namespace), service_account=name
            )
        if not names:
            print(f"nothing to release: no unreleased RiskDecision about {namespace}/{name}")
            return EXIT_OK
    else:
        with api_errors(f"read RiskDecision {namespace}/{name}"):
            if kube.get_custom("RiskDecision", namespace, name) is None:
                raise InputError(
                    f"RiskDecision {namespace}/{name} not found (for every decision about a "
                    f"ServiceAccount: kubectl risk release serviceaccount/{name} -n {namespace})"
                )
        names = [name]
    with api_errors("ask the API server who you are"):
        by = kube.whoami() or "unknown"
    for decision in names:
        with api_errors(f"annotate RiskDecision {namespace}/{decision}"):
            kube.annotate_custom("RiskDecision", namespace, decision, {RELEASE_REQUESTED_BY: by})
        print(f"riskdecision {namespace}/{decision}: release requested")
    if args.wait <= 0:
        return EXIT_OK
    deadline = time.monotonic() + args.wait
    pending = list(names)
    while pending and time.monotonic() < deadline:
        for decision in list(pending):
            with api_errors(f"read RiskDecision {namespace}/{decision}"):
                obj = kube.get_custom("RiskDecision", namespace, decision) or {}
            if (obj.get("status") or {}).get("phase") == "Released":
                print(f"riskdecision {namespace}/{decision}: released\n{summary(obj)}")
                pending.remove(decision)
        if pending:
            time.sleep(0.5)
    for decision in pending:
        print(
            f"riskdecision {namespace}/{decision}: not released yet; see its Events "
            f"(kubectl describe riskdecision {decision} -n {namespace})"
        )
    return EXIT_INCOMPLETE if pending else EXIT_OK
