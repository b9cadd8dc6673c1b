"""The Helm chart, rendered: lint, template, the values schema, and what the manifests promise.

No cluster here (``helm install`` into the real control plane is in
``tests/integration/test_chart_install.py``); only the helm binary built by
``hack/controlplane/build.sh``. Each documented values combination is a file in
``charts/identity-risk/ci/``.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "identity-risk"
HELM = ROOT / ".cache" / "controlplane" / "v1.36.3" / "bin" / "helm"
COMBINATIONS = sorted((CHART / "ci").glob("*.yaml"))
NAMESPACE = "identity-risk"


def helm(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    if not HELM.exists():
        msg = f"helm missing ({HELM}); run hack/controlplane/build.sh"
        if os.environ.get("IDENTITY_RISK_REQUIRE_CONTROLPLANE"):
            pytest.fail(msg)
        pytest.skip(msg)
    result = subprocess.run(
        [str(HELM), *args], capture_output=True, text=True, timeout=60, check=False
    )
    if check and result.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} failed:\n{result.stdout}{result.stderr}")
    return result


def render(*values: Path, sets: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    args = ["template", "identity-risk", str(CHART), "-n", NAMESPACE, "--include-crds"]
    for path in values:
        args += ["-f", str(path)]
    for item in sets:
        args += ["--set", item]
    return [doc for doc in yaml.safe_load_all(helm(*args).stdout) if doc]


def one(docs: list[dict[str, Any]], kind: str, name: str = "") -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == kind and (not name or d["metadata"]["name"] == name)]
    assert len(found) == 1, f"expected one {kind} {name}, got {len(found)}"
    return found[0]


def kinds(docs: list[dict[str, Any]]) -> set[str]:
    return {d["kind"] for d in docs}


# --- lint and template -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "values", [None, *COMBINATIONS], ids=["defaults", *(p.stem for p in COMBINATIONS)]
)
def test_helm_lint_passes(values: Path | None) -> None:
    args = ["lint", str(CHART), "--strict", "-n", NAMESPACE]
    if values is not None:
        args += ["-f", str(values)]
    result = helm(*args)
    assert "0 chart(s) failed" in result.stdout


@pytest.mark.parametrize(
    "values", [None, *COMBINATIONS], ids=["defaults", *(p.stem for p in COMBINATIONS)]
)
def test_helm_template_renders_the_operator(values: Path | None) -> None:
    docs = render(*([values] if values else []))
    assert {"Deployment", "ServiceAccount", "ClusterRole", "Role", "Service"} <= kinds(docs)
    assert len([d for d in docs if d["kind"] == "CustomResourceDefinition"]) == len(
        list((ROOT / "crds").glob("*.yaml"))
    )


def test_every_values_combination_is_documented() -> None:
    install = (ROOT / "docs" / "install.md").read_text()
    for path in COMBINATIONS:
        assert f"ci/{path.name}" in install, f"{path.name} is not described in docs/install.md"


# --- the schema ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "message"),
    [
        pytest.param("replicas: two", "at '/replicas': got string, want integer", id="type"),
        pytest.param("replicas: -1", "at '/replicas': minimum", id="replicas"),
        pytest.param("webhook: {tls: {mode: selfSigned}}", "at '/webhook/tls/mode'", id="tls-mode"),
        pytest.param(
            "webhook: {service: {type: NodePort, nodePort: 8443}}",
            "at '/webhook/service/nodePort': minimum",
            id="node-port",
        ),
        pytest.param("operator: {podCIDRs: [10.244.0.0]}", "at '/operator/podCIDRs/0'", id="cidr"),
        pytest.param(
            "networkPolicy: {enabeld: true}", "additional properties 'enabeld'", id="typo"
        ),
    ],
)
def test_wrong_values_fail_with_the_schema_message(
    tmp_path: Path, values: str, message: str
) -> None:
    bad = tmp_path / "values.yaml"
    bad.write_text(values + "\n")
    for command in ("template", "install"):
        args = [command, "identity-risk", str(CHART), "-f", str(bad)]
        if command == "install":
            args.append("--dry-run=client")
        result = helm(*args, check=False)
        assert result.returncode != 0
        assert "don't meet the specifications of the schema" in result.stderr
        assert message in result.stderr, result.stderr


def test_cert_manager_mode_requires_an_issuer() -> None:
    result = helm(
        "template",
        "identity-risk",
        str(CHART),
        "--set",
        "webhook.tls.mode=certManager",
        check=False,
    )
    assert result.returncode != 0
    assert "webhook.tls.certManager.issuerRef.name is required" in result.stderr


# --- CRDs ------------------------------------------------------------------------------------


def test_chart_crds_are_the_generated_crds_byte_for_byte() -> None:
    generated = {p.name: p.read_bytes() for p in (ROOT / "crds").glob("*.yaml")}
    shipped = {p.name: p.read_bytes() for p in (CHART / "crds").glob("*.yaml")}
    assert shipped.keys() == generated.keys()
    stale = sorted(name for name in generated if shipped[name] != generated[name])
    assert not stale, f"{stale} differ from crds/; run `make crds` (copies crds/ into the chart)"


# --- what the manifests promise ---------------------------------------------------------------


def test_the_operator_runs_non_root_read_only_without_capabilities() -> None:
    pod = one(render(), "Deployment")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    (container,) = pod["containers"]
    sc = container["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert "emptyDir" in volumes[mounts["/var/lib/identity-risk"]]  # the decision log
    assert "--decision-log=/var/lib/identity-risk/decisions.jsonl" in container["args"]


def test_the_operator_knows_its_own_namespace_and_service_account() -> None:
    docs = render()
    pod = one(docs, "Deployment")["spec"]["template"]["spec"]
    env = {
        e["name"]: e.get("valueFrom", {}).get("fieldRef", {}) for e in pod["containers"][0]["env"]
    }
    assert env["POD_NAMESPACE"]["fieldPath"] == "metadata.namespace"
    assert env["POD_SERVICE_ACCOUNT"]["fieldPath"] == "spec.serviceAccountName"
    assert pod["serviceAccountName"] == one(docs, "ServiceAccount")["metadata"]["name"]


def test_the_release_namespace_role_only_creates_secrets_and_holds_the_lease() -> None:
    role = one(render(), "Role")
    assert role["metadata"]["namespace"] == NAMESPACE
    assert role["rules"] == [
        {"apiGroups": [""], "resources": ["secrets"], "verbs": ["create"]},
        {
            "apiGroups": ["coordination.k8s.io"],
            "resources": ["leases"],
            "verbs": ["get", "create", "update"],
        },
    ]


def test_persistent_decision_log_uses_a_claim_and_recreate() -> None:
    docs = render(CHART / "ci" / "hardened-values.yaml")
    deployment = one(docs, "Deployment")
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    claim = one(docs, "PersistentVolumeClaim")
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    assert (
        volumes["decision-log"]["persistentVolumeClaim"]["claimName"] == (claim["metadata"]["name"])
    )


def test_mutating_webhooks_skip_kube_system_and_the_operators_namespace() -> None:
    docs = render(sets=("mutatingWebhook.excludeNamespaces={ci-runners}",))
    hooks = {h["name"]: h for h in one(docs, "MutatingWebhookConfiguration")["webhooks"]}
    assert set(hooks) == {"pods.identityrisk.dev", "riskapprovals.identityrisk.dev"}
    for hook in hooks.values():
        (expression,) = hook["namespaceSelector"]["matchExpressions"]
        assert expression["key"] == "kubernetes.io/metadata.name"
        assert expression["operator"] == "NotIn"
        assert set(expression["values"]) == {"kube-system", NAMESPACE, "ci-runners"}
        assert hook["sideEffects"] == "None"
        assert hook["clientConfig"]["service"]["path"] == "/mutate"
    assert hooks["pods.identityrisk.dev"]["failurePolicy"] == "Ignore"  # never blocks pods
    # An approval nobody stamped is never accepted: refuse it at admission instead.
    assert hooks["riskapprovals.identityrisk.dev"]["failurePolicy"] == "Fail"


def test_cert_manager_mode_issues_the_certificate_and_injects_the_ca() -> None:
    docs = render(CHART / "ci" / "cert-manager-values.yaml")
    certificate = one(docs, "Certificate")
    assert f"identity-risk-operator.{NAMESPACE}.svc" in certificate["spec"]["dnsNames"]
    hook = one(docs, "MutatingWebhookConfiguration")
    assert hook["metadata"]["annotations"]["cert-manager.io/inject-ca-from"] == (
        f"{NAMESPACE}/{certificate['metadata']['name']}"
    )
    assert "ServiceMonitor" in kinds(docs)


def test_kind_values_expose_the_webhooks_where_config_apiserver_points() -> None:
    docs = render(CHART / "ci" / "kind-values.yaml")
    for service_name, kubeconfig in (
        ("identity-risk-operator", "authorization-webhook.kubeconfig"),
        ("identity-risk-operator-audit", "audit-webhook.kubeconfig"),  # the leader only
    ):
        service = one(docs, "Service", service_name)
        assert service["spec"]["type"] == "NodePort"
        (port,) = service["spec"]["ports"]
        assert (
            f"https://127.0.0.1:{port['nodePort']}/"
            in (ROOT / "config" / "apiserver" / kubeconfig).read_text()
        )


def test_network_policy_opens_only_the_webhook_port() -> None:
    policy = one(render(), "NetworkPolicy")["spec"]
    assert policy["policyTypes"] == ["Ingress"]
    (rule,) = policy["ingress"]
    assert rule["ports"] == [{"port": "webhook", "protocol": "TCP"}]
    hardened = one(render(CHART / "ci" / "hardened-values.yaml"), "NetworkPolicy")["spec"]
    assert hardened["policyTypes"] == ["Ingress", "Egress"]


def test_minimal_values_drop_the_optional_objects() -> None:
    docs = render(CHART / "ci" / "minimal-values.yaml")
    assert not kinds(docs) & {
        "MutatingWebhookConfiguration",
        "PodDisruptionBudget",
        "NetworkPolicy",
    }
    assert not [d for d in docs if d["metadata"]["name"].endswith("-metrics")]


def test_pod_disruption_budget_keeps_one_replica_and_never_blocks_a_single_one(
    tmp_path: Path,
) -> None:
    selector = one(render(), "Deployment")["spec"]["selector"]
    assert one(render(), "PodDisruptionBudget")["spec"] == {
        "minAvailable": 1,
        "selector": selector,
    }
    single = tmp_path / "single.yaml"
    single.write_text("replicas: 1\n")
    assert one(render(single), "PodDisruptionBudget")["spec"] == {
        "maxUnavailable": 1,
        "selector": selector,
    }


def test_two_replicas_elect_a_leader_and_only_it_gets_audit_batches() -> None:
    docs = render()
    deployment = one(docs, "Deployment")
    assert deployment["spec"]["replicas"] == 2
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert "--leader-elect" in container["args"]
    env = {e["name"]: e for e in container["env"]}
    assert env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    everyone = one(docs, "Service", "identity-risk-operator")["spec"]["selector"]
    leader = one(docs, "Service", "identity-risk-operator-audit")["spec"]["selector"]
    assert everyone.items() <= pod_labels.items()  # /authorize, /mutate: every replica
    assert leader == everyone | {"identityrisk.dev/leader": "true"}  # /audit: the leader only
    role = next(d for d in docs if d["kind"] == "Role")
    assert {
        "apiGroups": ["coordination.k8s.io"],
        "resources": ["leases"],
        "verbs": ["get", "create", "update"],
    } in role["rules"]


def test_generate_mode_injects_the_ca_into_its_own_webhook_configuration_only() -> None:
    docs = render()
    (container,) = one(docs, "Deployment")["spec"]["template"]["spec"]["containers"]
    name = one(docs, "MutatingWebhookConfiguration")["metadata"]["name"]
    assert f"--webhook-configuration={name}" in container["args"]
    cluster_role = next(d for d in docs if d["kind"] == "ClusterRole")
    assert {
        "apiGroups": ["admissionregistration.k8s.io"],
        "resources": ["mutatingwebhookconfigurations"],
        "resourceNames": [name],
        "verbs": ["get", "patch"],
    } in cluster_role["rules"]
    secret_mode = render(CHART / "ci" / "kind-values.yaml")
    (container,) = one(secret_mode, "Deployment")["spec"]["template"]["spec"]["containers"]
    assert not [a for a in container["args"] if a.startswith("--webhook-configuration")]
    cluster_role = next(d for d in secret_mode if d["kind"] == "ClusterRole")
    assert not [
        r for r in cluster_role["rules"] if "mutatingwebhookconfigurations" in r["resources"]
    ]


def test_apiserver_presents_its_client_certificate_to_the_charts_admission_webhook() -> None:
    config_dir = ROOT / "config" / "apiserver"
    admission = yaml.safe_load((config_dir / "admission-config.yaml").read_text())
    (plugin,) = admission["plugins"]
    assert plugin["name"] == "MutatingAdmissionWebhook"
    kubeconfig_path = plugin["configuration"]["kubeConfigFile"]
    assert kubeconfig_path.startswith("/etc/kubernetes/identity-risk/")
    kubeconfig = yaml.safe_load(
        (config_dir / kubeconfig_path.removeprefix("/etc/kubernetes/identity-risk/")).read_text()
    )
    service = one(render(), "MutatingWebhookConfiguration")["webhooks"][0]["clientConfig"]
    host = f"{service['service']['name']}.{service['service']['namespace']}.svc"
    (user,) = [u for u in kubeconfig["users"] if host.endswith(u["name"].removeprefix("*"))]
    assert user["user"]["client-certificate"].endswith("apiserver-webhook-client.crt")


def test_by_default_the_operator_generates_its_webhook_certificates() -> None:
    docs = render()
    container = one(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    assert "--tls-secret=identity-risk-operator-tls" in container["args"]
    assert f"--tls-name=identity-risk-operator.{NAMESPACE}.svc" in container["args"]
    assert not [a for a in container["args"] if a.startswith(("--tls-cert", "--client-ca"))]
    assert "/etc/identity-risk/tls" not in {m["mountPath"] for m in container["volumeMounts"]}


def test_a_given_secret_is_mounted_and_is_the_client_ca() -> None:
    docs = render(CHART / "ci" / "kind-values.yaml")
    container = one(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    assert "--tls-cert=/etc/identity-risk/tls/tls.crt" in container["args"]
    assert "--client-ca=/etc/identity-risk/client-ca/ca.crt" in container["args"]
