"""Properties of parsing: it never raises on hostile input, and it counts each request once."""

from __future__ import annotations

import contextlib
from typing import Any

import msgspec
from builders import make_audit_event, make_event_list
from hypothesis import given, settings
from hypothesis import strategies as st

from identity_risk.ingest import (
    REJECTION_REASONS,
    BatchRejected,
    Deduplicator,
    ParseStats,
    parse_event,
    parse_event_list,
    parse_lines,
)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=20,
)

# Events whose known fields are replaced by arbitrary JSON: close enough to real to go deep.
event_fields = st.sampled_from(
    ["auditID", "stage", "verb", "user", "objectRef", "sourceIPs", "annotations",
     "requestReceivedTimestamp", "stageTimestamp", "responseStatus", "requestObject",
     "userAgent", "impersonatedUser", "apiVersion"]
)  # fmt: skip


@st.composite
def mangled_events(draw: st.DrawFn) -> dict[str, Any]:
    event = make_audit_event(
        verb=draw(st.sampled_from(["create", "get", "list"])),
        resource=draw(st.sampled_from(["pods", "secrets", "deployments"])),
        request_object={"spec": draw(json_values)},
    )
    for field in draw(st.lists(event_fields, max_size=3)):
        event[field] = draw(json_values)
    return event


def _assert_accounted(stats: ParseStats, offered: int) -> None:
    assert set(stats.rejected) <= REJECTION_REASONS
    assert stats.total == offered


@given(st.binary(max_size=512))
def test_arbitrary_bytes_never_raise_for_a_line(data: bytes) -> None:
    stats = ParseStats()

    parse_event(data, stats=stats)

    _assert_accounted(stats, 1)


@given(json_values)
def test_arbitrary_json_never_raises_for_a_line(value: Any) -> None:
    stats = ParseStats()

    parse_event(msgspec.json.encode(value), stats=stats)

    _assert_accounted(stats, 1)


@settings(max_examples=200)
@given(st.lists(mangled_events(), max_size=6))
def test_mangled_events_never_raise_and_are_all_accounted(events: list[dict[str, Any]]) -> None:
    stats = ParseStats()

    records = parse_event_list(make_event_list(events), stats=stats)

    assert stats.accepted == len(records)
    _assert_accounted(stats, len(events))


@given(st.lists(json_values, max_size=6))
def test_arbitrary_items_in_an_event_list_never_raise(items: list[Any]) -> None:
    stats = ParseStats()

    parse_event_list(make_event_list(items), stats=stats)

    _assert_accounted(stats, len(items))


@given(st.binary(max_size=256) | json_values.map(msgspec.json.encode))
def test_a_batch_either_parses_or_is_refused_cleanly(data: bytes) -> None:
    with contextlib.suppress(BatchRejected):
        parse_event_list(data)


@given(st.lists(st.text(max_size=40), max_size=8))
def test_arbitrary_lines_never_raise(lines: list[str]) -> None:
    stats = ParseStats()

    list(parse_lines(lines, stats=stats))

    assert set(stats.rejected) <= REJECTION_REASONS


@given(
    st.lists(
        st.tuples(
            st.integers(min_value=0, max_value=15),
            st.sampled_from(["RequestReceived", "ResponseStarted", "ResponseComplete", "Panic"]),
        ),
        max_size=60,
    ),
    st.integers(min_value=1, max_value=8),
)
def test_each_request_is_counted_once(deliveries: list[tuple[int, str]], batch_size: int) -> None:
    """However stages are repeated and batched, each auditID yields at most one record."""
    events = [make_audit_event(audit_id=f"req-{n}", stage=stage) for n, stage in deliveries]
    dedupe, stats = Deduplicator(), ParseStats()

    records = []
    for start in range(0, len(events), batch_size):
        batch = make_event_list(events[start : start + batch_size])
        records.extend(parse_event_list(batch, stats=stats, dedupe=dedupe))

    counted = [r.audit_id for r in records]
    expected = {f"req-{n}" for n, stage in deliveries if stage != "RequestReceived"}
    assert len(counted) == len(set(counted))
    assert set(counted) == expected
    assert stats.total == len(events)
