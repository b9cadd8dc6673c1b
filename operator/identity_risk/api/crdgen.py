"""Generate ``crds/*.yaml`` from the pydantic models in :mod:`identity_risk.api.v1alpha1`.

The API server wants a *structural* OpenAPI v3 schema: no ``$ref``, no ``anyOf`` over types, a
``type`` on every node, descriptions for ``kubectl explain``. Pydantic emits JSON Schema 2020-12,
so this module translates one into the other and adds what only a CRD has (scope, names,
categories, printer columns, the status subresource). Run ``python -m identity_risk.api.crdgen``
to rewrite ``crds/``; ``--check`` exits non-zero when the files on disk differ.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from identity_risk.api import v1alpha1 as v1

_DROP_KEYS = {"title", "$defs", "discriminator"}


@dataclass(frozen=True)
class Column:
    name: str
    json_path: str
    type: str = "string"
    description: str = ""
    priority: int = 0

    def render(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "type": self.type, "jsonPath": self.json_path}
        if self.description:
            out["description"] = self.description
        if self.priority:
            out["priority"] = self.priority
        return out


AGE = Column("Age", ".metadata.creationTimestamp", "date")


@dataclass(frozen=True)
class Kind:
    model: type[BaseModel]
    spec: type[BaseModel]
    status: type[BaseModel]
    plural: str
    short_names: tuple[str, ...]
    namespaced: bool
    description: str
    columns: tuple[Column, ...] = field(default_factory=tuple)

    @property
    def kind(self) -> str:
        return str(self.model.KIND)  # type: ignore[attr-defined]

    @property
    def singular(self) -> str:
        return self.kind.lower()


KINDS: tuple[Kind, ...] = (
    Kind(
        model=v1.IdentityRiskPolicy,
        spec=v1.IdentityRiskPolicySpec,
        status=v1.PolicyStatus,
        plural="identityriskpolicies",
        short_names=("irp",),
        namespaced=False,
        description="Which workload identities are covered, how risk maps to bands, and which "
        "responses each band orders.",
        columns=(
            Column("Mode", ".spec.mode", description="Audit records only; Enforce acts."),
            Column("Priority", ".spec.priority", "integer"),
            Column("Top band", ".spec.bands[-1:].name", description="The highest band."),
            Column("Covered", ".status.identitiesCovered", "integer"),
            AGE,
        ),
    ),
    Kind(
        model=v1.WorkloadIdentityRisk,
        spec=v1.WorkloadIdentityRiskSpec,
        status=v1.WorkloadIdentityRiskStatus,
        plural="workloadidentityrisks",
        short_names=("wir",),
        namespaced=True,
        description="The current risk of one ServiceAccount: score, band, confidence, the "
        "signals behind them, and the enforcement in force.",
        columns=(
            Column("ServiceAccount", ".spec.serviceAccountName"),
            Column("Score", ".status.score", "number"),
            Column("Band", ".status.band"),
            Column("Confidence", ".status.confidence"),
            Column("Enforcement", ".status.enforcement"),
            Column("Policy", ".status.policy", priority=1),
            Column("Decision", ".status.lastDecision", priority=1),
            AGE,
        ),
    ),
    Kind(
        model=v1.RiskDecision,
        spec=v1.RiskDecisionSpec,
        status=v1.RiskDecisionStatus,
        plural="riskdecisions",
        short_names=("rdec",),
        namespaced=True,
        description="One immutable link of the chain of record: the score, the decision and "
        "the planned actions; status holds each action's outcome and the chain signature.",
        columns=(
            Column("ServiceAccount", ".spec.identity.serviceAccountName"),
            Column("Score", ".spec.score", "number"),
            Column("Band", ".spec.band"),
            Column("Mode", ".spec.mode"),
            Column("Phase", ".status.phase"),
            Column("Policy", ".spec.policy", priority=1),
            Column("Actions", ".spec.actions[*].type", priority=1),
            AGE,
        ),
    ),
    Kind(
        model=v1.RiskApproval,
        spec=v1.RiskApprovalSpec,
        status=v1.RiskApprovalStatus,
        plural="riskapprovals",
        short_names=("rappr",),
        namespaced=True,
        description="A person's answer (approve or deny) to a pending RiskDecision; who "
        "answered is stamped by the operator.",
        columns=(
            Column("Decision", ".spec.decision"),
            Column("Verdict", ".spec.verdict"),
            Column("By", ".status.approvedBy"),
            Column("Accepted", ".status.accepted", "boolean"),
            AGE,
        ),
    ),
    Kind(
        model=v1.RiskException,
        spec=v1.RiskExceptionSpec,
        status=v1.RiskExceptionStatus,
        plural="riskexceptions",
        short_names=("rex",),
        namespaced=True,
        description="A time-boxed, owned exemption from enforcement for one identity or workload.",
        columns=(
            Column("ServiceAccount", ".spec.serviceAccountName"),
            Column("Owner", ".spec.owner"),
            Column("Expires", ".spec.expires", "date"),
            Column("Active", ".status.active", "boolean"),
            AGE,
        ),
    ),
    Kind(
        model=v1.IdentitySignal,
        spec=v1.IdentitySignalSpec,
        status=v1.IdentitySignalStatus,
        plural="identitysignals",
        short_names=("isig",),
        namespaced=True,
        description="An external signal about a workload identity (a secret scanner, a runtime "
        "detector) fed into its score.",
        columns=(
            Column("ServiceAccount", ".spec.serviceAccountName"),
            Column("Type", ".spec.type"),
            Column("Confidence", ".spec.confidence"),
            Column("Source", ".spec.source"),
            Column("Accepted", ".status.accepted", "boolean"),
            AGE,
        ),
    ),
)


def _resolve(node: Any, defs: dict[str, Any]) -> Any:
    """Inline ``$ref``s and translate JSON Schema 2020-12 into a structural OpenAPI v3 schema."""
    if isinstance(node, list):
        return [_resolve(item, defs) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        target = defs[node["$ref"].rsplit("/", 1)[-1]]
        merged = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
        return _resolve(merged, defs)
    if "anyOf" in node:
        variants = [v for v in node["anyOf"] if v.get("type") != "null"]
        if len(variants) != 1:
            raise ValueError(f"cannot express a union of several types structurally: {node}")
        merged = {**variants[0], **{k: v for k, v in node.items() if k != "anyOf"}}
        if merged.get("default", ...) is None:
            del merged["default"]
        return _resolve(merged, defs)
    if "allOf" in node and len(node["allOf"]) == 1:
        merged = {**node["allOf"][0], **{k: v for k, v in node.items() if k != "allOf"}}
        return _resolve(merged, defs)

    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROP_KEYS:
            continue
        if key == "description":
            out[key] = " ".join(str(value).replace("``", "`").split())
            continue
        if key == "properties":
            out[key] = {name: _resolve(sub, defs) for name, sub in value.items()}
        elif key == "additionalProperties" and value is False:
            continue  # the API server prunes unknown fields; `false` is not structural
        elif key == "const":
            out["enum"] = [value]
        else:
            out[key] = _resolve(value, defs)
    if "enum" in out and "type" not in out:
        out["type"] = "string"
    if "properties" in out:
        out.setdefault("type", "object")
    if (
        out.get("type") == "object"
        and "properties" not in out
        and "additionalProperties" not in out
    ):
        out["x-kubernetes-preserve-unknown-fields"] = True
    if out.get("format") == "date-time":
        out["type"] = "string"
    return out


def openapi_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The structural schema of one model, as the API server wants it."""
    raw = model.model_json_schema(by_alias=True, mode="validation", ref_template="#/$defs/{model}")
    defs = raw.get("$defs", {})
    schema = _resolve(raw, defs)
    assert isinstance(schema, dict)
    return schema


def crd_manifest(kind: Kind) -> dict[str, Any]:
    """The CustomResourceDefinition for one kind."""
    spec_schema = openapi_schema(kind.spec)
    spec_schema["description"] = " ".join((kind.spec.__doc__ or "").split())
    status_schema = openapi_schema(kind.status)
    status_schema["description"] = "Written by the operator."
    root = {
        "type": "object",
        "description": kind.description,
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": spec_schema,
            "status": status_schema,
        },
    }
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{kind.plural}.{v1.GROUP}",
            "labels": {"app.kubernetes.io/part-of": "identity-risk-operator"},
        },
        "spec": {
            "group": v1.GROUP,
            "scope": "Namespaced" if kind.namespaced else "Cluster",
            "names": {
                "kind": kind.kind,
                "listKind": f"{kind.kind}List",
                "plural": kind.plural,
                "singular": kind.singular,
                "shortNames": list(kind.short_names),
                "categories": [v1.CATEGORY],
            },
            "versions": [
                {
                    "name": v1.VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": [c.render() for c in kind.columns],
                    "schema": {"openAPIV3Schema": root},
                }
            ],
        },
    }


HEADER = (
    "# Generated by `python -m identity_risk.api.crdgen` from operator/identity_risk/api/.\n"
    "# Do not edit by hand: change the pydantic models and regenerate.\n"
)


def render(kind: Kind) -> str:
    return HEADER + yaml.safe_dump(crd_manifest(kind), sort_keys=False, width=100)


def rendered_files() -> dict[str, str]:
    """File name → content, for every CRD."""
    return {f"{kind.plural}.{v1.GROUP}.yaml": render(kind) for kind in KINDS}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, default=Path("crds"), help="output directory")
    parser.add_argument(
        "--check", action="store_true", help="exit 1 if the files on disk are out of date"
    )
    args = parser.parse_args(argv)
    files = rendered_files()
    if args.check:
        stale = [
            name
            for name, text in files.items()
            if not (args.out / name).exists() or (args.out / name).read_text() != text
        ]
        extra = (
            sorted(p.name for p in args.out.glob("*.yaml") if p.name not in files)
            if args.out.exists()
            else []
        )
        for name in stale:
            print(f"{args.out / name}: out of date; run `python -m identity_risk.api.crdgen`")
        for name in extra:
            print(f"{args.out / name}: not generated from any model; remove it")
        return 1 if stale or extra else 0
    args.out.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (args.out / name).write_text(text)
        print(f"wrote {args.out / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
