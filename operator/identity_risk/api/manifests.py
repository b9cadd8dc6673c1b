"""Read our custom resources from YAML files and say precisely what is wrong with a bad one.

The API server rejects a malformed object with the path of the offending field; offline tools
(``kubectl risk simulate --policy FILE``) must be as clear, so validation errors from the models
are rendered in the same ``spec.bands[0].minScore: ...`` form.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from identity_risk.api import v1alpha1 as v1

MODELS: dict[str, type[BaseModel]] = {
    model.KIND: model
    for model in (
        v1.IdentityRiskPolicy,
        v1.WorkloadIdentityRisk,
        v1.RiskDecision,
        v1.RiskApproval,
        v1.RiskException,
        v1.IdentitySignal,
    )
}


class ManifestError(ValueError):
    """A manifest that cannot be used, with every problem located by file and field."""

    def __init__(self, source: str, problems: Sequence[str]) -> None:
        self.source = source
        self.problems = list(problems)
        super().__init__("\n".join(f"{source}: {p}" for p in self.problems))


def field_path(loc: Sequence[int | str]) -> str:
    """Render a pydantic error location as a Kubernetes field path: ``spec.bands[0].minScore``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def describe(error: ValidationError) -> list[str]:
    """One line per problem: the field path, then what is wrong with it."""
    lines = []
    for item in error.errors(include_url=False):
        loc = [p for p in item["loc"] if not (isinstance(p, str) and p.startswith("function-"))]
        msg = str(item["msg"]).removeprefix("Value error, ")
        path = field_path(loc)
        lines.append(f"{path}: {msg}" if path else msg)
    return lines


def parse(document: Mapping[str, Any], *, source: str = "<object>") -> BaseModel:
    """Validate one object of ours (any kind in ``identityrisk.dev``) into its model."""
    kind = document.get("kind")
    api_version = document.get("apiVersion")
    if api_version != v1.API_VERSION or kind not in MODELS:
        raise ManifestError(
            source,
            [
                f"apiVersion/kind {api_version}/{kind} is not one of ours: expected apiVersion "
                f"{v1.API_VERSION} and kind one of {', '.join(sorted(MODELS))}"
            ],
        )
    try:
        return MODELS[kind].model_validate(document)
    except ValidationError as exc:
        name = (document.get("metadata") or {}).get("name", "?")
        raise ManifestError(f"{source} ({kind} {name})", describe(exc)) from None


def documents(path: Path) -> list[tuple[int, dict[str, Any]]]:
    """The YAML/JSON documents of ``path`` with their 1-based index (``List`` kinds flattened).

    Raises ``ManifestError`` saying what is wrong and where (line and column for bad YAML).
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ManifestError(str(path), ["no such file"]) from None
    except IsADirectoryError:
        raise ManifestError(str(path), ["is a directory, expected a file"]) from None
    except (OSError, UnicodeDecodeError) as error:
        raise ManifestError(str(path), [f"cannot read: {error}"]) from None
    try:
        raw = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as error:
        where = ""
        mark = getattr(error, "problem_mark", None)
        if mark is not None:
            where = f" at line {mark.line + 1}, column {mark.column + 1}"
        problem = getattr(error, "problem", None) or str(error)
        raise ManifestError(str(path), [f"not valid YAML{where}: {problem}"]) from None
    docs: list[tuple[int, dict[str, Any]]] = []
    for index, doc in enumerate(raw, start=1):
        if not isinstance(doc, dict):
            raise ManifestError(
                str(path),
                [f"document {index} is a {type(doc).__name__}, expected a Kubernetes object"],
            )
        items = doc.get("items")
        if str(doc.get("kind", "")).endswith("List") and isinstance(items, list):
            docs.extend((index, item) for item in items if isinstance(item, dict))
        else:
            docs.append((index, doc))
    return docs
