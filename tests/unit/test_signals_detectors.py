"""Behavioural detectors: each fires on its attack and stays quiet on the benign look-alike."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from builders import (
    ATTACKER_IP,
    FAST_WARMUP,
    KUBECTL_USER_AGENT,
    NODE_IP,
    OTHER_POD_IP,
    POD_IP,
    T0,
    WEB,
    make_inventory,
    make_node,
    make_pod,
    make_pod_spec_object,
    make_record,
    warm_state,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from identity_risk.domain import Confidence, Signal, SignalKind
from identity_risk.ingest import AuditRecord
from identity_risk.signals import (
    BEHAVIOURAL_DETECTORS,
    CATALOGUE,
    DetectorConfig,
    Detectors,
    IdentityState,
    IdentityStates,
    Inventory,
    SignalType,
)

RBAC = "rbac.authorization.k8s.io"


def detect(
    record: AuditRecord,
    *,
    state: IdentityState | None = None,
    inventory: Inventory | None = None,
    config: DetectorConfig = FAST_WARMUP,
) -> dict[str, Signal]:
    signals = Detectors(config=config).detect(
        record, state if state is not None else warm_state(), inventory or make_inventory()
    )
    by_type = {s.type: s for s in signals}
    assert len(by_type) == len(signals), f"one signal per type expected: {signals}"
    return by_type


def request(**kwargs: Any) -> AuditRecord:
    return make_record(at=kwargs.pop("at", 0.0), **kwargs)


# --- a benign baseline produces nothing ------------------------------------------------------


def test_ordinary_request_from_its_pod_is_silent() -> None:
    assert detect(request()) == {}


# --- token replay ----------------------------------------------------------------------------


def test_bound_token_from_foreign_ip_is_token_replay() -> None:
    signal = detect(request(source_ip=ATTACKER_IP))[SignalType.TOKEN_REPLAY]

    assert signal.confidence is Confidence.HIGH
    assert signal.owasp_nhi == "NHI2"
    assert signal.evidence["podIPs"] == POD_IP
    assert signal.evidence["sourceIP"] == ATTACKER_IP
    assert ATTACKER_IP in signal.summary


def test_bound_token_from_another_pod_is_token_replay() -> None:
    assert SignalType.TOKEN_REPLAY in detect(request(source_ip=OTHER_POD_IP))


@pytest.mark.parametrize(
    "source_ip", [pytest.param(POD_IP, id="pod-ip"), pytest.param(NODE_IP, id="node-ip")]
)
def test_bound_token_from_its_pod_or_node_is_not_replay(source_ip: str) -> None:
    assert SignalType.TOKEN_REPLAY not in detect(request(source_ip=source_ip))


def test_token_of_pod_missing_from_inventory_is_replay_only_from_outside() -> None:
    outside = detect(request(pod_uid="unknown-uid", source_ip=ATTACKER_IP))
    inside = detect(request(pod_uid="unknown-uid", source_ip=OTHER_POD_IP))

    assert outside[SignalType.TOKEN_REPLAY].confidence is Confidence.MEDIUM
    assert SignalType.TOKEN_REPLAY not in inside


def test_unbound_token_is_never_replay() -> None:
    assert SignalType.TOKEN_REPLAY not in detect(request(bound=False, source_ip=ATTACKER_IP))


def test_host_network_pod_uses_node_ip() -> None:
    inventory = make_inventory(
        make_pod(name="agent", uid="agent-uid", ip=NODE_IP, host_network=True), defaults=True
    )

    found = detect(request(pod_name="agent", pod_uid="agent-uid", source_ip=NODE_IP),
                   inventory=inventory)  # fmt: skip

    assert SignalType.TOKEN_REPLAY not in found


# --- impossible travel -----------------------------------------------------------------------


def test_credential_from_two_networks_in_minutes_is_impossible_travel() -> None:
    signal = detect(request(source_ip=ATTACKER_IP, at=60))[SignalType.IMPOSSIBLE_TRAVEL]

    assert signal.evidence["previousIP"] == POD_IP
    assert signal.confidence is Confidence.MEDIUM


@pytest.mark.parametrize(
    ("source_ip", "at"),
    [
        pytest.param(POD_IP, 60, id="same-network"),
        pytest.param(ATTACKER_IP, 7200, id="long-after"),
    ],
)
def test_credential_staying_put_is_not_travel(source_ip: str, at: float) -> None:
    assert SignalType.IMPOSSIBLE_TRAVEL not in detect(request(source_ip=source_ip, at=at))


def test_a_new_credential_has_no_travel() -> None:
    found = detect(request(source_ip=ATTACKER_IP, credential_id="JTI=fresh"))

    assert SignalType.IMPOSSIBLE_TRAVEL not in found


# --- anomalous location ----------------------------------------------------------------------


def test_request_from_outside_cluster_networks_is_anomalous_location() -> None:
    signal = detect(request(bound=False, source_ip=ATTACKER_IP))[SignalType.ANOMALOUS_LOCATION]

    assert signal.evidence["network"] == "203.0.113.0/24"


@pytest.mark.parametrize(
    ("config", "inventory"),
    [
        pytest.param(
            DetectorConfig(baseline=FAST_WARMUP.baseline, trusted_networks=("203.0.113.0/24",)),
            None,
            id="trusted-network",
        ),
        pytest.param(
            FAST_WARMUP, Inventory.from_objects([make_node(pod_cidr=None)]), id="networks-unknown"
        ),
    ],
)
def test_outside_request_is_not_anomalous_when_expected_or_unjudgeable(
    config: DetectorConfig, inventory: Inventory | None
) -> None:
    found = detect(request(bound=False, source_ip=ATTACKER_IP), config=config, inventory=inventory)

    assert SignalType.ANOMALOUS_LOCATION not in found


def test_external_network_in_baseline_is_not_anomalous() -> None:
    state = warm_state(bound=False, source_ip="203.0.113.10")  # e.g. an external CI runner

    found = detect(request(bound=False, source_ip=ATTACKER_IP), state=state)

    assert SignalType.ANOMALOUS_LOCATION not in found


# --- human use -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "user_agent",
    [
        pytest.param(KUBECTL_USER_AGENT, id="kubectl"),
        pytest.param("curl/8.5.0", id="curl"),
        pytest.param("python-requests/2.32.3", id="python-requests"),
    ],
)
def test_human_tooling_on_workload_identity_is_human_use(user_agent: str) -> None:
    signal = detect(request(user_agent=user_agent))[SignalType.HUMAN_USE]

    assert signal.owasp_nhi == "NHI10"
    assert signal.evidence["baselineFamilies"] == "shop-web"


def test_identity_that_always_used_kubectl_is_not_human_use() -> None:
    state = warm_state(user_agent=KUBECTL_USER_AGENT)  # a CI runner's deploy identity

    assert SignalType.HUMAN_USE not in detect(request(user_agent=KUBECTL_USER_AGENT), state=state)


def test_new_app_client_version_is_not_human_use() -> None:
    found = detect(request(user_agent="shop-web/1.5.0 (linux/amd64) kubernetes/def456"))

    assert SignalType.HUMAN_USE not in found


# --- privilege escalation --------------------------------------------------------------------

ESCALATIONS = [
    pytest.param({"verb": "create", "resource": "clusterrolebindings", "api_group": RBAC, "namespace": ""},
                 id="create-clusterrolebinding"),
    pytest.param({"verb": "patch", "resource": "roles", "api_group": RBAC, "name": "web"}, id="patch-role"),
    pytest.param({"verb": "bind", "resource": "clusterroles", "api_group": RBAC, "namespace": ""}, id="bind"),
    pytest.param({"verb": "escalate", "resource": "roles", "api_group": RBAC}, id="escalate"),
    pytest.param({"verb": "impersonate", "resource": "users", "namespace": "", "name": "admin"},
                 id="impersonate"),
    pytest.param({"verb": "get", "resource": "configmaps", "impersonate": "admin@example.com"},
                 id="acting-as-another-user"),
    pytest.param({"verb": "create", "resource": "serviceaccounts", "subresource": "token",
                      "name": "controller"}, id="token-for-other-sa"),
    pytest.param({"verb": "create", "resource": "pods", "subresource": "exec", "name": "db-0"},
                 id="pods-exec"),
    pytest.param({"verb": "get", "resource": "pods", "subresource": "attach", "name": "db-0"},
                 id="pods-attach"),
    pytest.param({"verb": "get", "resource": "nodes", "subresource": "proxy", "namespace": "",
                      "name": "node-a"}, id="nodes-proxy"),
    pytest.param({"verb": "update", "resource": "certificatesigningrequests",
                      "subresource": "approval", "api_group": "certificates.k8s.io", "namespace": ""},
                 id="csr-approval"),
    pytest.param({"verb": "create", "resource": "mutatingwebhookconfigurations",
                      "api_group": "admissionregistration.k8s.io", "namespace": ""},
                 id="webhook-configuration"),
    pytest.param({"verb": "create", "resource": "pods",
                      "request_object": make_pod_spec_object(privileged=True)}, id="privileged-pod"),
    pytest.param({"verb": "create", "resource": "pods",
                      "request_object": make_pod_spec_object(host_path="/var/run")}, id="hostpath-pod"),
]  # fmt: skip


@pytest.mark.parametrize("attempt", ESCALATIONS)
def test_escalation_attempt_is_flagged(attempt: dict[str, Any]) -> None:
    signal = detect(request(**attempt))[SignalType.PRIVILEGE_ESCALATION]

    assert signal.evidence["pattern"]
    assert signal.owasp_nhi == "NHI5"


@pytest.mark.parametrize(
    "benign",
    [
        pytest.param({"verb": "create", "resource": "pods",
                          "request_object": make_pod_spec_object()}, id="plain-pod"),
        pytest.param({"verb": "create", "resource": "serviceaccounts", "subresource": "token",
                          "name": "web"}, id="token-for-itself"),
        pytest.param({"verb": "get", "resource": "roles", "api_group": RBAC}, id="read-role"),
        pytest.param({"verb": "get", "resource": "pods", "name": "db-0"}, id="get-pod"),
    ],
)  # fmt: skip
def test_look_alike_is_not_escalation(benign: dict[str, Any]) -> None:
    assert SignalType.PRIVILEGE_ESCALATION not in detect(request(**benign))


@pytest.mark.parametrize(
    ("decision", "confidence"),
    [
        pytest.param("allow", Confidence.HIGH, id="allowed"),
        pytest.param("forbid", Confidence.MEDIUM, id="denied"),
    ],
)
def test_escalation_confidence_follows_outcome(decision: str, confidence: Confidence) -> None:
    record = request(verb="impersonate", resource="users", namespace="", decision=decision)

    assert detect(record)[SignalType.PRIVILEGE_ESCALATION].confidence is confidence


def test_escalation_during_warm_up_is_medium() -> None:
    cold = IdentityState.new(WEB, now=T0)
    record = request(verb="impersonate", resource="users", namespace="")

    assert (
        detect(record, state=cold)[SignalType.PRIVILEGE_ESCALATION].confidence is Confidence.MEDIUM
    )


def test_escalation_in_baseline_is_the_identitys_job() -> None:
    job: dict[str, Any] = {"verb": "create", "resource": "rolebindings", "api_group": RBAC}
    state = warm_state(**job)  # e.g. a namespace provisioner

    assert SignalType.PRIVILEGE_ESCALATION not in detect(request(**job), state=state)


# --- credential access -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("access", "confidence"),
    [
        pytest.param({"verb": "list", "resource": "secrets", "namespace": ""}, Confidence.HIGH,
                     id="list-cluster-wide"),
        pytest.param({"verb": "watch", "resource": "secrets", "namespace": "payments"},
                     Confidence.HIGH, id="watch-other-namespace"),
        pytest.param({"verb": "list", "resource": "secrets"}, Confidence.MEDIUM,
                     id="list-own-namespace"),
        pytest.param({"verb": "get", "resource": "secrets", "namespace": "payments", "name": "db"},
                     Confidence.MEDIUM, id="get-other-namespace"),
        pytest.param({"verb": "get", "resource": "secrets", "name": "tls"}, Confidence.LOW,
                     id="get-own-namespace-new"),
    ],
)  # fmt: skip
def test_secret_access_beyond_baseline_is_credential_access(
    access: dict[str, Any], confidence: Confidence
) -> None:
    signal = detect(request(**access))[SignalType.CREDENTIAL_ACCESS]

    assert signal.confidence is confidence


def test_secret_read_in_baseline_is_not_credential_access() -> None:
    state = warm_state(verb="get", resource="secrets", name="db-password")

    found = detect(request(verb="get", resource="secrets", name="db-password"), state=state)

    assert SignalType.CREDENTIAL_ACCESS not in found


def test_secret_read_during_warm_up_in_own_namespace_is_learned_not_flagged() -> None:
    cold = IdentityState.new(WEB, now=T0)

    assert SignalType.CREDENTIAL_ACCESS not in detect(
        request(verb="get", resource="secrets", name="tls"), state=cold
    )


# --- reconnaissance --------------------------------------------------------------------------


@pytest.mark.parametrize("review", ["selfsubjectrulesreviews", "selfsubjectaccessreviews"])
def test_self_subject_review_is_reconnaissance(review: str) -> None:
    record = request(verb="create", resource=review, api_group="authorization.k8s.io",
                     namespace="")  # fmt: skip

    assert SignalType.RECONNAISSANCE in detect(record)


def _forbidden_burst(count: int) -> list[Signal]:
    detectors, state, inventory = Detectors(config=FAST_WARMUP), warm_state(), make_inventory()
    signals: list[Signal] = []
    for i in range(count):
        record = request(verb="get", resource="nodes", namespace="", decision="forbid", at=i)
        signals += detectors.observe(record, state, inventory)
    return [s for s in signals if s.key == "Reconnaissance:forbidden-burst"]


def test_burst_of_forbidden_requests_is_reconnaissance_once() -> None:
    found = _forbidden_burst(12)

    assert len(found) == 1
    assert found[0].evidence["forbidden"] == "5"


def test_a_few_forbidden_requests_are_not_reconnaissance() -> None:
    assert _forbidden_burst(4) == []


# --- dormancy --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("silence", "fires"),
    [pytest.param(timedelta(days=45), True, id="45-days"),
     pytest.param(timedelta(days=2), False, id="2-days")],
)  # fmt: skip
def test_dormant_identity_reactivated(silence: timedelta, fires: bool) -> None:
    found = detect(request(at=silence.total_seconds()))

    assert (SignalType.DORMANT_REACTIVATED in found) is fires
    if fires:
        assert found[SignalType.DORMANT_REACTIVATED].owasp_nhi == "NHI1"


# --- rate and baseline deviation -------------------------------------------------------------


def _flood(count: int) -> list[Signal]:
    detectors, state, inventory = Detectors(config=FAST_WARMUP), warm_state(), make_inventory()
    start = 120.0  # a fresh rate window after the warm-up traffic
    signals: list[Signal] = []
    for i in range(count):
        signals += detectors.observe(request(at=start + i * 0.1), state, inventory)
    return [s for s in signals if s.type == SignalType.RATE_DEVIATION]


def test_rate_far_above_baseline_is_flagged_once_per_window() -> None:
    found = _flood(200)

    assert len(found) == 1
    assert found[0].evidence["limit"] == "60"


def test_rate_within_limit_is_not_flagged() -> None:
    assert _flood(60) == []


def test_new_operation_after_warm_up_is_baseline_deviation() -> None:
    signal = detect(request(verb="list", resource="services"))[SignalType.BASELINE_DEVIATION]

    assert signal.confidence is Confidence.LOW
    assert signal.evidence["operation"] == "list /services shop"


def test_new_operation_during_warm_up_is_learned_silently() -> None:
    cold = IdentityState.new(WEB, now=T0)

    assert detect(request(verb="list", resource="services"), state=cold) == {}


def test_sensitive_new_operation_is_left_to_its_own_detector() -> None:
    found = detect(request(verb="list", resource="secrets", namespace=""))

    assert SignalType.BASELINE_DEVIATION not in found


# --- observe: detect, then learn -------------------------------------------------------------


def test_observe_ignores_users_that_are_not_service_accounts() -> None:
    states = IdentityStates()

    signals = Detectors().observe(
        make_record(sa=None, username="jane@example.com", bound=False), states, make_inventory()
    )

    assert signals == []
    assert len(states) == 0


def test_observe_creates_state_on_first_sight_and_learns() -> None:
    states = IdentityStates()

    Detectors().observe(request(), states, make_inventory())

    state = states.find(WEB)
    assert state is not None
    assert state.requests == 1
    assert state.operations == {"get /configmaps shop"}


def test_new_benign_operation_is_flagged_only_once_after_warm_up() -> None:
    detectors, state, inventory = Detectors(config=FAST_WARMUP), warm_state(), make_inventory()

    first = detectors.observe(request(verb="list", resource="services"), state, inventory)
    again = detectors.observe(request(verb="list", resource="services", at=1), state, inventory)

    assert [s.type for s in first] == [SignalType.BASELINE_DEVIATION]
    assert again == []


def test_attack_keeps_firing_after_warm_up() -> None:
    detectors, state, inventory = Detectors(config=FAST_WARMUP), warm_state(), make_inventory()
    dump = {"verb": "list", "resource": "secrets", "namespace": ""}

    first = detectors.observe(request(**dump), state, inventory)
    again = detectors.observe(request(at=5, **dump), state, inventory)

    assert {s.type for s in first} == {s.type for s in again} == {SignalType.CREDENTIAL_ACCESS}
    assert first[0].key == again[0].key  # refreshes the same fact instead of stacking


def test_attacker_during_warm_up_does_not_become_baseline() -> None:
    detectors, inventory = Detectors(config=FAST_WARMUP), make_inventory()
    state = warm_state(requests=5)  # still warming up
    stolen = {"source_ip": ATTACKER_IP, "user_agent": KUBECTL_USER_AGENT}

    detectors.observe(request(**stolen), state, inventory)
    again = detectors.observe(request(at=1, **stolen), state, inventory)

    assert {SignalType.TOKEN_REPLAY, SignalType.HUMAN_USE} <= {s.type for s in again}
    assert "kubectl" not in state.user_agents


# --- every signal is explainable -------------------------------------------------------------


def test_every_behavioural_signal_carries_mappings_and_evidence() -> None:
    record = request(
        source_ip=ATTACKER_IP, user_agent=KUBECTL_USER_AGENT, verb="list", resource="secrets",
        namespace="", at=timedelta(days=40).total_seconds(),
    )  # fmt: skip

    signals = detect(record)

    assert len(signals) >= 5
    for signal in signals.values():
        assert signal.kind is SignalKind.BEHAVIOURAL
        assert signal.identity == WEB
        assert signal.observed_at == record.timestamp
        assert signal.owasp_nhi == CATALOGUE[SignalType(signal.type)].owasp_nhi
        assert signal.evidence["auditID"] == record.audit_id
        assert signal.evidence["request"] == record.describe()
        assert signal.key.startswith(signal.type + ":")
        assert signal.weight > 0


def test_weight_overrides_apply() -> None:
    config = DetectorConfig(baseline=FAST_WARMUP.baseline, weights={"TokenReplay": 80.0})

    signal = detect(request(source_ip=ATTACKER_IP), config=config)[SignalType.TOKEN_REPLAY]

    assert signal.weight == 80.0


@pytest.mark.parametrize("spec", list(CATALOGUE.values()), ids=lambda s: s.type.value)
def test_catalogue_maps_every_type_to_owasp_and_nist(spec: Any) -> None:
    assert spec.owasp_nhi in {f"NHI{i}" for i in range(1, 11)}
    assert spec.nist_csf[:2] in {"DE", "PR", "ID", "RS"}
    assert "." in spec.nist_csf
    assert spec.kind is SignalKind.BEHAVIOURAL or spec.confidence is Confidence.LOW


def test_identity_calling_from_outside_from_the_start_learns_that_network() -> None:
    detectors, inventory = Detectors(config=FAST_WARMUP), make_inventory()
    state = IdentityState.new(WEB, now=T0)
    ci = {"bound": False, "source_ip": "198.51.100.7"}

    first = detectors.observe(request(**ci), state, inventory)
    later = detectors.observe(request(at=30, **ci), state, inventory)

    assert [(s.type, s.confidence) for s in first] == [
        (SignalType.ANOMALOUS_LOCATION, Confidence.LOW)
    ]
    assert later == []


@settings(max_examples=150, deadline=None)
@given(
    verb=st.sampled_from(["get", "list", "watch", "create", "patch", "impersonate", "bind"]),
    resource=st.sampled_from(["configmaps", "secrets", "pods", "roles", "selfsubjectrulesreviews"]),
    namespace=st.sampled_from(["shop", "payments", ""]),
    decision=st.sampled_from(["allow", "forbid"]),
    source_ip=st.sampled_from([POD_IP, NODE_IP, OTHER_POD_IP, ATTACKER_IP, ""]),
    user_agent=st.sampled_from(["shop-web/1.4.2", KUBECTL_USER_AGENT, "curl/8"]),
    bound=st.booleans(),
    at=st.sampled_from([0.0, 30.0, 86400.0 * 40]),
    warm=st.booleans(),
)
def test_guards_never_change_the_outcome(warm: bool, **event: Any) -> None:
    """``Detectors.detect`` equals running every detector unguarded, in order."""
    state = warm_state() if warm else warm_state(requests=3)
    record = request(**event)
    inventory = make_inventory()

    unguarded = [
        signal
        for detector in BEHAVIOURAL_DETECTORS
        for signal in detector(record, state, inventory, FAST_WARMUP)
    ]

    assert Detectors(config=FAST_WARMUP).detect(record, state, inventory) == unguarded


def test_credential_moving_between_cluster_networks_is_not_travel() -> None:
    # e.g. a dual-stack pod, or a token shared between pods: token replay speaks for bound ones
    found = detect(request(bound=True, pod_uid="unknown-uid", source_ip="192.168.10.99", at=60))

    assert SignalType.IMPOSSIBLE_TRAVEL not in found
