"""Lease-based leader election: one replica scores audit batches, ticks and acts.

Every replica serves ``/authorize`` and ``/mutate`` (both only read state every replica builds
from the watches). Only the leader reads ``/audit`` batches, runs the tick loop and executes
decisions; a follower answers ``/audit`` with 503 and the apiserver's batch webhook retries.

The election is a ``coordination.k8s.io/v1`` Lease in the operator's namespace, written with
optimistic concurrency (the Lease's resourceVersion): a write that lost a race gets 409 and the
elector re-reads. ``decide`` is the pure rule (take, keep or wait) and is unit tested with an
injected clock; ``LeaderElector`` is the thread around it.

A leader that cannot renew within ``renew_deadline`` stops leading on its own, before its Lease
expires for the others, so two leaders never act at once as long as clocks roughly agree.
"""

from __future__ import annotations

import enum
import logging
import os
import socket
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from identity_risk.kube import Kube, KubeError

log = logging.getLogger(__name__)

LEASE_NAME = "identity-risk-operator"
LEASE_DURATION = timedelta(seconds=15)
RENEW_PERIOD = timedelta(seconds=5)
RENEW_DEADLINE = timedelta(seconds=10)
LEADER_LABEL = "identityrisk.dev/leader"
"""Set to ``"true"`` on the leader's pod: the audit Service selects only that pod."""


def identity() -> str:
    """This replica's holder identity: the pod name, else hostname and pid (local runs)."""
    pod = os.environ.get("POD_NAME", "")
    return pod or f"{socket.gethostname()}-{os.getpid()}"


@dataclass(frozen=True, slots=True)
class LeaseRecord:
    """The fields of a Lease the election reads and writes."""

    holder: str = ""
    duration_seconds: int = int(LEASE_DURATION.total_seconds())
    acquire_time: datetime | None = None
    renew_time: datetime | None = None
    transitions: int = 0
    resource_version: str = ""


class Verdict(enum.Enum):
    TAKE = "take"
    """Nobody holds a live lease: take it (a leadership transition)."""
    RENEW = "renew"
    """We hold it: renew it."""
    WAIT = "wait"
    """Another replica holds a live lease."""


def decide(lease: LeaseRecord | None, *, me: str, now: datetime) -> Verdict:
    """Take, renew or wait, given the current Lease (None: there is none yet)."""
    if lease is None or not lease.holder:
        return Verdict.TAKE
    if lease.holder == me:
        return Verdict.RENEW
    last = lease.renew_time or lease.acquire_time
    if last is None or now >= last + timedelta(seconds=lease.duration_seconds):
        return Verdict.TAKE
    return Verdict.WAIT


def next_lease(
    lease: LeaseRecord | None, verdict: Verdict, *, me: str, now: datetime
) -> LeaseRecord:
    """The Lease to write for a TAKE or RENEW verdict."""
    base = lease or LeaseRecord()
    if verdict is Verdict.RENEW:
        return replace(base, renew_time=now)
    transitions = base.transitions + (1 if lease is not None and lease.holder else 0)
    return replace(
        base,
        holder=me,
        duration_seconds=int(LEASE_DURATION.total_seconds()),
        acquire_time=now,
        renew_time=now,
        transitions=transitions,
    )


def from_lease(obj: Mapping[str, Any]) -> LeaseRecord:
    """A Lease object (JSON) as the fields the election reads."""
    spec = obj.get("spec") or {}

    def stamp(key: str) -> datetime | None:
        value = spec.get(key)
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")) if value else None

    return LeaseRecord(
        holder=str(spec.get("holderIdentity") or ""),
        duration_seconds=int(spec.get("leaseDurationSeconds") or LEASE_DURATION.total_seconds()),
        acquire_time=stamp("acquireTime"),
        renew_time=stamp("renewTime"),
        transitions=int(spec.get("leaseTransitions") or 0),
        resource_version=str((obj.get("metadata") or {}).get("resourceVersion") or ""),
    )


def to_lease(record: LeaseRecord, *, namespace: str, name: str) -> dict[str, Any]:
    """The Lease object to write (resourceVersion guards an update)."""

    def micro(value: datetime | None) -> str | None:
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ") if value else None

    meta: dict[str, Any] = {"name": name, "namespace": namespace}
    if record.resource_version:
        meta["resourceVersion"] = record.resource_version
    spec = {
        "holderIdentity": record.holder or None,
        "leaseDurationSeconds": record.duration_seconds,
        "acquireTime": micro(record.acquire_time),
        "renewTime": micro(record.renew_time),
        "leaseTransitions": record.transitions,
    }
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": meta,
        "spec": {k: v for k, v in spec.items() if v is not None},
    }


def _utcnow() -> datetime:
    return datetime.now(UTC)


class LeaderElector:
    """Keeps trying to take or renew the Lease; calls back when leadership starts and stops.

    Callbacks run on the elector's thread; keep them quick (hand work to other threads).
    """

    def __init__(
        self,
        *,
        kube: Kube,
        namespace: str,
        me: str,
        on_started_leading: Callable[[], None],
        on_stopped_leading: Callable[[], None],
        name: str = LEASE_NAME,
        clock: Callable[[], datetime] = _utcnow,
        renew_period: timedelta = RENEW_PERIOD,
        renew_deadline: timedelta = RENEW_DEADLINE,
    ) -> None:
        self.kube = kube
        self.namespace = namespace
        self.name = name
        self.me = me
        self.clock = clock
        self.renew_period = renew_period
        self.renew_deadline = renew_deadline
        self._on_started = on_started_leading
        self._on_stopped = on_stopped_leading
        self._leading = False
        self._last_renew: datetime | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def leading(self) -> bool:
        return self._leading

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="identity-risk-leader", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop campaigning; a leader releases its Lease so another replica takes over at once."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._leading:
            self._set_leading(False)
            try:
                lease = self._read()
                if lease is not None and lease.holder == self.me:
                    self._write(replace(lease, holder="", renew_time=None), create=False)
            except KubeError as exc:
                log.warning("could not release the Lease: %s", exc)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.step()
            except Exception:
                log.exception("leader election step failed")
            self._check_deadline()
            self._stop.wait(self.renew_period.total_seconds())

    def step(self) -> bool:
        """One attempt to take or renew the Lease; returns whether this replica leads now."""
        now = self.clock()
        try:
            lease = self._read()
            verdict = decide(lease, me=self.me, now=now)
            if verdict is Verdict.WAIT:
                if self._leading:
                    log.warning("the Lease is held by %s now", lease.holder if lease else "?")
                    self._set_leading(False)
                return False
            wanted = next_lease(lease, verdict, me=self.me, now=now)
            written = self._write(wanted, create=lease is None)
        except KubeError as exc:
            if exc.status == 409:  # another replica wrote first: re-read next round
                log.debug("Lease %s/%s changed under us", self.namespace, self.name)
            else:
                log.warning("leader election: %s", exc)
            return self._leading
        if written is None:  # lost the race (409 on create or update)
            return self._leading
        self._last_renew = now
        if not self._leading:
            log.info("leading: holding Lease %s/%s as %s", self.namespace, self.name, self.me)
            self._set_leading(True)
        return True

    def _read(self) -> LeaseRecord | None:
        found = self.kube.get_lease(self.namespace, self.name)
        return from_lease(found) if found is not None else None

    def _write(self, record: LeaseRecord, *, create: bool) -> dict[str, Any] | None:
        body = to_lease(record, namespace=self.namespace, name=self.name)
        if create:
            return self.kube.create_lease(self.namespace, body)
        return self.kube.update_lease(self.namespace, body)

    def _check_deadline(self) -> None:
        """A leader that could not renew in time steps down before its Lease expires."""
        if not self._leading or self._last_renew is None:
            return
        if self.clock() - self._last_renew > self.renew_deadline:
            log.warning("could not renew the Lease within %s: stepping down", self.renew_deadline)
            self._set_leading(False)

    def _set_leading(self, leading: bool) -> None:
        if leading == self._leading:
            return
        self._leading = leading
        callback = self._on_started if leading else self._on_stopped
        try:
            callback()
        except Exception:
            log.exception("leadership callback failed")
