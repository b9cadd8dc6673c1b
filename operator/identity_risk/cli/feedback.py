"""``kubectl risk confirm-compromised`` and ``kubectl risk dismiss``: a person's verdict.

Both annotate the identity's WorkloadIdentityRisk (the operator's own record, so no workload
object drifts from Git); the operator re-scores at once. Confirmed: the score is pinned to the top
and the top band's actions follow. Dismissed: the evidence seen so far stops counting; new
evidence counts again. Each verdict replaces the other.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from typing import Any

from identity_risk.api import v1alpha1 as v1
from identity_risk.cli.cluster import api_errors, connect
from identity_risk.cli.explain import context_namespace, target
from identity_risk.scoring.feedback import CONFIRMED_AT, CONFIRMED_BY, DISMISSED_AT, DISMISSED_BY

EXIT_OK = 0
EXIT_NOT_FOUND = 1


def add_parser(sub: Any) -> None:
    for verb, what in (
        (
            "confirm-compromised",
            "confirm a ServiceAccount is compromised: straight to the top band",
        ),
        ("dismiss", "dismiss a ServiceAccount's current evidence until new evidence arrives"),
    ):
        p: argparse.ArgumentParser = sub.add_parser(verb, help=what, description=what + ".")
        p.add_argument("service_account", metavar="SERVICEACCOUNT",
                       help="NAME (in -n NAMESPACE) or NAMESPACE/NAME")  # fmt: skip
        p.add_argument("-n", "--namespace", help="default: the kubeconfig context's namespace")
        p.add_argument("--kubeconfig", help="default: $KUBECONFIG or ~/.kube/config")
        p.set_defaults(run=run, verb=verb)


def annotations_for(verb: str, *, by: str, at: datetime) -> dict[str, str | None]:
    """What to write on the WorkloadIdentityRisk (None removes the other verdict)."""
    if verb == "confirm-compromised":
        return {CONFIRMED_BY: by, CONFIRMED_AT: at.isoformat(), DISMISSED_BY: None,
                DISMISSED_AT: None}  # fmt: skip
    return {DISMISSED_BY: by, DISMISSED_AT: at.isoformat(), CONFIRMED_BY: None, CONFIRMED_AT: None}


def run(args: argparse.Namespace) -> int:
    default_ns = "default"
    if args.namespace is None and "/" not in args.service_account:
        default_ns = context_namespace(kubeconfig=args.kubeconfig)
    namespace, name = target(
        args.service_account, namespace=args.namespace, default_namespace=default_ns
    )
    kube = connect(kubeconfig=args.kubeconfig)
    with api_errors("ask the API server who you are"):
        by = kube.whoami() or "unknown"
    notes = annotations_for(args.verb, by=by, at=datetime.now(UTC).replace(microsecond=0))
    with api_errors(f"read WorkloadIdentityRisk {namespace}/{name}"):
        existing = kube.get_custom("WorkloadIdentityRisk", namespace, name)
    if existing is None:
        if args.verb == "dismiss":
            print(f"nothing to dismiss: no risk recorded for {namespace}/{name}")
            return EXIT_NOT_FOUND
        body = {
            "apiVersion": v1.API_VERSION,
            "kind": "WorkloadIdentityRisk",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"serviceAccountName": name},
        }
        with api_errors(f"create WorkloadIdentityRisk {namespace}/{name}"):
            kube.create_custom("WorkloadIdentityRisk", namespace, body)
    with api_errors(f"annotate WorkloadIdentityRisk {namespace}/{name}"):
        kube.annotate_custom("WorkloadIdentityRisk", namespace, name, notes)
    done = "confirmed compromised" if args.verb == "confirm-compromised" else "dismissed"
    print(f"{namespace}/{name}: {done} by {by}; the operator re-scores it now")
    print(f"see: kubectl risk explain {namespace}/{name}")
    return EXIT_OK
