"""RecreateServiceAccount's pure half: what the new ServiceAccount keeps of the old one."""

from __future__ import annotations

from typing import Any

from identity_risk.enforce.recreate import RECREATED_BY_ANNOTATION, successor


def make_service_account(**fields: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {
            "name": "checkout",
            "namespace": "shop",
            "uid": "old-uid",
            "resourceVersion": "42",
            "creationTimestamp": "2026-12-01T00:00:00Z",
            "labels": {"app": "checkout"},
            "annotations": {"identityrisk.dev/owner": "team@example.com"},
        },
        **fields,
    }


def test_the_successor_keeps_name_labels_annotations_and_token_settings() -> None:
    old = make_service_account(
        imagePullSecrets=[{"name": "registry"}], automountServiceAccountToken=False
    )
    new = successor(old, decision="shop/checkout-high-1")
    assert new["metadata"] == {
        "name": "checkout",
        "namespace": "shop",
        "labels": {"app": "checkout"},
        "annotations": {
            "identityrisk.dev/owner": "team@example.com",
            RECREATED_BY_ANNOTATION: "shop/checkout-high-1",
        },
    }
    assert new["imagePullSecrets"] == [{"name": "registry"}]
    assert new["automountServiceAccountToken"] is False


def test_the_successor_drops_identity_and_legacy_token_secrets() -> None:
    new = successor(make_service_account(secrets=[{"name": "checkout-token-abcde"}]), decision="d")
    assert "uid" not in new["metadata"]
    assert "resourceVersion" not in new["metadata"]
    assert "secrets" not in new
    assert "automountServiceAccountToken" not in new  # unset stays unset
