"""The API: CRDs generated from the models, examples valid, invalid manifests rejected clearly."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from identity_risk.api import crdgen
from identity_risk.api import v1alpha1 as v1
from identity_risk.api.manifests import ManifestError, documents, parse
from identity_risk.domain import ActionType

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))
INVALID = sorted((ROOT / "tests" / "data" / "invalid").glob("*.yaml"))


def expected_message(path: Path) -> str:
    for line in path.read_text().splitlines():
        if line.startswith("# expect:"):
            return line.removeprefix("# expect:").strip()
    raise AssertionError(f"{path} has no '# expect:' line")


def walk(node: Any, path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    if isinstance(node, dict):
        yield path, node
        for key, sub in node.get("properties", {}).items():
            yield from walk(sub, f"{path}.{key}")
        if isinstance(node.get("items"), dict):
            yield from walk(node["items"], f"{path}[]")
        if isinstance(node.get("additionalProperties"), dict):
            yield from walk(node["additionalProperties"], f"{path}{{}}")


def test_crds_on_disk_match_the_models() -> None:
    files = crdgen.rendered_files()
    on_disk = {p.name: p.read_text() for p in (ROOT / "crds").glob("*.yaml")}
    assert sorted(on_disk) == sorted(files), "run `python -m identity_risk.api.crdgen`"
    for name, text in files.items():
        assert on_disk[name] == text, (
            f"crds/{name} is stale: run `python -m identity_risk.api.crdgen`"
        )


@pytest.mark.parametrize("kind", crdgen.KINDS, ids=lambda k: k.kind)
def test_crd_schema_is_structural(kind: crdgen.Kind) -> None:
    schema = crdgen.crd_manifest(kind)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    for path, node in walk(schema):
        assert not {"$ref", "anyOf", "oneOf", "allOf", "title"} & node.keys(), path
        assert "type" in node, f"{kind.kind}{path} has no type"
        if node["type"] == "object" and node.get("properties"):
            assert node.get("additionalProperties") is not False, path


@pytest.mark.parametrize("kind", crdgen.KINDS, ids=lambda k: k.kind)
def test_every_spec_field_is_described_for_kubectl_explain(kind: crdgen.Kind) -> None:
    schema = crdgen.crd_manifest(kind)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    spec = schema["properties"]["spec"]
    undocumented = [
        path
        for path, node in walk(spec, ".spec")
        if not path.endswith(("[]", "{}")) and not node.get("description")
    ]
    assert undocumented == []


@pytest.mark.parametrize("kind", crdgen.KINDS, ids=lambda k: k.kind)
def test_crd_has_status_subresource_printer_columns_and_category(kind: crdgen.Kind) -> None:
    crd = crdgen.crd_manifest(kind)
    version = crd["spec"]["versions"][0]
    assert version["subresources"] == {"status": {}}
    assert [c["name"] for c in version["additionalPrinterColumns"]][-1] == "Age"
    assert crd["spec"]["names"]["categories"] == ["identityrisk"]
    assert crd["spec"]["names"]["shortNames"]


def test_decision_spec_is_immutable_in_the_schema() -> None:
    kind = next(k for k in crdgen.KINDS if k.kind == "RiskDecision")
    spec = crdgen.crd_manifest(kind)["spec"]["versions"][0]["schema"]["openAPIV3Schema"][
        "properties"
    ]["spec"]
    assert {"rule": "self == oldSelf"}.items() <= spec["x-kubernetes-validations"][0].items()


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_examples_are_valid(path: Path) -> None:
    ours = [d for _, d in documents(path) if d["apiVersion"] == v1.API_VERSION]
    for doc in ours:
        parse(doc, source=str(path))


def test_enforce_example_has_the_four_bands_of_the_seed_document() -> None:
    ((_, doc),) = documents(ROOT / "examples" / "policy-enforce.yaml")
    policy = parse(doc)
    assert isinstance(policy, v1.IdentityRiskPolicy)
    bands = {b.name: [a.type for a in b.actions] for b in policy.spec.bands}
    assert list(bands) == ["low", "medium", "high", "critical"]
    assert ActionType.REQUIRE_APPROVAL in bands["medium"]
    assert {ActionType.REVOKE_TOKEN, ActionType.QUARANTINE_PODS} <= set(bands["high"])
    assert {ActionType.DENY_API_ACCESS, ActionType.ROTATE_SECRETS} <= set(bands["critical"])


@pytest.mark.parametrize("path", INVALID, ids=lambda p: p.name)
def test_invalid_manifests_are_rejected_naming_the_field(path: Path) -> None:
    ((_, doc),) = documents(path)
    with pytest.raises(ManifestError) as caught:
        parse(doc, source=path.name)
    assert expected_message(path) in str(caught.value)


def base_policy(**overrides: Any) -> dict[str, Any]:
    spec = {"bands": [{"name": "low", "minScore": 10}]} | overrides
    return {
        "apiVersion": v1.API_VERSION,
        "kind": "IdentityRiskPolicy",
        "metadata": {"name": "p"},
        "spec": spec,
    }


@pytest.mark.parametrize(
    ("action", "message"),
    [
        ({"type": "RequireApproval"}, "RequireApproval requires timeout"),
        ({"type": "Notify", "maxTokenSeconds": 900}, "maxTokenSeconds applies only to"),
        ({"type": "RevokeToken", "duration": "1h"}, "duration applies only to"),
        ({"type": "ShortenTokenTTL", "maxTokenSeconds": 60}, "greater than or equal to 600"),
        ({"type": "DenyAPIAccess", "duration": "forever"}, "should match pattern"),
    ],
    ids=[
        "approval-needs-timeout",
        "ttl-param-on-notify",
        "duration-on-revoke",
        "ttl-too-short",
        "bad-duration",
    ],
)
def test_action_parameters_must_fit_the_action(action: dict[str, Any], message: str) -> None:
    doc = base_policy(bands=[{"name": "low", "minScore": 10, "actions": [action]}])
    with pytest.raises(ManifestError, match=message):
        parse(doc)


def test_unknown_field_in_a_policy_is_an_error_not_ignored() -> None:
    with pytest.raises(ManifestError, match=r"spec.bandz: Extra inputs are not permitted"):
        parse(base_policy(bandz=[]))


def test_defaults_make_a_minimal_policy_safe() -> None:
    policy = parse(base_policy())
    assert isinstance(policy, v1.IdentityRiskPolicy)
    assert policy.spec.mode.value == "Audit"
    assert "kube-system" in policy.spec.safeguards.protected_namespaces


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90s", 90), ("15m", 900), ("1h30m", 5400), ("2d", 172800), ("250ms", 0.25)],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert v1.parse_duration(text).total_seconds() == seconds


@pytest.mark.parametrize("text", ["", "1", "h", "1x", "-1s", "1.5h"])
def test_parse_duration_rejects_nonsense(text: str) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        v1.parse_duration(text)


@pytest.mark.parametrize(
    ("labels", "selector", "matches"),
    [
        ({"a": "1"}, {}, True),
        ({"a": "1"}, {"matchLabels": {"a": "1"}}, True),
        ({"a": "2"}, {"matchLabels": {"a": "1"}}, False),
        ({"a": "1"}, {"matchExpressions": [{"key": "a", "operator": "In", "values": ["1"]}]}, True),
        ({}, {"matchExpressions": [{"key": "a", "operator": "NotIn", "values": ["1"]}]}, True),
        ({}, {"matchExpressions": [{"key": "a", "operator": "Exists"}]}, False),
        ({"a": "x"}, {"matchExpressions": [{"key": "a", "operator": "DoesNotExist"}]}, False),
    ],
    ids=[
        "empty",
        "labels-hit",
        "labels-miss",
        "in",
        "notin-absent",
        "exists-absent",
        "doesnotexist-present",
    ],
)
def test_label_selector_semantics(
    labels: dict[str, str], selector: dict[str, Any], matches: bool
) -> None:
    assert v1.LabelSelector.model_validate(selector).matches(labels) is matches
