"""The chart's RBAC is sufficient and every rule in it is needed.

Run as ``IDENTITY_RISK_E2E_AS_CHART_SA=1 pytest tests/e2e`` (``make e2e-chart-rbac``): the whole
end-to-end suite then runs with the operator authenticated as the chart's ServiceAccount, and these
tests run last, reading the apiserver's audit log of that ServiceAccount's requests.

* Sufficient: the suite passed, and RBAC refused none of the operator's requests.
* Needed: every (group, resource, verb) a rule grants was used by at least one request. The
  rules grant disjoint permissions, so removing any one of them would have made that request
  fail with 403, breaking the behaviour named in ``RULES``.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
import yaml
from chart_sa import CHART, HELM
from harness import OPERATOR_NAMESPACE, Operated, mutating_webhooks

from identity_risk.api import v1alpha1 as v1
from identity_risk.api.v1alpha1 import ActionPhase
from identity_risk.domain import ActionType
from identity_risk.enforce.actions import ActionContext, Blocks
from identity_risk.enforce.playbook import RELEASERS
from identity_risk.kube import Kube, load_api_client

pytestmark = pytest.mark.integration
RUN_LAST = True  # tests/e2e/conftest.py moves this module after the rest of the suite

# What needs each permission the chart grants: (group, resource, verb) -> behaviour.
RULES: dict[tuple[str, str, str], str] = {
    **{
        ("", resource, verb): f"inventory: kopf {verb} of {resource} ({why})"
        for resource, why in (
            ("pods", "token replay compares a request's source with its pod's IP"),
            ("serviceaccounts", "the identities that are scored; listed before the watches"),
            ("secrets", "legacy long-lived token Secrets (posture)"),
            ("namespaces", "policy namespace selectors, owners; listed before the watches"),
            ("nodes", "a pod-bound token used from its node's address is not a replay"),
        )
        for verb in ("list", "watch")
    },
    ("", "pods", "patch"): "QuarantinePods: label the identity's pods (release: unlabel)",
    ("", "serviceaccounts", "get"): "RecreateServiceAccount: read the account to re-create",
    ("", "serviceaccounts", "delete"): "RecreateServiceAccount: the old UID, and its tokens, die",
    ("", "serviceaccounts", "create"): "RecreateServiceAccount: same name and settings, new UID",
    ("", "secrets", "get"): (
        "RotateSecrets: read an opted-in Secret and its CA; start: the signing key"
    ),
    ("", "secrets", "patch"): "RotateSecrets: store the new values",
    **{
        ("rbac.authorization.k8s.io", resource, verb): (
            f"inventory: kopf {verb} of {resource} (effective privileges amplify the score)"
        )
        for resource in ("roles", "clusterroles", "rolebindings", "clusterrolebindings")
        for verb in ("list", "watch")
    },
    **{
        ("identityrisk.dev", resource, verb): f"policy input: kopf {verb} of {resource}"
        for resource in ("identityriskpolicies", "riskexceptions", "identitysignals")
        for verb in ("list", "watch")
    },
    **{
        ("identityrisk.dev", "riskapprovals", verb): f"RequireApproval: kopf {verb} of approvals"
        for verb in ("list", "watch")
    },
    ("identityrisk.dev", "riskapprovals/status", "patch"): (
        "RequireApproval: an approval is accepted or refused, with the reason"
    ),
    ("identityrisk.dev", "riskdecisions", "create"): "executor: record a decision before acting",
    ("identityrisk.dev", "riskdecisions", "get"): (
        "executor: a decision created twice (replay after a crash) reads the first; approvals"
        " are judged against their decision"
    ),
    ("identityrisk.dev", "riskdecisions", "list"): (
        "start: resume unfinished decisions; rebuild the authorization state"
    ),
    ("identityrisk.dev", "riskdecisions", "watch"): (
        "every replica: the authorization webhook's state follows recorded decisions"
    ),
    ("identityrisk.dev", "riskdecisions/status", "patch"): (
        "executor: chain link and each action's outcome"
    ),
    ("identityrisk.dev", "workloadidentityrisks", "create"): "scorer: one record per identity",
    ("identityrisk.dev", "workloadidentityrisks", "get"): "scorer: does the record exist yet",
    ("identityrisk.dev", "workloadidentityrisks", "list"): "start: restore scorer state",
    ("identityrisk.dev", "workloadidentityrisks", "watch"): "kopf: restore scorer state",
    ("identityrisk.dev", "workloadidentityrisks/status", "patch"): (
        "scorer: score, band, signals, persisted scorer state"
    ),
    ("networking.k8s.io", "networkpolicies", "create"): (
        "QuarantinePods: the operator-owned deny-all NetworkPolicy"
    ),
    ("networking.k8s.io", "networkpolicies", "delete"): "release of a quarantine",
    **{
        ("apiextensions.k8s.io", "customresourcedefinitions", verb): (
            f"kopf {verb} of CRDs: resources re-resolved when a CRD is (re)installed"
        )
        for verb in ("list", "watch")
    },
    ("", "events", "create"): "Notify: a Kubernetes Event on the RiskDecision",
    ("", "pods/eviction", "create"): (
        "RevokeToken, ShortenTokenTTL, RotateSecrets, RecreateServiceAccount: evict the pods"
    ),
    ("", "secrets#own-namespace", "create"): (
        "first start: store the generated signing key (and webhook certificates)"
    ),
    ("coordination.k8s.io", "leases#own-namespace", "get"): (
        "--leader-elect: read the Lease every renew period"
    ),
    ("coordination.k8s.io", "leases#own-namespace", "create"): (
        "--leader-elect: the first replica creates the Lease"
    ),
    ("coordination.k8s.io", "leases#own-namespace", "update"): (
        "--leader-elect: take or renew the Lease (guarded by its resourceVersion)"
    ),
    ("admissionregistration.k8s.io", "mutatingwebhookconfigurations", "get"): (
        "TLS generate: is the generated CA already the caBundle of the chart's webhooks"
    ),
    ("admissionregistration.k8s.io", "mutatingwebhookconfigurations", "patch"): (
        "TLS generate: inject the generated CA as the caBundle of the chart's webhooks"
    ),
}


@dataclass(frozen=True)
class Grant:
    """One (group, resource, verb) a rendered rule grants, and where."""

    group: str
    resource: str
    verb: str
    namespace: str  # "" for a ClusterRole
    names: frozenset[str]

    @property
    def key(self) -> tuple[str, str, str]:
        resource = f"{self.resource}#own-namespace" if self.namespace else self.resource
        return (self.group, resource, self.verb)

    def allows(self, event: dict[str, Any]) -> bool:
        ref = event.get("objectRef") or {}
        resource = ref.get("resource", "")
        if ref.get("subresource"):
            resource += "/" + ref["subresource"]
        return (
            ref.get("apiGroup", "") == self.group
            and resource == self.resource
            and event["verb"] == self.verb
            and (not self.namespace or ref.get("namespace") == self.namespace)
            and (not self.names or ref.get("name") in self.names)
        )


def rendered_grants() -> list[Grant]:
    result = subprocess.run(
        [str(HELM), "template", "identity-risk", str(CHART), "-n", OPERATOR_NAMESPACE],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    grants = []
    for doc in yaml.safe_load_all(result.stdout):
        if not doc or doc["kind"] not in ("ClusterRole", "Role"):
            continue
        namespace = doc["metadata"].get("namespace", "") if doc["kind"] == "Role" else ""
        for rule in doc["rules"]:
            grants.extend(
                Grant(group, resource, verb, namespace, frozenset(rule.get("resourceNames", ())))
                for group in rule["apiGroups"]
                for resource in rule["resources"]
                for verb in rule["verbs"]
            )
    return grants


def release_a_quarantine(kube: Kube) -> None:
    for body in kube.list_custom("RiskDecision"):
        obj = v1.RiskDecision.model_validate(body)
        for outcome in obj.status.actions if obj.status else []:
            if (
                outcome.type is ActionType.QUARANTINE_PODS
                and outcome.phase is ActionPhase.SUCCEEDED
            ):
                context = ActionContext(
                    kube=kube,
                    blocks=Blocks(),
                    clock=lambda: datetime.now(UTC),
                    policies=lambda _: None,
                )
                released = RELEASERS[outcome.type](context, outcome, obj)
                assert released.phase is ActionPhase.RELEASED, released.message
                return
    raise AssertionError("no quarantine in force to release: did the QuarantinePods e2e run?")


def inject_the_generated_ca(operated: Operated, kube: Kube) -> None:
    name = "identity-risk-operator"  # the chart's fullname: the rule's only resourceName
    body = mutating_webhooks(operated.operator.port, operated.pki)
    body["metadata"]["name"] = name
    for hook in body["webhooks"]:
        hook["clientConfig"].pop("caBundle")
        hook["objectSelector"] = {"matchLabels": {"identityrisk.dev/never": "matches"}}
    path = "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations"
    operated.api.create(path, body)
    try:
        ca = operated.pki.ca.cert.read_bytes()
        assert kube.inject_webhook_ca(name, ca) == "patched"
        assert kube.inject_webhook_ca(name, ca) == "unchanged"
    finally:
        operated.api.call("DELETE", f"{path}/{name}")


def describe(events: Iterable[dict[str, Any]]) -> list[str]:
    out = []
    for e in events:
        ref = e.get("objectRef") or {}
        out.append(
            f"{e['verb']} {ref.get('apiGroup', '')}/{ref.get('resource')}"
            f"{'/' + ref['subresource'] if ref.get('subresource') else ''}"
            f" {ref.get('namespace', '')}/{ref.get('name', '')}: {e['responseStatus'].get('code')}"
        )
    return out


def test_every_granted_permission_is_named() -> None:
    if not HELM.exists():
        pytest.skip("helm missing; run hack/controlplane/build.sh")
    grants = {g.key for g in rendered_grants()}
    assert grants == set(RULES), (
        f"granted but not explained: {sorted(grants - set(RULES))}; "
        f"explained but not granted: {sorted(set(RULES) - grants)}"
    )


@pytest.fixture
def chart_run(operated: Operated) -> Operated:
    if operated.chart is None:
        pytest.skip("run with IDENTITY_RISK_E2E_AS_CHART_SA=1 (make e2e-chart-rbac)")
    return operated


def test_rbac_refused_none_of_the_operators_requests(chart_run: Operated) -> None:
    assert chart_run.chart is not None
    refused = [
        e
        for e in chart_run.chart.requests()
        if (e.get("annotations") or {}).get("authorization.k8s.io/decision") == "forbid"
        or e["responseStatus"].get("code") == 403
    ]
    assert not refused, describe(refused)


def test_every_rule_of_the_chart_was_needed(chart_run: Operated) -> None:
    assert chart_run.chart is not None
    # The suite never replays a create of a decision that exists (the crash test resumes from
    # the list); make the operator's own client do it, as a crash between create and the
    # next step would.
    kube = Kube(load_api_client(kubeconfig=str(chart_run.chart.kubeconfig)))
    decision = next(iter(kube.list_custom("RiskDecision")))
    namespace = decision["metadata"]["namespace"]
    again = kube.create_custom(
        "RiskDecision",
        namespace,
        {k: decision[k] for k in ("apiVersion", "kind", "spec")}
        | {"metadata": {"name": decision["metadata"]["name"], "namespace": namespace}},
    )
    assert again["metadata"]["uid"] == decision["metadata"]["uid"]
    # Likewise the suite releases its quarantine in-process as the admin; release the one still
    # in force with the operator's releaser, as the chart's ServiceAccount.
    release_a_quarantine(kube)
    # The harness serves given certificates (TLS mode secret); in the chart's default mode
    # generate the operator injects its CA into the chart's MutatingWebhookConfiguration at
    # startup: do that with its client, on an object of that name (webhooks that match nothing).
    inject_the_generated_ca(chart_run, kube)

    requests = list(chart_run.chart.requests())
    unused = [
        f"{g.key}: {RULES.get(g.key, '?')}"
        for g in rendered_grants()
        if not any(g.allows(e) for e in requests)
    ]
    assert not unused, f"rules the operator never used (remove them): {unused}"
