"""Decoding audit events from bytes into ``AuditRecord``s, fast and without ever failing a batch.

The operator must keep up with a busy apiserver on one core (the target is 100,000 events/s end to
end), so decoding uses msgspec with typed Structs that name only the fields we read: msgspec skips
everything else (request and response bodies, managed fields) without building Python objects for
it, and parses RFC 3339 timestamps in C. ``benchmarks/json_decode.py`` measures this against orjson.

Robustness: a batch is first decoded in one typed pass (the fast path). If any item is malformed,
the batch is decoded again item by item from raw slices, so one bad event is rejected with a reason
and its neighbours survive. Only input that is not an EventList at all is refused as a whole, with
``BatchRejected``. Nothing here raises on arbitrary bytes otherwise.
"""

from __future__ import annotations

import functools
import gzip
import re
from collections.abc import Iterable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Annotated

import msgspec

from identity_risk.domain import Identity
from identity_risk.ingest import stats as reasons
from identity_risk.ingest.dedupe import STAGE_REQUEST_RECEIVED, Deduplicator
from identity_risk.ingest.record import ANONYMOUS_USERNAME, AuditRecord, operation_key
from identity_risk.ingest.stats import ParseStats

AUDIT_API_VERSION = "audit.k8s.io/v1"

EXTRA_POD_NAME = "authentication.kubernetes.io/pod-name"
EXTRA_POD_UID = "authentication.kubernetes.io/pod-uid"
EXTRA_NODE_NAME = "authentication.kubernetes.io/node-name"
EXTRA_CREDENTIAL_ID = "authentication.kubernetes.io/credential-id"

ANNOTATION_DECISION = "authorization.k8s.io/decision"
ANNOTATION_REASON = "authorization.k8s.io/reason"

AwareDatetime = Annotated[datetime, msgspec.Meta(tz=True)]


class BatchRejected(ValueError):
    """The webhook body is not an ``audit.k8s.io/v1`` EventList; nothing in it was read."""


# --- the wire shape: only the fields we read -------------------------------------------------


class _Extra(msgspec.Struct, gc=False):
    """The bound-token claims of ``user.extra``; other keys are skipped unread."""

    pod_name: tuple[str, ...] = msgspec.field(default=(), name=EXTRA_POD_NAME)
    pod_uid: tuple[str, ...] = msgspec.field(default=(), name=EXTRA_POD_UID)
    node_name: tuple[str, ...] = msgspec.field(default=(), name=EXTRA_NODE_NAME)
    credential_id: tuple[str, ...] = msgspec.field(default=(), name=EXTRA_CREDENTIAL_ID)


class _User(msgspec.Struct, gc=False):
    username: str = ""
    groups: tuple[str, ...] = ()
    extra: _Extra | None = None


class _Annotations(msgspec.Struct, gc=False):
    decision: str = msgspec.field(default="", name=ANNOTATION_DECISION)
    reason: str = msgspec.field(default="", name=ANNOTATION_REASON)


class _ObjectRef(msgspec.Struct, gc=False):
    resource: str = ""
    namespace: str = ""
    name: str = ""
    apiGroup: str = ""
    subresource: str = ""


class _Status(msgspec.Struct, gc=False):
    code: int = 0


class _Event(msgspec.Struct, gc=False):
    apiVersion: str = ""
    auditID: str = ""
    stage: str = ""
    requestURI: str = ""
    verb: str = ""
    user: _User | None = None
    impersonatedUser: _User | None = None
    sourceIPs: tuple[str, ...] = ()
    userAgent: str = ""
    objectRef: _ObjectRef | None = None
    responseStatus: _Status | None = None
    requestObject: msgspec.Raw = msgspec.Raw()
    requestReceivedTimestamp: AwareDatetime | None = None
    # Parsed only when requestReceivedTimestamp is missing: decoding both costs 15% of parsing.
    stageTimestamp: str = ""
    annotations: _Annotations | None = None


class _EventList(msgspec.Struct, gc=False):
    kind: str = ""
    apiVersion: str = ""
    items: list[_Event] | None = None


class _RawEventList(msgspec.Struct, gc=False):
    kind: str = ""
    apiVersion: str = ""
    items: list[msgspec.Raw] | None = None


# Pod-spec probe for privileged / hostPath / host namespaces in pod and workload creates.
class _SecurityContext(msgspec.Struct, gc=False):
    privileged: bool | None = None


class _Container(msgspec.Struct, gc=False):
    securityContext: _SecurityContext | None = None


class _HostPath(msgspec.Struct, gc=False):
    path: str = ""


class _Volume(msgspec.Struct, gc=False):
    hostPath: _HostPath | None = None


class _PodSpec(msgspec.Struct, gc=False):
    containers: list[_Container] = []
    initContainers: list[_Container] = []
    ephemeralContainers: list[_Container] = []
    volumes: list[_Volume] = []
    hostNetwork: bool = False
    hostPID: bool = False
    hostIPC: bool = False


class _PodTemplate(msgspec.Struct, gc=False):
    spec: _PodSpec | None = None


class _JobSpec(msgspec.Struct, gc=False):
    template: _PodTemplate | None = None


class _JobTemplate(msgspec.Struct, gc=False):
    spec: _JobSpec | None = None


class _WorkloadSpec(msgspec.Struct, gc=False):
    template: _PodTemplate | None = None
    jobTemplate: _JobTemplate | None = None


class _Pod(msgspec.Struct, gc=False):
    spec: _PodSpec | None = None


class _Workload(msgspec.Struct, gc=False):
    spec: _WorkloadSpec | None = None


_event_decoder = msgspec.json.Decoder(_Event)
_list_decoder = msgspec.json.Decoder(_EventList)
_raw_list_decoder = msgspec.json.Decoder(_RawEventList)
_pod_decoder = msgspec.json.Decoder(_Pod)
_workload_decoder = msgspec.json.Decoder(_Workload)

_WORKLOAD_RESOURCES = frozenset(
    {"deployments", "daemonsets", "statefulsets", "replicasets", "jobs", "cronjobs",
     "replicationcontrollers", "podtemplates"}
)  # fmt: skip
_TIMESTAMP_FIELDS = frozenset({"requestReceivedTimestamp", "stageTimestamp"})
_FIELD_IN_ERROR = re.compile(r"at `\$(?:\.items\[\d+\])?\.(\w+)")


@functools.lru_cache(maxsize=8192)
def _identity(username: str) -> Identity | None:
    return Identity.from_username(username)


def _pod_spec_flags(raw: msgspec.Raw, resource: str) -> tuple[bool, bool, bool]:
    """(privileged, hostPath, host namespaces) requested by a pod or workload create body."""
    try:
        if resource == "pods":
            spec = _pod_decoder.decode(raw).spec
        else:
            workload = _workload_decoder.decode(raw).spec
            if workload is None:
                return False, False, False
            template = workload.template
            if template is None and workload.jobTemplate and workload.jobTemplate.spec:
                template = workload.jobTemplate.spec.template
            spec = template.spec if template else None
    except msgspec.DecodeError:
        return False, False, False
    if spec is None:
        return False, False, False
    privileged = any(
        c.securityContext is not None and c.securityContext.privileged is True
        for group in (spec.containers, spec.initContainers, spec.ephemeralContainers)
        for c in group
    )
    host_path = any(v.hostPath is not None for v in spec.volumes)
    return privileged, host_path, spec.hostNetwork or spec.hostPID or spec.hostIPC


def _stage_timestamp(value: str) -> datetime | None:
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def _rejection(event: _Event) -> str:
    """Why an event that failed the fast validity check in ``_to_record`` is rejected."""
    if event.apiVersion and event.apiVersion != AUDIT_API_VERSION:
        return reasons.UNSUPPORTED_API_VERSION
    if not event.auditID:
        return reasons.MISSING_AUDIT_ID
    if not event.stage:
        return reasons.MISSING_STAGE
    if not event.verb:
        return reasons.MISSING_VERB
    return reasons.MISSING_USER


def _to_record(event: _Event) -> AuditRecord | str:
    """The record for a decoded event, or the reason it is rejected."""
    user = event.user
    if (
        not (event.auditID and event.stage and event.verb)
        or user is None
        or not user.username
        or (event.apiVersion and event.apiVersion != AUDIT_API_VERSION)
    ):
        return _rejection(event)
    timestamp = event.requestReceivedTimestamp
    if timestamp is None:
        if not event.stageTimestamp:
            return reasons.MISSING_TIMESTAMP
        timestamp = _stage_timestamp(event.stageTimestamp)
        if timestamp is None:
            return reasons.INVALID_TIMESTAMP
    try:
        epoch = timestamp.timestamp()
    except (OverflowError, ValueError, OSError):
        return reasons.INVALID_TIMESTAMP

    username = user.username
    extra = user.extra
    if extra is not None:
        pod_name = extra.pod_name[0] if extra.pod_name else ""
        pod_uid = extra.pod_uid[0] if extra.pod_uid else ""
        node_name = extra.node_name[0] if extra.node_name else ""
        credential_id = extra.credential_id[0] if extra.credential_id else ""
    else:
        pod_name = pod_uid = node_name = credential_id = ""

    ref = event.objectRef
    verb = event.verb
    impersonated = event.impersonatedUser
    # Acting as someone else is a different operation from doing it as oneself.
    if ref is not None:
        resource, subresource, namespace = ref.resource, ref.subresource, ref.namespace
        name, api_group = ref.name, ref.apiGroup
        operation = operation_key(
            verb, api_group, resource, subresource, namespace, None, impersonated is not None
        )
    else:
        resource = subresource = namespace = name = api_group = ""
        operation = operation_key(verb, "", "", "", "", event.requestURI, impersonated is not None)

    privileged = host_path = host_namespace = False
    if (
        verb == "create"
        and not subresource
        and (resource == "pods" or resource in _WORKLOAD_RESOURCES)
    ):
        raw = event.requestObject
        if len(raw) > 4:  # neither absent nor "null"
            privileged, host_path, host_namespace = _pod_spec_flags(raw, resource)

    annotations = event.annotations
    status = event.responseStatus
    source_ips = event.sourceIPs
    # Positional, in AuditRecord's field order (see its docstring).
    return AuditRecord(
        event.auditID,
        event.stage,
        timestamp,
        epoch,
        username,
        verb,
        user.groups,
        _identity(username),
        username == ANONYMOUS_USERNAME,
        impersonated.username if impersonated is not None else "",
        resource,
        subresource,
        namespace,
        name,
        api_group,
        operation,
        annotations.decision if annotations is not None else "",
        annotations.reason if annotations is not None else "",
        status.code if status is not None else 0,
        source_ips[-1] if source_ips else "",
        event.userAgent,
        pod_name,
        pod_uid,
        node_name,
        credential_id,
        event.requestURI,
        privileged,
        host_path,
        host_namespace,
    )


def _validation_reason(error: msgspec.ValidationError) -> str:
    message = str(error)
    if message.startswith("Expected `object`") and "`$" not in message:
        return reasons.NOT_AN_OBJECT
    match = _FIELD_IN_ERROR.search(message)
    if match is not None and match.group(1) in _TIMESTAMP_FIELDS:
        return reasons.INVALID_TIMESTAMP
    return reasons.INVALID_SCHEMA


def _decode_one(data: bytes | str | msgspec.Raw) -> _Event | str:
    try:
        return _event_decoder.decode(data)
    except msgspec.ValidationError as error:
        return _validation_reason(error)
    except (msgspec.DecodeError, UnicodeEncodeError):
        return reasons.INVALID_JSON


def _admit(event: _Event | str, stats: ParseStats, dedupe: Deduplicator) -> AuditRecord | None:
    if isinstance(event, str):
        stats.rejected[event] += 1
        return None
    if event.stage == STAGE_REQUEST_RECEIVED and dedupe.skips_stage(event.stage):
        stats.skipped_stages += 1
        return None
    record = _to_record(event)
    if isinstance(record, str):
        stats.rejected[record] += 1
        return None
    if not dedupe.admit(record.audit_id):
        stats.duplicates += 1
        return None
    stats.accepted += 1
    return record


def parse_event(
    data: bytes | str, *, stats: ParseStats | None = None, dedupe: Deduplicator | None = None
) -> AuditRecord | None:
    """One ``audit.k8s.io/v1`` Event; None when it is rejected, skipped or a duplicate.

    Never raises on malformed input: the outcome is counted in ``stats``.
    """
    return _admit(
        _decode_one(data),
        stats if stats is not None else ParseStats(),
        dedupe if dedupe is not None else Deduplicator(),
    )


def parse_event_list(
    data: bytes | str, *, stats: ParseStats | None = None, dedupe: Deduplicator | None = None
) -> list[AuditRecord]:
    """The records of one audit webhook batch (an ``audit.k8s.io/v1`` EventList), in order.

    Malformed items are skipped and counted in ``stats`` by reason; duplicates (by auditID, within
    ``dedupe``'s window — a fresh window per call when omitted) are counted once. Raises
    ``BatchRejected`` only when ``data`` is not an EventList at all.
    """
    stats = stats if stats is not None else ParseStats()
    dedupe = dedupe if dedupe is not None else Deduplicator()
    events: list[_Event] | list[msgspec.Raw]
    try:
        batch = _list_decoder.decode(data)
        kind, api_version, events = batch.kind, batch.apiVersion, batch.items or []
        if batch.items is None:
            raise BatchRejected("audit batch has no `items`: expected an audit.k8s.io/v1 EventList")
    except msgspec.ValidationError:
        try:
            raw = _raw_list_decoder.decode(data)
        except (msgspec.DecodeError, UnicodeEncodeError) as error:
            raise BatchRejected(
                f"audit batch is not an audit.k8s.io/v1 EventList: {error}"
            ) from None
        if raw.items is None:
            raise BatchRejected(
                "audit batch has no `items`: expected an audit.k8s.io/v1 EventList"
            ) from None
        kind, api_version, events = raw.kind, raw.apiVersion, raw.items
    except (msgspec.DecodeError, UnicodeEncodeError) as error:
        raise BatchRejected(f"audit batch is not valid JSON: {error}") from None
    if kind and kind != "EventList":
        raise BatchRejected(f"audit batch has kind {kind!r}: expected EventList")
    if api_version and api_version != AUDIT_API_VERSION:
        raise BatchRejected(
            f"audit batch has apiVersion {api_version!r}: expected an {AUDIT_API_VERSION} "
            f"EventList (set the apiserver's --audit-webhook-version={AUDIT_API_VERSION})"
        )
    records: list[AuditRecord] = []
    append = records.append
    for item in events:
        event = _decode_one(item) if isinstance(item, msgspec.Raw) else item
        record = _admit(event, stats, dedupe)
        if record is not None:
            append(record)
    return records


def parse_lines(
    lines: Iterable[bytes | str],
    *,
    stats: ParseStats | None = None,
    dedupe: Deduplicator | None = None,
) -> Iterator[AuditRecord]:
    """Records from a JSON-lines audit log (the apiserver's ``--audit-log-path`` format).

    Lazily yields in file order; blank lines are ignored; a malformed line is counted in
    ``stats`` and skipped. Never raises on malformed content.
    """
    stats = stats if stats is not None else ParseStats()
    dedupe = dedupe if dedupe is not None else Deduplicator()
    decode = _event_decoder.decode
    for line in lines:
        event: _Event | str
        try:
            event = decode(line)
        except msgspec.ValidationError as error:
            event = _validation_reason(error)
        except (msgspec.DecodeError, UnicodeEncodeError):
            if not line.strip():
                continue  # blank lines are checked only here, off the hot path
            event = reasons.INVALID_JSON
        record = _admit(event, stats, dedupe)
        if record is not None:
            yield record


def read_audit_log(
    path: str | Path,
    *,
    stats: ParseStats | None = None,
    dedupe: Deduplicator | None = None,
) -> Iterator[AuditRecord]:
    """Records from an audit log file on disk (gzip-compressed when the name ends in ``.gz``).

    The only function in the core that opens a file; it does so lazily, as iteration begins.
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as handle:
        yield from parse_lines(handle, stats=stats, dedupe=dedupe)
