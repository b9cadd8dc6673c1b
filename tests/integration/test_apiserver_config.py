"""config/apiserver/ is the one source of the apiserver wiring, for kind and for the tests alike.

These checks need no cluster: they read the files.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from identity_risk.testing.controlplane import (
    CONFIG_DIR,
    KIND_AUDIT_WEBHOOK_BASE,
    KIND_CONFIG_DIR,
    KIND_PKI_DIR,
    KIND_WEBHOOK_BASE,
    TEMPLATES,
    render_apiserver_config,
)

ROOT = Path(__file__).resolve().parents[2]


def kind_config() -> dict[str, Any]:
    config: dict[str, Any] = yaml.safe_load((ROOT / "kind-config.yaml").read_text())
    return config


def kubeadm_patch() -> dict[str, Any]:
    (node,) = [n for n in kind_config()["nodes"] if n["role"] == "control-plane"]
    (patch,) = node["kubeadmConfigPatches"]
    parsed: dict[str, Any] = yaml.safe_load(patch)
    return parsed


def test_kind_mounts_config_apiserver_at_the_path_the_files_reference() -> None:
    (node,) = [n for n in kind_config()["nodes"] if n["role"] == "control-plane"]
    mounts = {m["containerPath"] + "/": m["hostPath"] for m in node["extraMounts"]}
    assert (ROOT / mounts[KIND_CONFIG_DIR]).resolve() == CONFIG_DIR
    assert KIND_PKI_DIR in mounts


def test_every_file_the_apiserver_is_given_in_kind_exists_in_config_apiserver() -> None:
    args = {a["name"]: a["value"] for a in kubeadm_patch()["apiServer"]["extraArgs"]}
    files = [v for v in args.values() if v.startswith(KIND_CONFIG_DIR)]
    assert len(files) == 4
    for value in files:
        assert (CONFIG_DIR / value.removeprefix(KIND_CONFIG_DIR)).is_file(), value
    assert args["audit-webhook-mode"] == "batch"
    volumes = {v["mountPath"] for v in kubeadm_patch()["apiServer"]["extraVolumes"]}
    assert volumes == {KIND_CONFIG_DIR.rstrip("/"), KIND_PKI_DIR.rstrip("/")}


def test_files_referenced_inside_config_apiserver_exist() -> None:
    for name in TEMPLATES:
        for line in (CONFIG_DIR / name).read_text().splitlines():
            if KIND_CONFIG_DIR in line:
                ref = line.split(KIND_CONFIG_DIR, 1)[1].strip()
                assert (CONFIG_DIR / ref).is_file(), f"{name} references missing {ref}"


def test_authorization_webhook_sits_before_rbac_and_only_sees_service_accounts() -> None:
    config = yaml.safe_load((CONFIG_DIR / "authorization-config.yaml").read_text())
    order = [a["type"] for a in config["authorizers"]]
    assert order.index("Webhook") < order.index("RBAC")
    (webhook,) = [a["webhook"] for a in config["authorizers"] if a["type"] == "Webhook"]
    assert webhook["failurePolicy"] == "NoOpinion"
    assert webhook["cacheUnauthorizedRequests"] is False
    assert webhook["subjectAccessReviewVersion"] == "v1"
    assert webhook["matchConditionSubjectAccessReviewVersion"] == "v1"
    assert webhook["matchConditions"] == [
        {"expression": "request.user.startsWith('system:serviceaccount:')"}
    ]


@pytest.mark.parametrize("name", TEMPLATES)
def test_rendering_replaces_every_kind_specific_string(tmp_path: Path, name: str) -> None:
    rendered = render_apiserver_config(
        target=tmp_path / "config", pki_dir=tmp_path / "pki", webhook_base_url="https://127.0.0.1:1"
    )
    text = rendered[name].read_text()
    for kind_only in (KIND_CONFIG_DIR, KIND_PKI_DIR, KIND_WEBHOOK_BASE, KIND_AUDIT_WEBHOOK_BASE):
        assert kind_only not in text
    yaml.safe_load(text)
