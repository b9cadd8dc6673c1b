"""Posture: effective RBAC permissions, privilege level, and configuration risks of an identity."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from builders import (
    FAST_WARMUP,
    T0,
    WEB,
    group_subject,
    make_cluster_role,
    make_cluster_role_binding,
    make_inventory,
    make_node,
    make_pod,
    make_role,
    make_role_binding,
    make_rule,
    make_secret,
    sa_subject,
)

from identity_risk.domain import Confidence, Identity, SignalKind
from identity_risk.signals import (
    Detectors,
    IdentityState,
    Inventory,
    PrivilegeLevel,
    SignalType,
    effective_permissions,
    posture,
    privilege_level,
)

RBAC = "rbac.authorization.k8s.io"


def cluster_grant(*rules: dict[str, Any], name: str = "extra") -> list[dict[str, Any]]:
    """A ClusterRole with ``rules`` bound cluster-wide to shop/web."""
    return [make_cluster_role(name=name, rules=list(rules)),
            make_cluster_role_binding(name=name, role=name)]  # fmt: skip


def namespace_grant(*rules: dict[str, Any], namespace: str = "shop") -> list[dict[str, Any]]:
    """A Role in ``namespace`` with ``rules`` bound to shop/web."""
    return [make_role(name="extra", namespace=namespace, rules=list(rules)),
            make_role_binding(name="extra", namespace=namespace, role="extra",
                              subjects=[sa_subject()])]  # fmt: skip


def types(objects: list[dict[str, Any]]) -> set[str]:
    return {s.type for s in posture(WEB, make_inventory(*objects), now=T0)}


# --- risky permissions -----------------------------------------------------------------------

RISKY = [
    pytest.param(cluster_grant(make_rule(["*"], ["*"], api_groups=["*"])),
                 SignalType.CLUSTER_ADMIN, id="star-star-star"),
    pytest.param([make_cluster_role_binding(name="admin", role="cluster-admin")],
                 SignalType.CLUSTER_ADMIN, id="cluster-admin-binding"),
    pytest.param(namespace_grant(make_rule(["*"], ["configmaps"])),
                 SignalType.WILDCARD_PERMISSION, id="wildcard-verbs"),
    pytest.param(cluster_grant(make_rule(["list"], ["secrets"])),
                 SignalType.SECRETS_CLUSTER_WIDE, id="secrets-cluster-wide"),
    pytest.param(namespace_grant(make_rule(["create"], ["pods/exec"])),
                 SignalType.POD_EXEC_PERMISSION, id="pods-exec"),
    pytest.param(namespace_grant(make_rule(["get"], ["pods/attach"])),
                 SignalType.POD_EXEC_PERMISSION, id="pods-attach"),
    pytest.param(namespace_grant(make_rule(["create"], ["deployments"], api_groups=["apps"])),
                 SignalType.WORKLOAD_CREATE_PERMISSION, id="create-deployments"),
    pytest.param(cluster_grant(make_rule(["bind"], ["clusterroles"], api_groups=[RBAC])),
                 SignalType.ESCALATE_PERMISSION, id="bind"),
    pytest.param(cluster_grant(make_rule(["impersonate"], ["users"])),
                 SignalType.ESCALATE_PERMISSION, id="impersonate"),
    pytest.param(namespace_grant(make_rule(["create"], ["rolebindings"], api_groups=[RBAC])),
                 SignalType.RBAC_WRITE_PERMISSION, id="write-rolebindings"),
    pytest.param(namespace_grant(make_rule(["create"], ["serviceaccounts/token"])),
                 SignalType.TOKEN_CREATE_PERMISSION, id="token-create"),
    pytest.param(cluster_grant(make_rule(["get"], ["nodes/proxy"])),
                 SignalType.NODES_PROXY_PERMISSION, id="nodes-proxy"),
    pytest.param(cluster_grant(make_rule(["update"], ["certificatesigningrequests/approval"],
                                         api_groups=["certificates.k8s.io"])),
                 SignalType.CSR_APPROVAL_PERMISSION, id="csr-approval"),
    pytest.param(cluster_grant(make_rule(["patch"], ["validatingwebhookconfigurations"],
                                         api_groups=["admissionregistration.k8s.io"])),
                 SignalType.WEBHOOK_CONFIG_PERMISSION, id="webhook-configurations"),
    pytest.param(cluster_grant(make_rule(["create"], ["*/exec"])),
                 SignalType.POD_EXEC_PERMISSION, id="star-slash-subresource"),
]  # fmt: skip


@pytest.mark.parametrize(("objects", "expected"), RISKY)
def test_risky_permission_is_flagged(objects: list[dict[str, Any]], expected: SignalType) -> None:
    signals = {s.type: s for s in posture(WEB, make_inventory(*objects), now=T0)}

    signal = signals[expected]
    assert signal.kind is SignalKind.POSTURE
    assert signal.confidence is Confidence.LOW
    assert signal.evidence["grantedVia"]


def test_default_read_only_role_has_no_risky_permission() -> None:
    assert types([]) == set()


@pytest.mark.parametrize(
    "objects",
    [
        pytest.param(namespace_grant(make_rule(["get", "list"], ["secrets"])),
                     id="secrets-in-one-namespace"),
        pytest.param(namespace_grant(make_rule(["create"], ["configmaps"])), id="create-configmaps"),
        pytest.param(cluster_grant(make_rule(["get"], ["nodes"])), id="read-nodes"),
        pytest.param([make_cluster_role(name="x", rules=[make_rule(["*"], ["*"], api_groups=["*"])]),
                      make_cluster_role_binding(name="x", role="x",
                                                subjects=[sa_subject(name="other")])],
                     id="bound-to-someone-else"),
    ],
)  # fmt: skip
def test_look_alike_permission_is_not_flagged(objects: list[dict[str, Any]]) -> None:
    assert types(objects) == set()


# --- how grants reach an identity ------------------------------------------------------------


@pytest.mark.parametrize(
    "subject",
    [
        pytest.param(group_subject("system:serviceaccounts"), id="all-service-accounts"),
        pytest.param(group_subject("system:serviceaccounts:shop"), id="namespace-group"),
        pytest.param(group_subject("system:authenticated"), id="authenticated"),
        pytest.param({"kind": "User", "name": "system:serviceaccount:shop:web"}, id="user-name"),
    ],
)
def test_group_and_user_subjects_grant_to_service_account(subject: dict[str, Any]) -> None:
    objects = [
        make_cluster_role(name="reader", rules=[make_rule(["list"], ["secrets"])]),
        make_cluster_role_binding(name="reader", role="reader", subjects=[subject]),
    ]

    assert SignalType.SECRETS_CLUSTER_WIDE in types(objects)


def test_other_namespace_group_does_not_grant() -> None:
    objects = [
        make_cluster_role(name="reader", rules=[make_rule(["list"], ["secrets"])]),
        make_cluster_role_binding(
            name="reader", role="reader", subjects=[group_subject("system:serviceaccounts:other")]
        ),
    ]

    assert types(objects) == set()


def test_aggregated_cluster_role_includes_selected_roles() -> None:
    objects = [
        make_cluster_role(name="monitoring", aggregate_from=[{"rbac.example.com/aggregate": "true"}]),
        make_cluster_role(name="secret-reader", labels={"rbac.example.com/aggregate": "true"},
                          rules=[make_rule(["watch"], ["secrets"])]),
        make_cluster_role(name="unrelated", rules=[make_rule(["*"], ["*"], api_groups=["*"])]),
        make_cluster_role_binding(name="monitoring", role="monitoring"),
    ]  # fmt: skip

    assert types(objects) == {SignalType.SECRETS_CLUSTER_WIDE}


def test_cluster_role_bound_in_a_namespace_is_namespaced() -> None:
    objects = [
        make_cluster_role(name="reader", rules=[make_rule(["list"], ["secrets"])]),
        make_role_binding(name="reader", role="reader", role_kind="ClusterRole"),
    ]
    permissions = effective_permissions(WEB, make_inventory(*objects))

    assert permissions.allows("list", "secrets", namespace="shop") is not None
    assert permissions.allows("list", "secrets", namespace="payments") is None
    assert SignalType.SECRETS_CLUSTER_WIDE not in permissions.risky_patterns()


# --- privilege level -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("objects", "level"),
    [
        pytest.param([], PrivilegeLevel.READ, id="read-only"),
        pytest.param(namespace_grant(make_rule(["update"], ["configmaps"])), PrivilegeLevel.WRITE,
                     id="namespaced-write"),
        pytest.param(namespace_grant(make_rule(["get"], ["secrets"])), PrivilegeLevel.SENSITIVE,
                     id="namespaced-secrets"),
        pytest.param(namespace_grant(make_rule(["create"], ["serviceaccounts/token"])),
                     PrivilegeLevel.ESCALATION, id="token-create"),
        pytest.param([make_cluster_role_binding(name="a", role="cluster-admin")],
                     PrivilegeLevel.ADMIN, id="cluster-admin"),
    ],
)  # fmt: skip
def test_privilege_level(objects: list[dict[str, Any]], level: PrivilegeLevel) -> None:
    assert privilege_level(WEB, make_inventory(*objects)) is level


def test_built_in_grants_to_every_authenticated_user_stay_read_only() -> None:
    basic_user = make_cluster_role(
        name="system:basic-user",
        rules=[make_rule(["create"], ["selfsubjectaccessreviews", "selfsubjectrulesreviews"],
                         api_groups=["authorization.k8s.io"])],
    )  # fmt: skip
    discovery = {**make_cluster_role(name="system:discovery"),
                 "rules": [{"nonResourceURLs": ["/api", "/apis", "/version"], "verbs": ["get"]}]}  # fmt: skip
    objects = [
        basic_user,
        discovery,
        *(make_cluster_role_binding(name=r["metadata"]["name"], role=r["metadata"]["name"],
                                    subjects=[group_subject("system:authenticated")])
          for r in (basic_user, discovery)),
    ]  # fmt: skip
    nobody = Identity("shop", "nobody")

    assert privilege_level(nobody, make_inventory(*objects)) is PrivilegeLevel.READ
    assert posture(nobody, make_inventory(*objects), now=T0) == []


def test_identity_without_bindings_has_no_privilege() -> None:
    assert privilege_level(Identity("shop", "nobody"), make_inventory()) is PrivilegeLevel.NONE


def test_cluster_admin_outranks_read_only() -> None:
    admin = make_inventory(make_cluster_role_binding(name="a", role="cluster-admin"))

    assert privilege_level(WEB, admin) > privilege_level(WEB, make_inventory())


# --- configuration risks ---------------------------------------------------------------------


def test_service_account_shared_by_many_workloads() -> None:
    pods = [make_pod(name=f"{app}-1", uid=f"uid-{app}", owner=("ReplicaSet", f"{app}-7d9f8"))
            for app in ("web", "cart", "search")]  # fmt: skip

    signals = {s.type: s for s in posture(WEB, make_inventory(*pods), now=T0)}

    assert signals[SignalType.SHARED_SERVICE_ACCOUNT].owasp_nhi == "NHI9"
    assert "Deployment/cart" in signals[SignalType.SHARED_SERVICE_ACCOUNT].evidence["workloads"]


def test_replicas_of_one_workload_are_not_sharing() -> None:
    pods = [make_pod(name=f"web-{i}", uid=f"uid-{i}") for i in range(5)]

    assert SignalType.SHARED_SERVICE_ACCOUNT not in types(pods)


def test_default_service_account_in_use() -> None:
    default = Identity("shop", "default")
    inventory = make_inventory(make_pod(name="legacy-1", uid="legacy", sa="default"))

    assert {s.type for s in posture(default, inventory, now=T0)} == {
        SignalType.DEFAULT_SERVICE_ACCOUNT
    }


def test_legacy_token_secret() -> None:
    signals = posture(WEB, make_inventory(make_secret(name="web-token")), now=T0)

    assert [(s.type, s.owasp_nhi) for s in signals] == [(SignalType.LEGACY_TOKEN_SECRET, "NHI7")]
    assert signals[0].evidence["secret"] == "shop/web-token"


@pytest.mark.parametrize(
    "secret",
    [
        pytest.param(make_secret(type="Opaque"), id="opaque"),
        pytest.param(make_secret(sa="other"), id="other-service-account"),
        pytest.param(make_secret(namespace="payments"), id="other-namespace"),
    ],
)
def test_other_secrets_are_not_legacy_tokens(secret: dict[str, Any]) -> None:
    assert types([secret]) == set()


@pytest.mark.parametrize(
    ("seconds", "fires"), [pytest.param(7 * 86400, True, id="a-week"),
                           pytest.param(3607, False, id="default-hour")],
)  # fmt: skip
def test_long_projected_token_lifetime(seconds: int, fires: bool) -> None:
    inventory = make_inventory(make_pod(token_expiration=seconds), defaults=False)

    assert (
        SignalType.LONG_TOKEN_LIFETIME in {s.type for s in posture(WEB, inventory, now=T0)}
    ) is fires


def _unused(*, days: float, automount: bool | None = None, requests: int = 0) -> bool:
    inventory = make_inventory(make_pod(automount=automount), defaults=False)
    state = IdentityState.new(WEB, now=T0)
    state.requests = requests
    now = T0 + timedelta(days=days)
    signals = Detectors(config=FAST_WARMUP).posture(WEB, inventory, now=now, state=state)
    return SignalType.UNUSED_AUTOMOUNTED_TOKEN in {s.type for s in signals}


@pytest.mark.parametrize(
    ("kwargs", "fires"),
    [
        pytest.param({"days": 2}, True, id="mounted-never-used"),
        pytest.param({"days": 2, "requests": 3}, False, id="used"),
        pytest.param({"days": 2, "automount": False}, False, id="not-mounted"),
        pytest.param({"days": 0.001}, False, id="not-observed-long-enough"),
    ],
)
def test_automounted_token_never_used(kwargs: dict[str, Any], fires: bool) -> None:
    assert _unused(**kwargs) is fires


def test_posture_is_deterministic_and_sorted() -> None:
    inventory = make_inventory(
        make_secret(), make_cluster_role_binding(name="a", role="cluster-admin")
    )

    first, second = posture(WEB, inventory, now=T0), posture(WEB, inventory, now=T0)

    assert first == second
    assert [s.type for s in first] == sorted(s.type for s in first)


# --- the inventory ---------------------------------------------------------------------------


def test_inventory_never_keeps_secret_values() -> None:
    secret = make_secret(data={"token": "c3VwZXItc2VjcmV0"},
                         annotations={"kubectl.kubernetes.io/last-applied-configuration":
                                      '{"data": {"token": "c3VwZXItc2VjcmV0"}}'})  # fmt: skip
    inventory = Inventory.from_objects([{**secret, "stringData": {"password": "hunter2"}}])

    assert "c3VwZXItc2VjcmV0" not in repr(inventory)
    assert "hunter2" not in repr(inventory)
    assert inventory.secrets[0].service_account == "web"


def test_inventory_reads_lists_and_node_pod_cidrs() -> None:
    inventory = Inventory.from_objects(
        [{"kind": "PodList", "items": [make_pod()]},
         {"kind": "NodeList", "items": [{k: v for k, v in make_node().items() if k != "kind"}]}]
    )  # fmt: skip

    assert inventory.pod_by_uid(make_pod()["metadata"]["uid"]) is not None
    assert inventory.pod_cidrs == ("10.244.1.0/24",)


@pytest.mark.parametrize(
    ("ip", "kind", "network"),
    [
        pytest.param("10.244.9.9", "pod", "10.244.0.0/16", id="pod"),
        pytest.param("192.168.10.11", "node", "192.168.10.0/24", id="node"),
        pytest.param("203.0.113.66", "external", "203.0.113.0/24", id="external-v4"),
        pytest.param("2001:db8::1", "external", "2001:db8::/64", id="external-v6"),
        pytest.param("not-an-ip", "unknown", "", id="garbage"),
    ],
)
def test_locate(ip: str, kind: str, network: str) -> None:
    location = make_inventory().locate(ip)

    assert (location.kind, location.network) == (kind, network)


def test_invalid_cidr_is_refused_with_its_value() -> None:
    with pytest.raises(ValueError, match=re.escape("10.0.0.0/33")):
        Inventory.from_objects([], pod_cidrs=["10.0.0.0/33"])


def test_malformed_objects_do_not_break_the_inventory() -> None:
    inventory = Inventory.from_objects(
        [{"kind": "Pod"}, {"kind": "Node", "status": "x"}, {"kind": "RoleBinding", "subjects": 3},
         "nonsense", {"kind": "Secret", "metadata": []}]  # type: ignore[list-item]
    )  # fmt: skip

    assert len(inventory.pods) == 1
    assert privilege_level(WEB, inventory) is PrivilegeLevel.NONE
