"""Parsing audit events: what an AuditRecord holds, what is rejected and why, counting once."""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

import msgspec
import pytest
from builders import (
    ATTACKER_IP,
    CREDENTIAL_ID,
    POD_IP,
    POD_UID,
    T0,
    make_audit_event,
    make_event_list,
    make_jsonl,
    make_pod_spec_object,
    make_record,
)

from identity_risk.domain import Identity
from identity_risk.ingest import (
    BatchRejected,
    Deduplicator,
    ParseStats,
    parse_event,
    parse_event_list,
    parse_lines,
    read_audit_log,
)


def encode(obj: Any) -> bytes:
    return msgspec.json.encode(obj)


# --- what a record holds ---------------------------------------------------------------------


def test_service_account_request_is_flattened() -> None:
    record = make_record(verb="get", resource="configmaps", name="app-config", at=1.5)

    assert record.identity == Identity(namespace="shop", name="web")
    assert (record.verb, record.resource, record.namespace, record.name) == (
        "get", "configmaps", "shop", "app-config",
    )  # fmt: skip
    assert record.decision == "allow"
    assert record.reason.startswith("RBAC")
    assert record.response_code == 200
    assert record.timestamp.isoformat() == "2026-01-05T09:00:01.500000+00:00"
    assert record.epoch == pytest.approx(T0.timestamp() + 1.5)
    assert record.operation == "get /configmaps shop"


def test_bound_token_claims_are_unwrapped() -> None:
    record = make_record()

    assert (record.pod_name, record.pod_uid, record.node_name, record.credential_id) == (
        "web-1", POD_UID, "node-a", CREDENTIAL_ID,
    )  # fmt: skip


def test_last_source_ip_is_the_trustworthy_one() -> None:
    record = make_record(source_ips=[ATTACKER_IP, "10.0.0.1", POD_IP])

    assert record.source_ip == POD_IP


@pytest.mark.parametrize(
    ("username", "identity", "anonymous"),
    [
        pytest.param("system:serviceaccount:shop:web", Identity("shop", "web"), False, id="sa"),
        pytest.param("jane@example.com", None, False, id="human"),
        pytest.param("system:anonymous", None, True, id="anonymous"),
        pytest.param("system:serviceaccount:broken", None, False, id="malformed-sa"),
        pytest.param("system:node:node-a", None, False, id="node"),
    ],
)
def test_identity_is_resolved_from_username(
    username: str, identity: Identity | None, anonymous: bool
) -> None:
    record = make_record(sa=None, username=username, bound=False)

    assert record.identity == identity
    assert record.anonymous is anonymous


def test_subresource_and_api_group_are_kept() -> None:
    record = make_record(
        verb="create", resource="clusterrolebindings", api_group="rbac.authorization.k8s.io",
        namespace="",
    )  # fmt: skip
    exec_record = make_record(verb="create", resource="pods", subresource="exec", name="db-0")

    assert record.api_group == "rbac.authorization.k8s.io"
    assert record.operation == "create rbac.authorization.k8s.io/clusterrolebindings "
    assert exec_record.full_resource == "pods/exec"


def test_impersonation_is_a_different_operation() -> None:
    record = make_record(impersonate="admin@example.com")

    assert record.impersonated_user == "admin@example.com"
    assert record.operation == "get /configmaps shop (impersonating)"


def test_non_resource_request_uses_its_path() -> None:
    record = make_record(
        verb="get", resource=None, namespace="", request_uri="/version?timeout=32s"
    )

    assert record.resource == ""
    assert record.operation == "get /version"


@pytest.mark.parametrize(
    ("body", "flags"),
    [
        pytest.param(make_pod_spec_object(), (False, False, False), id="plain"),
        pytest.param(make_pod_spec_object(privileged=True), (True, False, False), id="privileged"),
        pytest.param(make_pod_spec_object(host_path="/"), (False, True, False), id="hostPath"),
        pytest.param(
            make_pod_spec_object(host_network=True), (False, False, True), id="hostNetwork"
        ),
        pytest.param({"spec": "nonsense"}, (False, False, False), id="malformed-body"),
    ],
)
def test_pod_create_body_is_probed(body: dict[str, Any], flags: tuple[bool, bool, bool]) -> None:
    record = make_record(verb="create", resource="pods", request_object=body)

    assert (record.privileged, record.host_path, record.host_namespace) == flags


def test_workload_template_is_probed() -> None:
    deployment = {"spec": {"template": make_pod_spec_object(privileged=True)}}

    record = make_record(
        verb="create", resource="deployments", api_group="apps", request_object=deployment
    )

    assert record.privileged


def test_forbidden_request_is_denied() -> None:
    record = make_record(decision="forbid", reason="")

    assert record.denied
    assert not record.allowed


def test_timestamp_falls_back_to_stage_timestamp() -> None:
    event = make_audit_event(at=3)
    del event["requestReceivedTimestamp"]

    record = parse_event(encode(event))

    assert record is not None
    assert record.timestamp.isoformat() == "2026-01-05T09:00:03.004000+00:00"


# --- rejections ------------------------------------------------------------------------------


def _without(path: str) -> dict[str, Any]:
    event = make_audit_event()
    *parents, leaf = path.split(".")
    target = event
    for key in parents:
        target = target[key]
    del target[leaf]
    return event


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        pytest.param(b"{not json", "invalid_json", id="invalid-json"),
        pytest.param(b"[1, 2]", "not_an_object", id="array"),
        pytest.param(b'"event"', "not_an_object", id="string"),
        pytest.param(encode(_without("auditID")), "missing_audit_id", id="no-audit-id"),
        pytest.param(encode(_without("stage")), "missing_stage", id="no-stage"),
        pytest.param(encode(_without("verb")), "missing_verb", id="no-verb"),
        pytest.param(encode(_without("user")), "missing_user", id="no-user"),
        pytest.param(encode(_without("user.username")), "missing_user", id="no-username"),
        pytest.param(
            encode({k: v for k, v in make_audit_event().items() if "Timestamp" not in k}),
            "missing_timestamp",
            id="no-timestamp",
        ),
        pytest.param(
            encode({**make_audit_event(), "requestReceivedTimestamp": "yesterday"}),
            "invalid_timestamp",
            id="bad-timestamp",
        ),
        pytest.param(
            encode({**make_audit_event(), "requestReceivedTimestamp": "2026-01-05T09:00:00"}),
            "invalid_timestamp",
            id="naive-timestamp",
        ),
        pytest.param(encode({**make_audit_event(), "verb": 7}), "invalid_schema", id="verb-number"),
        pytest.param(
            encode({**make_audit_event(), "apiVersion": "audit.k8s.io/v1beta1"}),
            "unsupported_api_version",
            id="v1beta1",
        ),
    ],
)
def test_malformed_event_is_rejected_with_reason(data: bytes, reason: str) -> None:
    stats = ParseStats()

    assert parse_event(data, stats=stats) is None
    assert stats.rejected == {reason: 1}
    assert stats.accepted == 0


def test_malformed_item_does_not_abort_its_batch() -> None:
    good = [make_audit_event(at=i) for i in range(3)]
    bad = {**make_audit_event(), "verb": 7}
    stats = ParseStats()

    records = parse_event_list(make_event_list([good[0], bad, good[1], 42, good[2]]), stats=stats)

    assert [r.audit_id for r in records] == [e["auditID"] for e in good]
    assert stats.accepted == 3
    assert stats.rejected == {"invalid_schema": 1, "not_an_object": 1}


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"garbage", id="not-json"),
        pytest.param(b"[]", id="array"),
        pytest.param(b"{}", id="no-items"),
        pytest.param(b'{"kind": "EventList", "items": {}}', id="items-not-list"),
        pytest.param(b'{"kind": "PodList", "items": []}', id="wrong-kind"),
        pytest.param(
            b'{"kind": "EventList", "apiVersion": "audit.k8s.io/v1beta1", "items": []}',
            id="wrong-version",
        ),
    ],
)
def test_batch_that_is_not_an_event_list_is_refused(data: bytes) -> None:
    with pytest.raises(BatchRejected, match=r"EventList|JSON"):
        parse_event_list(data)


def test_empty_event_list_is_accepted() -> None:
    assert parse_event_list(make_event_list([])) == []


# --- counting each request once --------------------------------------------------------------


def test_stages_of_one_request_count_once() -> None:
    stats = ParseStats()
    events = [
        make_audit_event(audit_id="a-1", stage=stage)
        for stage in ("RequestReceived", "ResponseComplete")
    ]

    records = parse_event_list(make_event_list(events), stats=stats)

    assert [r.stage for r in records] == ["ResponseComplete"]
    assert (stats.accepted, stats.skipped_stages, stats.duplicates) == (1, 1, 0)


def test_watch_counts_at_response_started_and_not_again() -> None:
    stats = ParseStats()
    events = [
        make_audit_event(audit_id="w-1", verb="watch", resource="secrets", stage=stage)
        for stage in ("RequestReceived", "ResponseStarted", "ResponseComplete")
    ]

    records = parse_event_list(make_event_list(events), stats=stats)

    assert [r.stage for r in records] == ["ResponseStarted"]
    assert stats.duplicates == 1


def test_retried_batch_is_not_counted_twice() -> None:
    dedupe, stats = Deduplicator(), ParseStats()
    batch = make_event_list([make_audit_event(at=i) for i in range(5)])

    first = parse_event_list(batch, stats=stats, dedupe=dedupe)
    second = parse_event_list(batch, stats=stats, dedupe=dedupe)

    assert (len(first), len(second)) == (5, 0)
    assert stats.duplicates == 5


def test_request_received_can_be_counted_when_asked() -> None:
    dedupe = Deduplicator(include_request_received=True)

    record = parse_event(encode(make_audit_event(stage="RequestReceived")), dedupe=dedupe)

    assert record is not None


def test_dedupe_window_is_bounded() -> None:
    dedupe = Deduplicator(capacity=100)

    for i in range(10_000):
        dedupe.admit(f"id-{i}")

    assert len(dedupe) <= 200
    assert not dedupe.admit("id-9999")  # recent ones are still remembered


def test_dedupe_capacity_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        Deduplicator(capacity=0)


# --- audit log files -------------------------------------------------------------------------


def test_json_lines_skip_blank_and_bad_lines() -> None:
    stats = ParseStats()
    lines = [*make_jsonl([make_audit_event(at=0)]), b"\n", b"{oops\n",
             *make_jsonl([make_audit_event(at=1)])]  # fmt: skip

    records = list(parse_lines(lines, stats=stats))

    assert len(records) == 2
    assert stats.rejected == {"invalid_json": 1}


def test_json_lines_accept_text() -> None:
    lines = [line.decode() for line in make_jsonl([make_audit_event()])]

    assert len(list(parse_lines(lines))) == 1


@pytest.mark.parametrize("compressed", [False, True], ids=["plain", "gzip"])
def test_audit_log_file_is_read(tmp_path: Path, compressed: bool) -> None:
    content = b"".join(make_jsonl([make_audit_event(at=i) for i in range(4)]))
    path = tmp_path / ("audit.log.gz" if compressed else "audit.log")
    path.write_bytes(gzip.compress(content) if compressed else content)
    stats = ParseStats()

    records = list(read_audit_log(path, stats=stats))

    assert len(records) == 4
    assert stats.accepted == 4


def test_stats_merge_and_total() -> None:
    a, b = ParseStats(accepted=2, duplicates=1), ParseStats(skipped_stages=1)
    b.rejected["invalid_json"] += 2

    a.merge(b)

    assert a.total == 6
