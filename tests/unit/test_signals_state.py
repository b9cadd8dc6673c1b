"""Identity state: warm-up, bounded memory under floods, and a lossless JSON round trip."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from builders import ATTACKER_IP, FAST_WARMUP, T0, WEB, make_inventory, make_record, warm_state
from hypothesis import given, settings
from hypothesis import strategies as st

from identity_risk.domain import Identity
from identity_risk.signals import (
    BaselineConfig,
    DetectorConfig,
    Detectors,
    IdentityState,
    IdentityStates,
)
from identity_risk.signals.state import user_agent_family

SMALL = BaselineConfig(
    warmup=timedelta(minutes=1), warmup_min_requests=1, max_operations=8, max_user_agents=3,
    max_networks=4, max_credentials=5, max_locations_per_credential=2,
)  # fmt: skip


def _assert_within(state: IdentityState, config: BaselineConfig) -> None:
    assert len(state.operations) <= config.max_operations
    assert len(state.user_agents) <= config.max_user_agents
    assert len(state.networks) <= config.max_networks
    assert len(state.credentials) <= config.max_credentials
    assert all(len(s) <= config.max_locations_per_credential for s in state.credentials.values())


# --- warm-up ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("requests", "every", "warm"),
    [
        pytest.param(60, 30.0, True, id="long-and-busy"),
        pytest.param(10, 120.0, False, id="long-but-quiet"),
        pytest.param(60, 1.0, False, id="busy-but-short"),
    ],
)
def test_warm_up_needs_time_and_requests(requests: int, every: float, warm: bool) -> None:
    state = warm_state(requests=requests, every=every)

    assert state.is_warm(T0.timestamp(), FAST_WARMUP.baseline) is warm


def test_warm_up_learns_operations_clients_and_networks() -> None:
    state = warm_state()

    assert state.operations == {"get /configmaps shop"}
    assert state.user_agents == {"shop-web"}
    assert state.networks == {"10.244.0.0/16"}
    assert state.requests == 60


@pytest.mark.parametrize(
    ("user_agent", "family"),
    [
        ("kubectl/v1.31.0 (linux/amd64) kubernetes/9edcffc", "kubectl"),
        ("curl/8.5.0", "curl"),
        ("Python-requests/2.32", "python-requests"),
        ("kube-controller-manager/v1.31.0 (linux/amd64) kubernetes/9edcffc/leader-election",
         "kube-controller-manager"),
        ("", "unknown"),
        ("x" * 500, "x" * 48),
    ],
)  # fmt: skip
def test_user_agent_family(user_agent: str, family: str) -> None:
    assert user_agent_family(user_agent) == family


# --- bounded memory --------------------------------------------------------------------------


@settings(max_examples=30, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.text(min_size=1, max_size=12),  # resource
            st.text(max_size=12),  # user agent
            st.ip_addresses(v=4).map(str),  # source
            st.text(min_size=1, max_size=8),  # credential
        ),
        min_size=1,
        max_size=80,
    )
)
def test_memory_bound_holds_under_arbitrary_traffic(
    requests: list[tuple[str, str, str, str]],
) -> None:
    detectors, inventory = Detectors(config=DetectorConfig(baseline=SMALL)), make_inventory()
    state = IdentityState.new(WEB, now=T0)

    for i, (resource, agent, ip, credential) in enumerate(requests):
        record = make_record(
            resource=resource, user_agent=agent, source_ip=ip, credential_id=credential, at=i
        )
        detectors.observe(record, state, inventory)

    _assert_within(state, SMALL)


def test_memory_bound_holds_under_a_flood_of_distinct_values() -> None:
    detectors, inventory = Detectors(config=DetectorConfig(baseline=SMALL)), make_inventory()
    state = IdentityState.new(WEB, now=T0)

    for i in range(5_000):
        record = make_record(
            resource=f"things{i}", user_agent=f"client{i}/1.0", credential_id=f"JTI={i % 997}",
            at=i * 0.01,
        )  # fmt: skip
        detectors.observe(record, state, inventory)
    for i in range(500):  # and from everywhere
        record = make_record(bound=False, source_ip=f"198.{i % 250}.{i // 250}.1", at=60 + i)
        detectors.observe(record, state, inventory)

    _assert_within(state, SMALL)
    assert state.overflow > 0  # what was not remembered is counted
    assert len(json.dumps(state.to_dict())) < 10_000


def test_most_recent_credentials_are_kept() -> None:
    detectors, inventory = Detectors(config=DetectorConfig(baseline=SMALL)), make_inventory()
    state = IdentityState.new(WEB, now=T0)

    for i in range(20):
        detectors.observe(make_record(credential_id=f"JTI={i}", at=i), state, inventory)

    assert list(state.credentials) == [f"JTI={i}" for i in range(15, 20)]


def test_default_bounds_are_documented_values() -> None:
    config = BaselineConfig()

    assert (config.max_operations, config.max_user_agents, config.max_networks,
            config.max_credentials, config.max_locations_per_credential) == (512, 16, 32, 32, 4)  # fmt: skip


def test_negative_cap_is_refused() -> None:
    with pytest.raises(ValueError, match="max_operations"):
        BaselineConfig(max_operations=-1)


# --- persistence -----------------------------------------------------------------------------


def _busy_state() -> IdentityState:
    state = warm_state()
    detectors, inventory = Detectors(config=FAST_WARMUP), make_inventory()
    for i, ip in enumerate([ATTACKER_IP, "10.244.3.3"]):
        detectors.observe(make_record(source_ip=ip, decision="forbid", at=i), state, inventory)
    return state


def test_state_round_trips_through_json() -> None:
    state = _busy_state()

    saved = json.loads(json.dumps(state.to_dict()))
    restored = IdentityState.from_dict(saved)

    assert restored.to_dict() == state.to_dict()
    assert restored.credentials == state.credentials
    assert restored.last_seen == state.last_seen


def test_restored_state_detects_like_the_original() -> None:
    state = _busy_state()
    restored = IdentityState.from_dict(json.loads(json.dumps(state.to_dict())))
    detectors, inventory = Detectors(config=FAST_WARMUP), make_inventory()
    probe = make_record(verb="list", resource="secrets", namespace="", source_ip=ATTACKER_IP, at=9)

    assert detectors.detect(probe, restored, inventory) == detectors.detect(probe, state, inventory)


def test_collection_of_states_round_trips() -> None:
    states = IdentityStates({WEB: _busy_state()})

    restored = IdentityStates.from_dict(json.loads(json.dumps(states.to_dict())))

    assert restored.to_dict() == states.to_dict()


def test_restoring_under_smaller_caps_truncates() -> None:
    big = IdentityState.new(WEB, now=T0)
    detectors, inventory = Detectors(), make_inventory()
    for i in range(30):
        detectors.observe(
            make_record(resource=f"r{i}", credential_id=f"JTI={i}", at=i), big, inventory
        )

    small = IdentityState.from_dict(big.to_dict(), config=SMALL)

    _assert_within(small, SMALL)
    assert "JTI=29" in small.credentials  # the most recent survive


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        pytest.param(lambda d: d.update(version=99), "version", id="version"),
        pytest.param(lambda d: d.pop("identity"), "malformed", id="no-identity"),
        pytest.param(lambda d: d.update(lastSeen="yesterday"), "lastSeen", id="bad-time"),
        pytest.param(lambda d: d.update(createdAt="2026-01-05T09:00:00"), "timezone", id="naive"),
    ],
)
def test_malformed_state_is_refused_with_reason(mutate: Any, message: str) -> None:
    data = warm_state().to_dict()
    mutate(data)

    with pytest.raises(ValueError, match=message):
        IdentityState.from_dict(data)


def test_states_of_deleted_service_accounts_can_be_forgotten() -> None:
    other = Identity("shop", "old-job")
    states = IdentityStates({WEB: warm_state(), other: IdentityState.new(other, now=T0)})

    gone = states.retain([WEB])

    assert gone == [other]
    assert states.find(other) is None
    assert len(states) == 1
