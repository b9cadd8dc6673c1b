"""Lease-based leader election: the pure take/renew/wait rule and the elector's steps."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from identity_risk.kube import Kube
from identity_risk.runtime.leader import (
    LeaderElector,
    LeaseRecord,
    Verdict,
    decide,
    from_lease,
    next_lease,
    to_lease,
)

NOW = datetime(2026, 12, 4, 12, 0, 0, tzinfo=UTC)


def held(holder: str, *, renewed_ago: float, duration: int = 15) -> LeaseRecord:
    renewed = NOW - timedelta(seconds=renewed_ago)
    return LeaseRecord(
        holder=holder, duration_seconds=duration, acquire_time=renewed, renew_time=renewed
    )


@pytest.mark.parametrize(
    ("lease", "verdict"),
    [
        (None, Verdict.TAKE),  # no Lease yet
        (LeaseRecord(holder=""), Verdict.TAKE),  # released by a leader that shut down
        (held("me", renewed_ago=3), Verdict.RENEW),
        (held("me", renewed_ago=60), Verdict.RENEW),  # ours even if late: renew it
        (held("other", renewed_ago=3), Verdict.WAIT),
        (held("other", renewed_ago=14.9), Verdict.WAIT),
        (held("other", renewed_ago=15), Verdict.TAKE),  # expired exactly now
        (held("other", renewed_ago=40), Verdict.TAKE),
        (held("other", renewed_ago=20, duration=30), Verdict.WAIT),  # its own duration counts
        (LeaseRecord(holder="other"), Verdict.TAKE),  # never renewed
    ],
)
def test_decide(lease: LeaseRecord | None, verdict: Verdict) -> None:
    assert decide(lease, me="me", now=NOW) is verdict


def test_take_counts_a_transition_and_renew_keeps_acquire_time() -> None:
    taken = next_lease(held("other", renewed_ago=40), Verdict.TAKE, me="me", now=NOW)
    assert (taken.holder, taken.acquire_time, taken.renew_time) == ("me", NOW, NOW)
    assert taken.transitions == 1
    assert next_lease(None, Verdict.TAKE, me="me", now=NOW).transitions == 0
    later = NOW + timedelta(seconds=5)
    renewed = next_lease(taken, Verdict.RENEW, me="me", now=later)
    assert (renewed.acquire_time, renewed.renew_time, renewed.transitions) == (NOW, later, 1)


def test_lease_json_round_trip() -> None:
    record = LeaseRecord(
        holder="pod-a",
        duration_seconds=15,
        acquire_time=NOW,
        renew_time=NOW + timedelta(microseconds=123456),
        transitions=2,
        resource_version="42",
    )
    body = to_lease(record, namespace="ns", name="identity-risk-operator")
    assert body["metadata"]["resourceVersion"] == "42"
    assert body["spec"]["renewTime"] == "2026-12-04T12:00:00.123456Z"
    assert from_lease(body) == record


class FakeKube:
    """An API server's Lease semantics: resourceVersion guards updates, 409 -> None."""

    def __init__(self) -> None:
        self.lease: dict[str, Any] | None = None
        self.version = 0

    def get_lease(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.lease

    def create_lease(self, namespace: str, body: dict[str, Any]) -> dict[str, Any] | None:
        if self.lease is not None:
            return None
        return self._store(body)

    def update_lease(self, namespace: str, body: dict[str, Any]) -> dict[str, Any] | None:
        assert self.lease is not None
        if body["metadata"].get("resourceVersion") != self.lease["metadata"]["resourceVersion"]:
            return None
        return self._store(body)

    def _store(self, body: dict[str, Any]) -> dict[str, Any]:
        self.version += 1
        self.lease = {
            **body,
            "metadata": {**body["metadata"], "resourceVersion": str(self.version)},
        }
        return self.lease


def test_two_electors_one_leader_and_failover() -> None:
    kube = FakeKube()
    clock = [NOW]
    events: list[str] = []

    def elector(me: str) -> LeaderElector:
        return LeaderElector(
            kube=kube,  # type: ignore[arg-type]
            namespace="ns",
            me=me,
            on_started_leading=lambda: events.append(f"{me} leads"),
            on_stopped_leading=lambda: events.append(f"{me} stops"),
            clock=lambda: clock[0],
        )

    a, b = elector("a"), elector("b")
    assert a.step() is True
    assert b.step() is False
    clock[0] += timedelta(seconds=5)
    assert a.step() is True  # renews
    assert b.step() is False
    # a stops renewing (killed); after the lease duration b takes over
    clock[0] += timedelta(seconds=14)
    assert b.step() is False
    clock[0] += timedelta(seconds=2)
    assert b.step() is True
    assert from_lease(kube.lease or {}).transitions == 1
    # a comes back: it sees b's live lease and steps down
    assert a.step() is False
    assert events == ["a leads", "b leads", "a stops"]


def test_leader_steps_down_when_it_cannot_renew_in_time() -> None:
    kube = FakeKube()
    clock = [NOW]
    stopped: list[bool] = []
    e = LeaderElector(
        kube=kube,  # type: ignore[arg-type]
        namespace="ns",
        me="a",
        on_started_leading=lambda: None,
        on_stopped_leading=lambda: stopped.append(True),
        clock=lambda: clock[0],
    )
    assert e.step() is True
    clock[0] += timedelta(seconds=11)
    e._check_deadline()
    assert stopped == [True]
    assert not e.leading


def test_fake_matches_kube_signature() -> None:
    for name in ("get_lease", "create_lease", "update_lease"):
        assert callable(getattr(Kube, name))
