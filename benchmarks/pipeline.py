"""End-to-end throughput of the core: audit log bytes → parse → detect → score → decide.

What it measures: one process, one core, an in-memory audit log of ``--events`` JSON lines
(default 1,000,000) replayed through ``identity_risk.engine.replay`` exactly as
``kubectl risk simulate`` does (msgspec decoding into ``AuditRecord``, dedupe, every behavioural
detector against per-identity baselines, the signal ledger, scoring and policy decisions with
safeguards), and the same bytes decoded with ``json.loads`` alone for the ratio. The log is
realistic in shape: ~200 ServiceAccounts across 40 namespaces (deployments, controllers that
list/watch what they own, CI runners creating workloads, leader-election lease renewals), bound
token claims, authorization annotations, 26 hours of traffic so baselines warm up, and a few
attacks late in the log (token replay, secret enumeration, reconnaissance, human use).

Method: the log is generated and held in memory first (not timed); each measured pass runs over
the same list of lines (the pipeline on a fresh engine each time); passes are interleaved in
``--repeat`` rounds and the best of each is reported (the usual way to discount scheduler noise on
a shared machine). Events/s = lines / wall time (``time.perf_counter``).

Run: ``python benchmarks/pipeline.py [--events N] [--repeat R] [--profile]``.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import platform
import pstats
import random
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec

from identity_risk.api.v1alpha1 import IdentityRiskPolicy
from identity_risk.engine import Engine, Evaluation, build_source, replay
from identity_risk.ingest import Deduplicator, ParseStats, parse_lines

T0 = datetime(2026, 1, 5, 0, 0, tzinfo=UTC)
SPAN = timedelta(hours=26)
ATTACKER_IPS = ("203.0.113.66", "198.51.100.23")

POLICY = {
    "apiVersion": "identityrisk.dev/v1alpha1",
    "kind": "IdentityRiskPolicy",
    "metadata": {"name": "bench"},
    "spec": {
        "mode": "Enforce",
        "bands": [
            {"name": "low", "minScore": 20, "actions": [{"type": "Notify"}]},
            {"name": "medium", "minScore": 45, "minConfidence": "Medium",
             "actions": [{"type": "Notify"}, {"type": "RestrictScope", "duration": "24h"}]},
            {"name": "high", "minScore": 70, "minConfidence": "High",
             "actions": [{"type": "Notify"}, {"type": "RevokeToken"}, {"type": "QuarantinePods"}]},
        ],
        "safeguards": {"maxActionsPerMinute": 50, "circuitBreaker": {"maxIdentities": 10}},
    },
}  # fmt: skip


class Workload:
    """One ServiceAccount with its pod, its usual operations and client."""

    def __init__(self, rng: random.Random, index: int) -> None:
        self.ns = f"team-{index % 40:02d}"
        role = rng.choices(["app", "controller", "ci", "lease"], weights=[60, 20, 10, 10])[0]
        self.role = role
        self.sa = f"{role}-{index:03d}"
        self.pod = f"{self.sa}-7c9d5f-{index:05x}"
        self.pod_uid = f"c0ffee00-0000-4000-8000-{index:012d}"
        self.node = f"node-{index % 16}"
        self.ip = f"10.244.{index % 16}.{10 + index // 16}"
        self.jti = f"JTI={rng.getrandbits(64):016x}-{index}"
        self.ua = {
            "app": f"{self.sa}/1.{index % 7}.0 (linux/amd64) kubernetes/abc1234",
            "controller": "manager/v0.18.2 (linux/amd64) kubernetes/$Format",
            "ci": "argo/v3.5.5 (linux/amd64) kubernetes/ed1e3b1",
            "lease": "kube-leader/v1.31.0 (linux/amd64) kubernetes/9edcffc",
        }[role]
        ops = {
            "app": [("get", "", "configmaps"), ("get", "", "secrets"), ("list", "", "endpoints"),
                    ("watch", "", "configmaps"), ("create", "", "events")],
            "controller": [("list", "", "pods"), ("watch", "", "pods"), ("list", "apps", "deployments"),
                           ("watch", "apps", "deployments"), ("update", "apps", "deployments"),
                           ("patch", "", "pods"), ("create", "", "events"), ("get", "", "services")],
            "ci": [("create", "batch", "jobs"), ("get", "batch", "jobs"), ("list", "", "pods"),
                   ("get", "", "pods/log"), ("delete", "batch", "jobs"), ("create", "", "configmaps")],
            "lease": [("get", "coordination.k8s.io", "leases"),
                      ("update", "coordination.k8s.io", "leases")],
        }[role]  # fmt: skip
        self.ops = ops
        self.weight = {"app": 1.0, "controller": 3.0, "ci": 0.7, "lease": 2.0}[role]

    @property
    def username(self) -> str:
        return f"system:serviceaccount:{self.ns}:{self.sa}"

    def objects(self) -> list[dict[str, Any]]:
        meta = {"name": self.pod, "namespace": self.ns, "uid": self.pod_uid,
                "labels": {"app": self.sa}}  # fmt: skip
        rules = [{"apiGroups": sorted({g for _, g, _ in self.ops}),
                  "resources": sorted({r for _, _, r in self.ops}),
                  "verbs": sorted({v for v, _, _ in self.ops})}]  # fmt: skip
        return [
            {"apiVersion": "v1", "kind": "Pod", "metadata": meta,
             "spec": {"serviceAccountName": self.sa, "nodeName": self.node,
                      "containers": [{"name": "app", "image": "x"}]},
             "status": {"phase": "Running", "podIP": self.ip, "podIPs": [{"ip": self.ip}]}},
            {"apiVersion": "v1", "kind": "ServiceAccount",
             "metadata": {"name": self.sa, "namespace": self.ns, "uid": f"sa-{self.sa}"}},
            {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
             "metadata": {"name": self.sa, "namespace": self.ns}, "rules": rules},
            {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
             "metadata": {"name": self.sa, "namespace": self.ns},
             "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": self.sa},
             "subjects": [{"kind": "ServiceAccount", "name": self.sa, "namespace": self.ns}]},
        ]  # fmt: skip


JSON_PASS = "json.loads (stdlib) alone"
ORJSON_PASS = "orjson.loads alone (reference)"
PIPELINE_PASS = "parse→detect→score→decide"
ATTACKED = 4
"""Workloads 0-3 are attacked in the last hour; every other identity is benign."""


def is_attacked(identity: str) -> bool:
    return int(identity.rsplit("-", 1)[-1]) < ATTACKED


def _ts(t: float) -> str:
    return (T0 + timedelta(seconds=t)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _event(
    w: Workload, seq: int, t: float, verb: str, group: str, resource: str, *,
    ip: str | None = None, ua: str | None = None, decision: str = "allow", name: str = "",
    namespace: str | None = None,
) -> dict[str, Any]:  # fmt: skip
    ns = w.ns if namespace is None else namespace
    sub = ""
    if "/" in resource:
        resource, sub = resource.split("/", 1)
    ref: dict[str, Any] = {"resource": resource, "namespace": ns, "apiVersion": "v1"}
    if group:
        ref["apiGroup"] = group
    if name:
        ref["name"] = name
    if sub:
        ref["subresource"] = sub
    base = f"/apis/{group}/v1" if group else "/api/v1"
    uri = (
        f"{base}/namespaces/{ns}/{resource}"
        + (f"/{name}" if name else "")
        + (f"/{sub}" if sub else "")
    )
    code = 403 if decision == "forbid" else (201 if verb == "create" else 200)
    reason = (f'RBAC: allowed by RoleBinding "{w.sa}/{w.ns}" of Role "{w.sa}" to ServiceAccount'
              f' "{w.sa}/{w.ns}"') if decision == "allow" else ""  # fmt: skip
    return {
        "kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "Metadata",
        "auditID": f"{seq:08x}-5b1c-4e2a-9f3d-{seq * 2654435761 % (1 << 48):012x}",
        "stage": "ResponseComplete", "requestURI": uri, "verb": verb,
        "user": {"username": w.username, "uid": f"sa-{w.sa}",
                 "groups": ["system:serviceaccounts", f"system:serviceaccounts:{w.ns}",
                            "system:authenticated"],
                 "extra": {"authentication.kubernetes.io/credential-id": [w.jti],
                           "authentication.kubernetes.io/node-name": [w.node],
                           "authentication.kubernetes.io/node-uid": ["8d1c2e3f-node"],
                           "authentication.kubernetes.io/pod-name": [w.pod],
                           "authentication.kubernetes.io/pod-uid": [w.pod_uid]}},
        "sourceIPs": [ip or w.ip], "userAgent": ua or w.ua, "objectRef": ref,
        "responseStatus": {"metadata": {}, "code": code},
        "requestReceivedTimestamp": _ts(t), "stageTimestamp": _ts(t + 0.0031),
        "annotations": {"authorization.k8s.io/decision": decision,
                        "authorization.k8s.io/reason": reason},
    }  # fmt: skip


def generate(
    n: int, *, seed: int = 42, identities: int = 200
) -> tuple[list[bytes], list[dict[str, Any]]]:
    """``n`` audit log lines in time order, and the inventory objects of the cluster."""
    rng = random.Random(seed)
    workloads = [Workload(rng, i) for i in range(identities)]
    weights = [w.weight for w in workloads]
    span = SPAN.total_seconds()
    attack_start = span - 3600  # the last hour, after every baseline has warmed up
    victims = workloads[:ATTACKED]
    attacks_per = max(50, n // 20_000)
    attack_times = sorted(
        rng.uniform(attack_start, span) for _ in range(attacks_per * len(victims))
    )
    encode = msgspec.json.encode
    lines: list[bytes] = []
    objects: list[dict[str, Any]] = [
        {"apiVersion": "v1", "kind": "Node", "metadata": {"name": f"node-{i}"},
         "spec": {"podCIDR": f"10.244.{i}.0/24", "podCIDRs": [f"10.244.{i}.0/24"]},
         "status": {"addresses": [{"type": "InternalIP", "address": f"192.168.10.{10 + i}"}]}}
        for i in range(16)
    ]  # fmt: skip
    for w in workloads:
        objects.extend(w.objects())
    benign = n - len(attack_times)
    step = span / benign
    ai = 0
    for seq in range(n):
        t = seq * step if seq < benign else span
        if ai < len(attack_times) and (attack_times[ai] <= t or seq >= benign):
            w = victims[ai % len(victims)]
            kind = ai % len(victims)
            at = attack_times[ai]
            ai += 1
            if kind == 0:  # stolen token replayed with kubectl from outside
                ev = _event(w, seq, at, "list", "", "secrets", ip=ATTACKER_IPS[0],
                            ua="kubectl/v1.31.0 (linux/amd64) kubernetes/9edcffc")  # fmt: skip
            elif kind == 1:  # secret enumeration across namespaces
                ev = _event(
                    w, seq, at, "list", "", "secrets", namespace=f"team-{rng.randrange(40):02d}"
                )
            elif kind == 2:  # reconnaissance: forbidden probes
                ev = _event(w, seq, at, "create", "rbac.authorization.k8s.io", "clusterrolebindings",
                            decision="forbid", namespace="")  # fmt: skip
            else:  # human use from inside the pod network
                ev = _event(w, seq, at, "get", "", "pods/exec", ua="curl/8.5.0", name=w.pod)
            lines.append(encode(ev) + b"\n")
            continue
        w = rng.choices(workloads, weights)[0] if seq % 4 else workloads[seq % identities]
        verb, group, resource = rng.choice(w.ops)
        lines.append(encode(_event(w, seq, t, verb, group, resource)) + b"\n")
    lines.sort(key=lambda line: line[line.index(b'"requestReceivedTimestamp"') :][:60])
    return lines, objects


def run_pipeline(
    lines: list[bytes], objects: list[dict[str, Any]]
) -> tuple[int, Engine, list[Evaluation]]:
    policy = IdentityRiskPolicy.model_validate(POLICY)
    engine = Engine(policies=[policy], source=build_source(objects))
    evaluations: list[Evaluation] = []
    records = parse_lines(lines, stats=ParseStats(), dedupe=Deduplicator())
    n = replay(records, engine=engine, on_evaluation=evaluations.append)
    return n, engine, evaluations


def best_rates(repeat: int, passes: dict[str, Callable[[], int]]) -> dict[str, float]:
    """Best events/s of each pass over ``repeat`` rounds, the passes interleaved within a round so
    that load from elsewhere on the machine weighs on all of them alike."""
    best = dict.fromkeys(passes, 0.0)
    for _ in range(repeat):
        for label, fn in passes.items():
            start = time.perf_counter()
            count = fn()
            best[label] = max(best[label], count / (time.perf_counter() - start))
    for label, rate in best.items():
        print(f"  {label:<34} {rate:>12,.0f} events/s")
    return best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--profile", action="store_true", help="cProfile one pipeline pass")
    args = parser.parse_args(argv)

    t = time.perf_counter()
    lines, objects = generate(args.events)
    size = sum(map(len, lines))
    print(f"generated {len(lines):,} events ({size / len(lines):.0f} bytes/event,"
          f" {size / 1e6:.0f} MB) in {time.perf_counter() - t:.1f}s")  # fmt: skip
    print(f"python {platform.python_version()} on {platform.machine()},"
          f" one core (pid {os.getpid()}), best of {args.repeat}")  # fmt: skip

    if args.profile:
        profiler = cProfile.Profile()
        profiler.enable()
        run_pipeline(lines, objects)
        profiler.disable()
        pstats.Stats(profiler, stream=sys.stderr).sort_stats("tottime").print_stats(25)
        return 0

    loads = json.loads
    result: dict[str, Any] = {}

    def pipeline() -> int:
        n, engine, evaluations = run_pipeline(lines, objects)
        result.update(engine=engine, evaluations=evaluations)
        return n

    passes: dict[str, Callable[[], int]] = {
        JSON_PASS: lambda: len([loads(x) for x in lines]),
        PIPELINE_PASS: pipeline,
    }
    try:
        import orjson

        passes[ORJSON_PASS] = lambda: len([orjson.loads(x) for x in lines])
    except ImportError:
        pass
    rates = best_rates(args.repeat, passes)
    rate, json_rate = rates[PIPELINE_PASS], rates[JSON_PASS]
    evaluations: list[Evaluation] = result["evaluations"]
    crossings = [e.decision for e in evaluations if e.decision.escalated]
    print(f"  ratio end-to-end / json.loads: {rate / json_rate:.2f}")
    lowest = POLICY["spec"]["bands"][0]["name"]
    benign_up = {
        str(d.identity) for d in crossings if not is_attacked(str(d.identity)) and d.band != lowest
    }
    print(f"  benign identities above the lowest band: {len(benign_up)}"
          + (f" ({', '.join(sorted(benign_up))})" if benign_up else ""))  # fmt: skip
    print(f"  {len(evaluations):,} evaluations, {len(crossings)} band escalations:")
    for d in crossings[:12]:
        print(f"    {d.at:%H:%M:%S} {d.identity} -> {d.band} ({d.score}, {d.confidence.label},"
              f" top {d.top_signal}) {d.disposition.value}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
