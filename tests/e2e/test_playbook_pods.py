"""The playbook's pod- and credential-level actions, end to end: QuarantinePods, RotateSecrets,
RecreateServiceAccount.

Each test plays a stolen-token replay in a namespace whose mode label selects a policy ordering
the action (``harness.POLICIES``), then asserts on what the API server holds afterwards. The test
control plane has no network plugin: quarantine is checked by its objects (the NetworkPolicy and
the labels), not by dropped packets.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID
from harness import Operated

from identity_risk.api import v1alpha1 as v1
from identity_risk.enforce.actions import ActionContext, Blocks
from identity_risk.enforce.playbook import RELEASERS
from identity_risk.enforce.quarantine import QUARANTINE_LABEL
from identity_risk.kube import Kube, load_api_client
from identity_risk.testing.scenario import (
    ATTACKER_IP,
    deploy_workload,
    pod_token,
    read_configmaps,
    running_pod,
    wait_for,
)

pytestmark = pytest.mark.integration


def replayed(operated: Operated, mode: str, *, name: str = "checkout") -> dict[str, Any]:
    """A workload whose pod token is used normally, then replayed from the attacker."""
    api = operated.api
    namespace = operated.namespace(mode)
    deploy_workload(api, namespace=namespace, name=name, labels=operated.labels(mode))
    pod = running_pod(api, namespace=namespace, app=name)
    token = pod_token(api, pod)
    pod_ip = pod["status"]["podIP"]
    for _ in range(3):
        assert read_configmaps(api, namespace=namespace, token=token, source_ip=pod_ip) == 200
    return {"namespace": namespace, "pod": pod, "token": token, "pod_ip": pod_ip, "name": name}


def replay(operated: Operated, world: dict[str, Any]) -> dict[str, Any]:
    """Replay the token from the attacker's address; the finished RiskDecision in band high."""
    read_configmaps(
        operated.api, namespace=world["namespace"], token=world["token"], source_ip=ATTACKER_IP
    )

    def finished() -> dict[str, Any] | None:
        items = (operated.custom("riskdecisions", world["namespace"]) or {}).get("items", [])
        done = [
            d
            for d in items
            if d["spec"]["band"] == "high"  # a 'low' decision (Notify only) may come first
            and (d.get("status") or {}).get("phase") in ("Enforced", "Failed")
        ]
        return done[0] if done else None

    decision: dict[str, Any] = wait_for("a finished 'high' RiskDecision", finished, timeout=30)
    return decision


def outcome(decision: dict[str, Any], action: str) -> dict[str, Any]:
    found: dict[str, Any] = {a["type"]: a for a in decision["status"]["actions"]}[action]
    return found


def admin_context(operated: Operated) -> ActionContext:
    kube = Kube(load_api_client(kubeconfig=str(operated.state.kubeconfig)))
    return ActionContext(
        kube=kube, blocks=Blocks(), clock=lambda: datetime.now(UTC), policies=lambda _: None
    )


# --- QuarantinePods ------------------------------------------------------------------------------


def test_quarantine_labels_the_pods_and_isolates_them_with_an_owned_network_policy(
    operated: Operated,
) -> None:
    api = operated.api
    world = replayed(operated, "quarantine")
    namespace, pod_name = world["namespace"], world["pod"]["metadata"]["name"]
    decision = replay(operated, world)
    assert outcome(decision, "QuarantinePods")["phase"] == "Succeeded"

    name = decision["metadata"]["name"]
    policies = api.get(f"/apis/networking.k8s.io/v1/namespaces/{namespace}/networkpolicies")
    assert policies is not None
    [policy] = policies["items"]
    assert policy["spec"]["podSelector"] == {"matchLabels": {QUARANTINE_LABEL: name}}
    assert sorted(policy["spec"]["policyTypes"]) == ["Egress", "Ingress"]
    assert not policy["spec"].get("ingress")
    # allowDNS: the only egress is port 53, UDP and TCP, to anywhere
    [egress] = policy["spec"]["egress"]
    assert "to" not in egress
    assert sorted((p["protocol"], p["port"]) for p in egress["ports"]) == [
        ("TCP", 53),
        ("UDP", 53),
    ]
    [owner] = policy["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["name"], owner["uid"]) == (
        "RiskDecision",
        name,
        decision["metadata"]["uid"],
    )
    # The pod is labelled and still there (kept for forensics), not evicted.
    pod = api.get(f"/api/v1/namespaces/{namespace}/pods/{pod_name}")
    assert pod is not None
    assert pod["metadata"]["labels"][QUARANTINE_LABEL] == name
    assert not pod["metadata"].get("deletionTimestamp")
    assert pod["metadata"]["uid"] == world["pod"]["metadata"]["uid"]


def test_releasing_a_quarantine_restores_the_pods_and_removes_the_policy(
    operated: Operated,
) -> None:
    api = operated.api
    world = replayed(operated, "quarantine")
    namespace, pod_name = world["namespace"], world["pod"]["metadata"]["name"]
    before = world["pod"]["metadata"]["labels"]
    decision = replay(operated, world)

    obj = v1.RiskDecision.model_validate(decision)
    assert obj.status is not None
    recorded = next(a for a in obj.status.actions if a.type.value == "QuarantinePods")
    released = RELEASERS[recorded.type](admin_context(operated), recorded, obj)
    assert released.phase is v1.ActionPhase.RELEASED

    pod = api.get(f"/api/v1/namespaces/{namespace}/pods/{pod_name}")
    assert pod is not None
    assert pod["metadata"]["labels"] == before
    policies = api.get(f"/apis/networking.k8s.io/v1/namespaces/{namespace}/networkpolicies")
    assert policies is not None
    assert policies["items"] == []
    # Releasing twice is harmless (a crash during release is replayed).
    again = RELEASERS[recorded.type](admin_context(operated), recorded, obj)
    assert again.phase is v1.ActionPhase.RELEASED


def test_releasing_leaves_a_label_a_later_decision_put_on_the_pod(operated: Operated) -> None:
    api = operated.api
    world = replayed(operated, "quarantine")
    namespace, pod_name = world["namespace"], world["pod"]["metadata"]["name"]
    decision = replay(operated, world)
    pod_path = f"/api/v1/namespaces/{namespace}/pods/{pod_name}"
    status, _ = api.call(
        "PATCH",
        pod_path,
        {"metadata": {"labels": {QUARANTINE_LABEL: "a-later-decision"}}},
        content_type="application/merge-patch+json",
    )
    assert status == 200

    obj = v1.RiskDecision.model_validate(decision)
    assert obj.status is not None
    recorded = next(a for a in obj.status.actions if a.type.value == "QuarantinePods")
    released = RELEASERS[recorded.type](admin_context(operated), recorded, obj)

    assert f"label pod {namespace}/{pod_name}: label kept" in released.changed
    pod = api.get(pod_path)
    assert pod is not None
    assert pod["metadata"]["labels"][QUARANTINE_LABEL] == "a-later-decision"


# --- RotateSecrets -------------------------------------------------------------------------------

MARKER = "planted-marker-7f3a9c"


def make_ca_secret(name: str) -> tuple[dict[str, Any], x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "e2e CA")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(key, hashes.SHA256())
    )
    pem_key = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    body = secret(
        name,
        {"tls.crt": cert.public_bytes(serialization.Encoding.PEM), "tls.key": pem_key},
        kind="kubernetes.io/tls",
    )
    return body, cert


def secret(
    name: str, data: dict[str, bytes], *, rotate: str = "", kind: str = "Opaque"
) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": name,
            "annotations": {"identityrisk.dev/rotate": rotate} if rotate else {},
        },
        "type": kind,
        "data": {k: base64.b64encode(v).decode() for k, v in data.items()},
    }


def data_of(operated: Operated, namespace: str, name: str) -> dict[str, bytes]:
    found = operated.api.get(f"/api/v1/namespaces/{namespace}/secrets/{name}")
    assert found is not None
    return {k: base64.b64decode(v) for k, v in (found.get("data") or {}).items()}


def consuming_workload(operated: Operated, mode: str, secrets: list[dict[str, Any]]) -> str:
    """A namespace with ``secrets`` and a Deployment (``checkout``) that mounts or reads each."""
    api = operated.api
    namespace = operated.namespace(mode)
    api.create(
        "/api/v1/namespaces",
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": namespace, "labels": operated.labels(mode)},
        },
    )
    api.create(
        f"/api/v1/namespaces/{namespace}/serviceaccounts",
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "checkout"}},
    )
    for body in secrets:
        api.create(f"/api/v1/namespaces/{namespace}/secrets", body)
    names = [s["metadata"]["name"] for s in secrets if s["metadata"]["annotations"]]
    env_secret, mounted = names[0], names[1:]
    api.create(
        f"/apis/apps/v1/namespaces/{namespace}/deployments",
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "checkout"},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": {"app": "checkout"}},
                "template": {
                    "metadata": {"labels": {"app": "checkout"}},
                    "spec": {
                        "serviceAccountName": "checkout",
                        "containers": [
                            {
                                "name": "app",
                                "image": "example.com/checkout:1.4",
                                "envFrom": [{"secretRef": {"name": env_secret}}],
                            }
                        ],
                        "volumes": [{"name": n, "secret": {"secretName": n}} for n in mounted],
                    },
                },
            },
        },
    )
    deploy_workload(api, namespace=namespace, name="checkout", labels=operated.labels(mode))
    return namespace


def test_rotation_regenerates_opted_in_secrets_and_rolls_their_consumers(
    operated: Operated,
) -> None:
    api = operated.api
    ca_body, ca_cert = make_ca_secret("root-ca")
    secrets = [
        secret(
            "db-password",
            {"value": MARKER.encode()},
            rotate='{"generator":"random","length":24,"encoding":"hex"}',
        ),
        secret("signing", {"private.pem": MARKER.encode()}, rotate='{"generator":"ed25519"}'),
        secret("deploy-key", {"private.pem": MARKER.encode()}, rotate='{"generator":"rsa"}'),
        secret(
            "api-tls",
            {"tls.crt": MARKER.encode(), "tls.key": MARKER.encode()},
            rotate='{"generator":"tls","ca":"root-ca","dnsNames":["api.example"]}',
        ),
        ca_body,
    ]
    namespace = consuming_workload(operated, "rotate", secrets)
    pod = running_pod(api, namespace=namespace, app="checkout")
    token = pod_token(api, pod)
    pod_ip = pod["status"]["podIP"]
    for _ in range(3):
        assert read_configmaps(api, namespace=namespace, token=token, source_ip=pod_ip) == 200
    ca_before = data_of(operated, namespace, "root-ca")

    decision = replay(operated, {"namespace": namespace, "token": token})
    rotated = outcome(decision, "RotateSecrets")
    assert rotated["phase"] == "Succeeded", rotated["message"]

    # Each opted-in secret has a new, valid value of its kind.
    password = data_of(operated, namespace, "db-password")["value"]
    assert len(bytes.fromhex(password.decode())) == 24
    signing = data_of(operated, namespace, "signing")
    assert isinstance(
        serialization.load_pem_private_key(signing["private.pem"], password=None),
        ed25519.Ed25519PrivateKey,
    )
    deploy_key = data_of(operated, namespace, "deploy-key")
    assert isinstance(
        serialization.load_pem_private_key(deploy_key["private.pem"], password=None),
        rsa.RSAPrivateKey,
    )
    tls = data_of(operated, namespace, "api-tls")
    leaf = x509.load_pem_x509_certificate(tls["tls.crt"])
    leaf.verify_directly_issued_by(ca_cert)
    assert (
        leaf.public_key()
        == serialization.load_pem_private_key(tls["tls.key"], password=None).public_key()
    )
    assert data_of(operated, namespace, "root-ca") == ca_before  # not opted in: untouched

    # The consumer was evicted and its Deployment made a new pod.
    fresh = running_pod(api, namespace=namespace, app="checkout", exclude=pod["metadata"]["name"])
    assert fresh["metadata"]["uid"] != pod["metadata"]["uid"]
    old = api.get(f"/api/v1/namespaces/{namespace}/pods/{pod['metadata']['name']}")
    assert old is None or old["metadata"].get("deletionTimestamp")

    # Neither the planted value nor any new one is in the record, the Events or the log.
    events = api.get(f"/api/v1/namespaces/{namespace}/events") or {}
    decisions = operated.custom("riskdecisions", namespace) or {}
    records = [
        json.dumps(decisions),
        json.dumps(events),
        operated.operator.decision_log.read_text(),
        operated.operator.log_tail(lines=100_000),
    ]
    new_values = [password, signing["private.pem"], deploy_key["private.pem"], tls["tls.key"]]
    for text in records:
        assert MARKER not in text
        for value in new_values:
            assert value.decode() not in text
            assert base64.b64encode(value).decode() not in text
    assert "db-password" in json.dumps(rotated["changed"])


# --- RecreateServiceAccount ----------------------------------------------------------------------


def account_token(operated: Operated, namespace: str, name: str) -> str:
    """A token of the ServiceAccount bound to nothing but the account itself."""
    status, body = operated.api.call(
        "POST",
        f"/api/v1/namespaces/{namespace}/serviceaccounts/{name}/token",
        {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {"audiences": []},
        },
    )
    assert status == 201, body
    token: str = body["status"]["token"]
    return token


def test_recreating_the_service_account_kills_every_old_token_and_new_pods_work(
    operated: Operated,
) -> None:
    api = operated.api
    world = replayed(operated, "recreate")
    namespace, pod = world["namespace"], world["pod"]
    path = f"/api/v1/namespaces/{namespace}/serviceaccounts/checkout"
    status, _ = api.call(
        "PATCH",
        path,
        {
            "metadata": {"labels": {"team": "payments"}, "annotations": {"note": "kept"}},
            "imagePullSecrets": [{"name": "registry"}],
            "automountServiceAccountToken": False,
        },
        content_type="application/merge-patch+json",
    )
    assert status == 200
    before = api.get(path)
    assert before is not None
    unbound = account_token(operated, namespace, "checkout")
    assert read_configmaps(api, namespace=namespace, token=unbound, source_ip=ATTACKER_IP) == 200

    decision = replay(operated, world)
    recreated = outcome(decision, "RecreateServiceAccount")
    assert recreated["phase"] == "Succeeded", recreated["message"]

    after = api.get(path)
    assert after is not None
    assert after["metadata"]["uid"] != before["metadata"]["uid"]
    assert after["metadata"]["labels"] == before["metadata"]["labels"]
    assert after["metadata"]["annotations"]["note"] == "kept"
    assert after["imagePullSecrets"] == [{"name": "registry"}]
    assert after["automountServiceAccountToken"] is False

    # Tokens of the old UID stop authenticating (after the apiserver's ~10 s cache of successes),
    # the stolen pod-bound one and one bound to the account alone.
    def rejected(token: str, source_ip: str) -> bool:
        return read_configmaps(api, namespace=namespace, token=token, source_ip=source_ip) == 401

    wait_for("the account-bound token to be rejected", lambda: rejected(unbound, "127.0.0.1"))
    wait_for("the stolen token to be rejected", lambda: rejected(world["token"], world["pod_ip"]))

    # The pod was evicted; the new one gets a token of the new account that works.
    fresh = running_pod(api, namespace=namespace, app="checkout", exclude=pod["metadata"]["name"])
    token = pod_token(api, fresh)
    ip = fresh["status"]["podIP"]
    assert read_configmaps(api, namespace=namespace, token=token, source_ip=ip) == 200
