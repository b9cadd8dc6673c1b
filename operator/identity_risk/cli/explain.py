"""``kubectl risk explain``: why a ServiceAccount has the score it has, point by point.

A score nobody can explain is a score nobody will let act on their workloads. This command reads
the identity's WorkloadIdentityRisk and shows every contributing signal with its points,
confidence, OWASP NHI item, NIST CSF subcategory and evidence, and that the points add up to the
score. Rendering (:func:`render`, :func:`as_json`) is pure, so it is tested without a cluster; the
scorer's internal resume state is never shown.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping
from typing import Any

import pydantic

from identity_risk.api import v1alpha1 as v1
from identity_risk.cli.cluster import api_errors, connect
from identity_risk.cli.inputs import InputError

EXIT_OK = 0
EXIT_NOT_FOUND = 1


def add_parser(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "explain",
        help="show a ServiceAccount's score and every signal behind it, with evidence",
        description="Show a ServiceAccount's current risk: score, band, confidence, enforcement, "
        "the last decision, and every contributing signal with its points and evidence.",
    )
    p.add_argument("service_account", metavar="SERVICEACCOUNT",
                   help="NAME (in -n NAMESPACE or the context's namespace) or NAMESPACE/NAME")  # fmt: skip
    p.add_argument("-n", "--namespace", help="default: the kubeconfig context's namespace")
    p.add_argument("-o", "--output", choices=("text", "json"), default="text")
    p.add_argument("--kubeconfig", help="default: $KUBECONFIG or ~/.kube/config")
    p.set_defaults(run=run)


# --- rendering ------------------------------------------------------------------------------


def _model(wir: Mapping[str, Any]) -> v1.WorkloadIdentityRisk:
    try:
        return v1.WorkloadIdentityRisk.model_validate(wir)
    except pydantic.ValidationError as error:
        meta = wir.get("metadata") or {}
        where = f"{meta.get('namespace', '')}/{meta.get('name', '')}"
        raise InputError(f"WorkloadIdentityRisk {where} is not readable: {error}") from None


def _identity(obj: v1.WorkloadIdentityRisk) -> str:
    return f"{obj.metadata.get('namespace', '')}/{obj.spec.service_account_name}"


def _pts(points: float) -> str:
    return str(int(points)) if float(points).is_integer() else f"{points:.1f}"


def points_line(score: float, signals: list[v1.ContributingSignal]) -> str:
    """The sum of the signals' points against the score, saying where any difference comes from."""
    terms = [_pts(s.points) for s in signals if s.points]
    total = sum(s.points for s in signals)
    expression = " + ".join(terms) or "0"
    if len(terms) > 1:
        expression += f" = {_pts(total)}"
    if abs(total - score) < 0.05:
        return f"points: {expression} = score {_pts(score)}"
    rest = score - total
    return (
        f"points: {expression}, score {_pts(score)}: the other {_pts(rest)} come from signals"
        " not kept in status (it holds the top ones) or a confirm-compromised override"
    )


def render(wir: Mapping[str, Any]) -> str:
    """A WorkloadIdentityRisk (as the API server returns it) for a person to read."""
    obj = _model(wir)
    status = obj.status or v1.WorkloadIdentityRiskStatus()
    identity = _identity(obj)
    if status.score is None:
        return (
            f"{identity}: not scored yet (the operator has created its record but not scored it)\n"
        )
    rows = [
        ("identity", identity),
        ("owner", status.owner or "-"),
        ("policy", status.policy or "-"),
        ("score", f"{_pts(status.score)}/100"),
        ("band", status.band or "none"),
        ("confidence", status.confidence.value if status.confidence else "-"),
        ("enforcement", status.enforcement.value),
        ("last decision", status.last_decision or "-"),
        ("evaluated", status.last_evaluated.isoformat() if status.last_evaluated else "-"),
    ]
    width = max(len(label) for label, _ in rows) + 1
    lines = [f"{label + ':':<{width}} {value}" for label, value in rows]
    lines.append("")
    signals = sorted(status.signals, key=lambda s: -s.points)
    lines.append(f"SIGNALS ({len(signals)})" if signals else "SIGNALS: none")
    for s in signals:
        lines.append(
            f"  {_pts(s.points):>4} pts  {s.type}  confidence {s.confidence.value}"
            f"  OWASP {s.owasp_nhi or '-'}  NIST CSF {s.nist_csf or '-'}"
        )
        if s.summary:
            lines.append(f"            {s.summary}")
        if s.observed_at:
            lines.append(f"            observed {s.observed_at.isoformat()}")
        for key, value in sorted(s.evidence.items()):
            lines.append(f"            {key}={value}")
    lines.append("")
    lines.append(points_line(status.score, signals))
    return "\n".join(lines) + "\n"


def as_json(wir: Mapping[str, Any]) -> dict[str, Any]:
    """The same facts for scripts; the scorer's internal state is left out."""
    obj = _model(wir)
    status = obj.status or v1.WorkloadIdentityRiskStatus()
    body = status.model_dump(
        by_alias=True, exclude_none=True, exclude={"scorer_state"}, mode="json"
    )
    return {
        "identity": _identity(obj),
        **body,
        "pointsTotal": sum(s.points for s in status.signals),
    }


# --- reading --------------------------------------------------------------------------------


def target(reference: str, *, namespace: str | None, default_namespace: str) -> tuple[str, str]:
    """``(namespace, name)`` from ``NAME`` or ``NAMESPACE/NAME`` and ``-n``."""
    if "/" in reference:
        ns, _, name = reference.partition("/")
        if not ns or not name or "/" in name:
            raise InputError(f"{reference!r}: expected NAME or NAMESPACE/NAME")
        if namespace is not None and namespace != ns:
            raise InputError(f"{reference!r} names namespace {ns!r} but -n says {namespace!r}")
        return ns, name
    return namespace or default_namespace, reference


def context_namespace(*, kubeconfig: str | None) -> str:
    """The namespace of the kubeconfig's current context, as kubectl would use it."""
    from kubernetes import config

    try:
        _, active = config.list_kube_config_contexts(config_file=kubeconfig)  # type: ignore[no-untyped-call]
    except (config.ConfigException, OSError):
        return "default"
    namespace = ((active or {}).get("context") or {}).get("namespace")
    return namespace if isinstance(namespace, str) and namespace else "default"


def run(args: argparse.Namespace) -> int:
    default_ns = "default"
    if args.namespace is None and "/" not in args.service_account:
        default_ns = context_namespace(kubeconfig=args.kubeconfig)
    namespace, name = target(
        args.service_account, namespace=args.namespace, default_namespace=default_ns
    )
    kube = connect(kubeconfig=args.kubeconfig)
    with api_errors(f"read WorkloadIdentityRisk {namespace}/{name}"):
        wir = kube.get_custom("WorkloadIdentityRisk", namespace, name)
    if wir is None:
        print(
            f"no risk recorded for {namespace}/{name}: the operator has not seen it act,"
            " or no policy covers it"
        )
        return EXIT_NOT_FOUND
    if args.output == "json":
        print(json.dumps(as_json(wir), indent=2))
    else:
        print(render(wir), end="")
    return EXIT_OK
