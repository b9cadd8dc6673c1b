"""The live runtime's own logic: state that survives a restart, and the audit-log file source.

Neither path talks to the API server (the executor is never reached: no policy covers the
identities here except where a test adds one and then only inspects the queue), so these run
without a control plane; the end-to-end suite covers the same paths against a real one.
"""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from builders import (
    ATTACKER_IP,
    NODE_CIDR,
    POD_CIDR,
    default_objects,
    make_audit_event,
    make_event_list,
)
from prometheus_client import CollectorRegistry

from identity_risk.api import v1alpha1 as v1
from identity_risk.domain import Identity
from identity_risk.ingest import AuditRecord, ParseStats, parse_event_list
from identity_risk.metrics import Metrics
from identity_risk.policy import OperatorSelf
from identity_risk.runtime.follow import follow_audit_log
from identity_risk.runtime.live import LiveConfig, LiveOperator
from identity_risk.runtime.store import InventoryStore

WEB = Identity("shop", "web")
NOW = datetime(2026, 1, 1, 12, 30, tzinfo=UTC)


def make_live() -> LiveOperator:
    store = InventoryStore(pod_cidrs=[POD_CIDR], node_cidrs=[NODE_CIDR], min_rebuild=0)
    for obj in default_objects():
        store.upsert(obj)
    store.upsert({"kind": "Namespace", "metadata": {"name": "shop", "labels": {"tier": "prod"}}})
    live = LiveOperator(
        kube=None,  # type: ignore[arg-type]  # not reached: these tests never execute decisions
        store=store,
        executor_factory=lambda book: None,  # type: ignore[arg-type,return-value]
        metrics=Metrics(CollectorRegistry()),
        config=LiveConfig(operator=OperatorSelf()),
        clock=lambda: NOW,
    )
    policy = {
        "apiVersion": v1.API_VERSION,
        "kind": "IdentityRiskPolicy",
        "metadata": {"name": "p"},
        "spec": {
            "mode": "Audit",
            "bands": [
                {"name": "low", "minScore": 20},
                {"name": "high", "minScore": 60, "actions": [{"type": "Notify"}]},
            ],
        },
    }
    assert live.set_policy(policy) is None
    return live


def replay_attack(live: LiveOperator) -> None:
    events = [make_audit_event(at=float(i)) for i in range(5)]
    events.append(make_audit_event(at=10.0, source_ip=ATTACKER_IP))
    ack = live.on_audit(make_event_list(events))
    assert ack.accepted == 6


def test_a_stolen_token_replay_is_decided_and_queued() -> None:
    live = make_live()
    replay_attack(live)
    decision = live._work.get_nowait()
    assert decision is not None
    assert decision.identity == WEB
    assert decision.band == "high"
    assert decision.top_signal == "TokenReplay"


def test_a_follower_refuses_audit_and_neither_writes_nor_acts() -> None:
    from identity_risk.webhook import NotLeader

    live = make_live()
    live.stop_leading()
    with pytest.raises(NotLeader):
        replay_attack(live)
    live.feed(parse_event_list(make_event_list([make_audit_event(at=1.0)]), stats=ParseStats()))
    assert live.states.find(WEB) is None  # an audit log file a follower follows is not scored
    assert live._work.empty()
    assert not live._dirty
    assert live.metrics.registry.get_sample_value("identity_risk_leader") == 0


def test_a_new_leader_restores_the_records_and_resumes_unfinished_decisions() -> None:
    from kubernetes.client.exceptions import ApiException

    from identity_risk.kube import KubeError

    saved = make_live()
    replay_attack(saved)
    wir = {"metadata": {"name": "web"}, "status": {"scorerState": saved._scorer_state(WEB)}}
    calls: list[str] = []

    class Records:
        failures = 1

        def list_custom(self, kind: str) -> list[dict[str, Any]]:
            if self.failures:
                self.failures -= 1
                raise KubeError("list", kind, ApiException(status=503))
            return [wir] if kind == "WorkloadIdentityRisk" else []

    class Resumer:
        def resume(self) -> None:
            calls.append("resume")

    live = make_live()
    live.kube = Records()  # type: ignore[assignment]
    live.executor = Resumer()  # type: ignore[assignment]
    live.stop_leading()
    live.start_leading()
    assert live.metrics.registry.get_sample_value("identity_risk_leader") == 1
    take_over = live._work.get_nowait()
    take_over()  # type: ignore[operator]  # the API is away: retried, nothing resumed yet
    assert calls == []
    live._work.get(timeout=10)()  # type: ignore[operator,union-attr]
    assert calls == ["resume"]
    assert live.engine.bands[WEB].band == "high"  # the previous leader's band, restored


def test_scorer_state_survives_a_restart() -> None:
    before = make_live()
    replay_attack(before)
    saved = json.loads(json.dumps(before._scorer_state(WEB)))  # as stored in status

    after = make_live()
    after.restore({"metadata": {"name": "web"}, "status": {"scorerState": saved}})
    assert after.engine.bands[WEB].band == "high"
    assert [s.type for s in after.engine.ledger.signals(WEB)] == [
        s.type for s in before.engine.ledger.signals(WEB)
    ]
    restored = after.states.find(WEB)
    assert restored is not None
    assert restored.operations == before.states.find(WEB).operations  # type: ignore[union-attr]
    # The same evidence again decides nothing new: the band was restored with it.
    replay_attack(after)
    assert after._work.empty()


def test_a_foreign_or_broken_scorer_state_is_ignored() -> None:
    live = make_live()
    live.restore({"metadata": {"name": "web"}, "status": {"scorerState": {"version": 99}}})
    live.restore({"metadata": {"name": "web"}, "status": {"scorerState": {"version": 1}}})
    assert live.states.find(WEB) is None


def test_a_batch_that_is_not_an_event_list_is_refused_and_nothing_changes() -> None:
    from identity_risk.webhook import BatchRejected

    live = make_live()
    with pytest.raises(BatchRejected) as refused:
        live.on_audit(b'{"kind": "Pod"}')
    assert refused.value.reason == "not_an_event_list"
    assert live.states.find(WEB) is None


class Collect:
    def __init__(self) -> None:
        self.records: list[AuditRecord] = []

    def feed(self, records: list[AuditRecord]) -> None:
        self.records.extend(records)


def wait_for_count(feed: Collect, count: int) -> None:
    deadline = time.monotonic() + 5
    while len(feed.records) < count and time.monotonic() < deadline:
        time.sleep(0.02)
    assert len(feed.records) == count


def line(i: int, **kwargs: Any) -> str:
    return json.dumps(make_audit_event(at=float(i), audit_id=f"id-{i}", **kwargs)) + "\n"


def test_the_audit_log_is_followed_across_appends_torn_lines_and_rotation(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    path.write_text(line(0))  # history: not replayed
    feed, stop = Collect(), threading.Event()
    metrics = Metrics(CollectorRegistry())
    thread = threading.Thread(
        target=follow_audit_log,
        kwargs={"path": path, "live": feed, "stop": stop, "metrics": metrics, "poll": 0.02},
    )
    thread.start()
    try:
        time.sleep(0.2)
        with path.open("a") as handle:
            handle.write(line(1) + "not json\n")
            handle.write(line(2)[:40])  # a torn line: kept until its newline arrives
        wait_for_count(feed, 1)
        with path.open("a") as handle:
            handle.write(line(2)[40:])
        wait_for_count(feed, 2)
        rotated = tmp_path / "audit.log.1"
        path.rename(rotated)
        path.write_text(line(3))
        wait_for_count(feed, 3)
    finally:
        stop.set()
        thread.join(timeout=5)
    assert [r.audit_id for r in feed.records] == ["id-1", "id-2", "id-3"]
    rejected = metrics.registry.get_sample_value(
        "identity_risk_audit_events_rejected_total",
        {"source": "log", "reason": "invalid_json"},
    )
    assert rejected == 1
