"""Reading what a person hands ``kubectl risk``: policy files, inventory directories, audit logs.

Every failure becomes an ``InputError`` whose message names the file, the document and the field,
and says what was expected, because the person reading it is fixing a YAML file, not a program.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pydantic

from identity_risk.api.manifests import ManifestError, describe, documents
from identity_risk.api.v1alpha1 import API_VERSION, IdentityRiskPolicy, RiskException

INVENTORY_SUFFIXES = (".yaml", ".yml", ".json")


class InputError(Exception):
    """A problem with what the user gave us; the message says what and where."""


@dataclass(frozen=True, slots=True, kw_only=True)
class PolicyBundle:
    """The policies (and RiskExceptions) found in a policy file."""

    policies: tuple[IdentityRiskPolicy, ...]
    exceptions: tuple[RiskException, ...]


def load_documents(path: Path) -> list[tuple[int, dict[str, Any]]]:
    """The YAML/JSON documents of ``path`` (``List`` kinds flattened), with their 1-based index."""
    try:
        return documents(path)
    except ManifestError as error:
        raise InputError(str(error)) from None


def load_policy_bundle(path: Path) -> PolicyBundle:
    """IdentityRiskPolicies (and optional RiskExceptions) from a YAML file, validated."""
    policies: list[IdentityRiskPolicy] = []
    exceptions: list[RiskException] = []
    for index, doc in load_documents(path):
        kind = doc.get("kind")
        model: type[IdentityRiskPolicy] | type[RiskException]
        if kind == IdentityRiskPolicy.KIND:
            model = IdentityRiskPolicy
        elif kind == RiskException.KIND:
            model = RiskException
        else:
            raise InputError(
                f"{path}: document {index} is kind {kind!r}; expected {IdentityRiskPolicy.KIND}"
                f" (or {RiskException.KIND}) of {API_VERSION}"
            )
        if doc.get("apiVersion") not in (None, API_VERSION):
            raise InputError(
                f"{path}: document {index} has apiVersion {doc.get('apiVersion')!r},"
                f" expected {API_VERSION}"
            )
        name = (doc.get("metadata") or {}).get("name", "")
        try:
            obj = model.model_validate(doc)
        except pydantic.ValidationError as error:
            raise InputError(
                f"{path}: document {index} ({kind} {name!r}) is invalid:\n"
                + _format_validation(error)
            ) from None
        if isinstance(obj, IdentityRiskPolicy):
            if not obj.name:
                raise InputError(f"{path}: document {index} ({kind}) has no metadata.name")
            policies.append(obj)
        else:
            exceptions.append(obj)
    if not policies:
        raise InputError(f"{path}: contains no {IdentityRiskPolicy.KIND}")
    names = [p.name for p in policies]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise InputError(f"{path}: policy names must be unique (repeated: {', '.join(dupes)})")
    return PolicyBundle(policies=tuple(policies), exceptions=tuple(exceptions))


def load_inventory_objects(directory: Path) -> list[Mapping[str, Any]]:
    """Every Kubernetes object in the YAML/JSON files of ``directory`` (recursively, sorted)."""
    if not directory.exists():
        raise InputError(f"{directory}: no such directory")
    if not directory.is_dir():
        raise InputError(f"{directory}: is a file; --inventory expects a directory of manifests")
    objects: list[Mapping[str, Any]] = []
    for path in sorted(p for p in directory.rglob("*") if p.suffix in INVENTORY_SUFFIXES):
        for index, doc in load_documents(path):
            if "kind" not in doc:
                raise InputError(f"{path}: document {index} has no kind")
            objects.append(doc)
    return objects


def check_readable(path: Path, *, what: str) -> None:
    if not path.exists():
        raise InputError(f"{path}: no such file ({what})")
    if path.is_dir():
        raise InputError(f"{path}: is a directory, expected a file ({what})")


def _format_validation(error: pydantic.ValidationError) -> str:
    return "\n".join(f"  {line}" for line in describe(error))
