"""Policy: coverage, protection, bands with confidence and hysteresis, exceptions, safeguards."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from identity_risk.api.v1alpha1 import IdentityRiskPolicy, RiskException, Safeguards
from identity_risk.domain import ActionType, Confidence, Identity, Mode, Signal, SignalKind
from identity_risk.policy import (
    BandState,
    Decision,
    Disposition,
    IdentityContext,
    OperatorSelf,
    active_exceptions,
    apply_safeguards,
    band_index,
    decide,
    exempt_signal_types,
    protection_reason,
    raw_band,
    select_policy,
)
from identity_risk.scoring import Score, score_identity

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
MIN = timedelta(minutes=1)
SA = Identity(namespace="shop", name="checkout")


def make_policy(name: str = "default", **spec: Any) -> IdentityRiskPolicy:
    body: dict[str, Any] = {
        "mode": "Enforce",
        "bands": [
            {"name": "low", "minScore": 0},
            {"name": "medium", "minScore": 30, "actions": [{"type": "Notify"}]},
            {
                "name": "high",
                "minScore": 60,
                "minConfidence": "Medium",
                "actions": [{"type": "Notify"}, {"type": "RestrictScope", "duration": "1h"}],
            },
            {
                "name": "critical",
                "minScore": 85,
                "minConfidence": "High",
                "actions": [{"type": "RevokeToken"}, {"type": "QuarantinePods"}],
            },
        ],
    }
    body.update(spec)
    return IdentityRiskPolicy.model_validate({"metadata": {"name": name}, "spec": body})


def make_exception(
    *, name: str = "ex", sa: str = SA.name, expires: datetime = T0 + 60 * MIN, **spec: Any
) -> RiskException:
    return RiskException.model_validate(
        {
            "metadata": {"name": name, "namespace": SA.namespace},
            "spec": {
                "serviceAccountName": sa,
                "expires": expires.isoformat(),
                "owner": "team-shop",
                "reason": "load test",
                **spec,
            },
        }
    )


def make_score(
    points: float, confidence: Confidence = Confidence.HIGH, *, identity: Identity = SA
) -> Score:
    s = Signal(
        type="TokenReplay",
        identity=identity,
        kind=SignalKind.BEHAVIOURAL,
        weight=points,
        confidence=confidence,
        observed_at=T0,
        key="jti",
        summary="token used from 10.9.9.9",
    )
    return score_identity(identity=identity, signals=[s], now=T0)


def run(
    points: float,
    confidence: Confidence = Confidence.HIGH,
    *,
    previous: BandState | None = None,
    policy: IdentityRiskPolicy | None = None,
    ctx: IdentityContext | None = None,
    exceptions: tuple[RiskException, ...] = (),
    now: datetime = T0,
) -> Decision:
    ctx = ctx or IdentityContext(identity=SA)
    return decide(
        ctx=ctx,
        score=make_score(points, confidence, identity=ctx.identity),
        policy=policy or make_policy(),
        previous=previous,
        exceptions=exceptions,
        now=now,
    )


# --- coverage and protection ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("identity", "protected"),
    [
        (Identity(namespace="kube-system", name="coredns"), True),
        (Identity(namespace="identity-risk", name="anything"), True),
        (Identity(namespace="payments", name="api"), True),
        (Identity(namespace="shop", name="checkout"), False),
    ],
    ids=["kube-system", "operator-namespace", "listed-namespace", "ordinary"],
)
def test_protection_reason(identity: Identity, protected: bool) -> None:
    reason = protection_reason(
        identity=identity, protected_namespaces=["payments"], operator=OperatorSelf()
    )
    assert (reason is not None) is protected


def test_operator_identity_is_protected_outside_its_namespace_too() -> None:
    op = OperatorSelf(namespace="ops", service_account="risk")
    assert protection_reason(identity=op.identity, protected_namespaces=[], operator=op)


@pytest.mark.parametrize(
    ("ns_labels", "sa_labels", "expected"),
    [
        ({"tier": "prod"}, {}, "prod-only"),
        ({"tier": "dev"}, {}, "catch-all"),
        ({"tier": "prod"}, {"risk": "ignore"}, "catch-all"),
    ],
    ids=["higher-priority-wins", "selector-misses", "sa-excluded-by-expression"],
)
def test_select_policy(ns_labels: dict[str, str], sa_labels: dict[str, str], expected: str) -> None:
    prod = make_policy(
        "prod-only",
        priority=10,
        selector={
            "namespaceSelector": {"matchLabels": {"tier": "prod"}},
            "serviceAccountSelector": {
                "matchExpressions": [{"key": "risk", "operator": "NotIn", "values": ["ignore"]}]
            },
        },
    )
    catch_all = make_policy("catch-all")
    ctx = IdentityContext(identity=SA, namespace_labels=ns_labels, service_account_labels=sa_labels)
    chosen = select_policy([catch_all, prod], ctx=ctx)
    assert chosen is not None
    assert chosen.name == expected


def test_exclusions_remove_identities() -> None:
    p = make_policy(selector={"excludeNamespaces": ["shop"]})
    q = make_policy(selector={"excludeServiceAccounts": ["shop/checkout"]})
    ctx = IdentityContext(identity=SA)
    assert select_policy([p], ctx=ctx) is None
    assert select_policy([q], ctx=ctx) is None


def test_equal_priority_is_decided_by_name() -> None:
    chosen = select_policy([make_policy("b"), make_policy("a")], ctx=IdentityContext(identity=SA))
    assert chosen is not None
    assert chosen.name == "a"


# --- bands --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("points", "confidence", "band"),
    [
        (10, Confidence.HIGH, "low"),
        (40, Confidence.LOW, "medium"),
        (70, Confidence.MEDIUM, "high"),
        (70, Confidence.LOW, "medium"),
        (90, Confidence.HIGH, "critical"),
        (90, Confidence.MEDIUM, "high"),
        (90, Confidence.LOW, "medium"),
    ],
    ids=[
        "low",
        "medium",
        "high",
        "high-needs-medium",
        "critical",
        "critical-needs-high",
        "falls-two",
    ],
)
def test_band_by_score_and_confidence(points: float, confidence: Confidence, band: str) -> None:
    assert run(points, confidence).band == band


def test_escalation_orders_the_band_actions_in_order() -> None:
    d = run(90)
    assert d.escalated
    assert d.disposition is Disposition.ACT
    assert [a.type for a in d.actions] == [ActionType.REVOKE_TOKEN, ActionType.QUARANTINE_PODS]


def test_staying_in_a_band_orders_nothing_new() -> None:
    d = run(90, previous=BandState(band="critical", since=T0 - MIN))
    assert (d.escalated, d.actions, d.disposition) == (False, (), Disposition.NO_CHANGE)


@pytest.mark.parametrize(
    ("points", "since", "band"),
    [
        (57, T0 - 60 * MIN, "high"),  # within 5-point margin of 60
        (50, T0 - 5 * MIN, "high"),  # below margin but hold (10m) not elapsed
        (50, T0 - 60 * MIN, "medium"),  # both elapsed: steps down
    ],
    ids=["within-margin", "within-hold", "steps-down"],
)
def test_hysteresis(points: float, since: datetime, band: str) -> None:
    d = run(points, previous=BandState(band="high", since=since))
    assert d.band == band


def test_boundary_does_not_flap() -> None:
    previous: BandState | None = None
    bands = []
    for i, points in enumerate([61, 59, 61, 58, 60, 59]):
        d = run(points, previous=previous, now=T0 + i * 30 * MIN)
        previous = d.band_state
        bands.append(d.band)
    assert bands == ["high"] * 6


# --- dispositions -------------------------------------------------------------------------------


def test_audit_mode_records_but_does_not_act() -> None:
    d = run(90, policy=make_policy(mode="Audit"))
    assert d.disposition is Disposition.AUDIT
    assert d.mode is Mode.AUDIT
    assert d.actions
    assert not d.actions_to_execute


def test_protected_namespace_is_never_acted_on() -> None:
    ctx = IdentityContext(identity=Identity(namespace="kube-system", name="x"))
    d = run(90, ctx=ctx)
    assert d.disposition is Disposition.PROTECTED
    assert not d.actions_to_execute


def test_exception_exempts_until_it_expires() -> None:
    ctx = IdentityContext(identity=SA)
    exc = make_exception(expires=T0 + 30 * MIN)
    now_active = active_exceptions([exc], ctx=ctx, now=T0)
    assert run(90, exceptions=now_active).disposition is Disposition.EXEMPT
    later = T0 + 31 * MIN
    assert active_exceptions([exc], ctx=ctx, now=later) == ()
    assert (
        run(90, exceptions=active_exceptions([exc], ctx=ctx, now=later), now=later).disposition
        is Disposition.ACT
    )


def test_exception_by_pod_selector_and_for_signal_types() -> None:
    exc = make_exception(
        sa=None, podSelector={"matchLabels": {"app": "load"}}, signalTypes=["Recon"]
    )
    exc = RiskException.model_validate(
        exc.model_dump(by_alias=True, exclude_none=True, mode="json")
    )
    ctx = IdentityContext(identity=SA, pod_labels=({"app": "load"},))
    active = active_exceptions([exc], ctx=ctx, now=T0)
    assert exempt_signal_types(active) == {"Recon"}
    assert active_exceptions([exc], ctx=IdentityContext(identity=SA), now=T0) == ()


# --- safeguards ---------------------------------------------------------------------------------


def _acting(identity: Identity, at: datetime) -> Decision:
    return replace(run(90), identity=identity, at=at)


def test_circuit_breaker_pauses_enforcement_when_many_identities_cross() -> None:
    sg = Safeguards.model_validate(
        {"circuitBreaker": {"maxIdentities": 3, "window": "5m"}, "maxActionsPerMinute": 1000}
    )
    recent = [_acting(Identity(namespace="ns", name=f"sa{i}"), T0 - MIN) for i in range(3)]
    d = apply_safeguards(run(90), recent=recent, safeguards=sg, now=T0)
    assert d.disposition is Disposition.CIRCUIT_OPEN
    # the same crossings outside the window do not count
    old = [replace(r, at=T0 - 10 * MIN) for r in recent]
    assert (
        apply_safeguards(run(90), recent=old, safeguards=sg, now=T0).disposition is Disposition.ACT
    )


def test_rate_limit_holds_actions_beyond_the_budget() -> None:
    sg = Safeguards.model_validate({"maxActionsPerMinute": 3})
    recent = [_acting(Identity(namespace="ns", name="a"), T0 - 10 * timedelta(seconds=1))]
    d = apply_safeguards(run(90), recent=recent, safeguards=sg, now=T0)
    assert d.disposition is Disposition.RATE_LIMITED
    assert any("rate limit" in r for r in d.reasons)


# --- properties ---------------------------------------------------------------------------------


@given(
    st.floats(min_value=0, max_value=100, allow_nan=False),
    st.sampled_from(list(Confidence)),
    st.sampled_from([None, "low", "medium", "high", "critical"]),
    st.integers(min_value=0, max_value=120),
)
def test_decision_is_a_pure_function_of_its_inputs(
    points: float, confidence: Confidence, prev: str | None, minutes_ago: int
) -> None:
    previous = BandState(band=prev, since=T0 - minutes_ago * MIN)
    assert run(points, confidence, previous=previous) == run(points, confidence, previous=previous)


@given(st.integers(min_value=-120, max_value=120), st.integers(min_value=0, max_value=240))
def test_exceptions_expire(expires_in: int, now_in: int) -> None:
    expires = T0 + expires_in * MIN
    now = T0 + now_in * MIN
    active = active_exceptions(
        [make_exception(expires=expires)], ctx=IdentityContext(identity=SA), now=now
    )
    assert bool(active) is (now < expires)


def test_exception_without_namespace_applies_to_default_only() -> None:
    exc = make_exception()
    exc = RiskException.model_validate(
        {**exc.model_dump(by_alias=True, exclude_none=True, mode="json"), "metadata": {"name": "x"}}
    )
    assert active_exceptions([exc], ctx=IdentityContext(identity=SA), now=T0) == ()
    ctx = IdentityContext(identity=Identity(namespace="default", name=SA.name))
    assert active_exceptions([exc], ctx=ctx, now=T0) == (exc,)


@given(
    st.lists(st.integers(min_value=0, max_value=100), min_size=2, max_size=20),
    st.sampled_from(list(Confidence)),
)
def test_without_history_a_higher_score_never_gets_a_lower_band(
    scores: list[int], confidence: Confidence
) -> None:
    bands = make_policy().spec.bands
    ranked = sorted(scores)
    indexes = [
        band_index(bands, raw_band(bands=bands, score=s, confidence=confidence)[0]) for s in ranked
    ]
    assert indexes == sorted(indexes)


@given(st.lists(st.integers(min_value=56, max_value=64), min_size=2, max_size=30))
def test_scores_jittering_around_a_boundary_cross_it_at_most_once(scores: list[int]) -> None:
    previous: BandState | None = None
    changes = 0
    for i, points in enumerate(scores):
        d = run(points, previous=previous, now=T0 + i * MIN)
        changes += d.changed_band and previous is not None
        previous = d.band_state
    assert changes <= 1


def test_first_placement_in_a_band_starting_at_zero_is_not_a_crossing() -> None:
    p = make_policy(bands=[{"name": "baseline", "minScore": 0, "actions": [{"type": "Notify"}]},
                           {"name": "high", "minScore": 60, "actions": [{"type": "RevokeToken"}]}])  # fmt: skip
    d = run(5, policy=p)
    assert (d.band, d.escalated, d.actions) == ("baseline", False, ())
    assert run(70, policy=p).escalated
