"""Which JSON decoder should parse audit events? Measures events/s for each candidate.

Decodes the same realistic audit log (JSON lines, ~1 KB per event: bound-token claims, objectRef,
annotations, response status) with:

* ``msgspec-typed``  — the ingest pipeline itself (msgspec typed Structs → ``AuditRecord``,
                       dedupe, stats);
* ``msgspec-struct`` — msgspec typed Structs only (the decoding half of the pipeline);
* ``msgspec-dict``   — ``msgspec.json.decode`` to dicts only (no record built);
* ``orjson-dict``    — ``orjson.loads`` to dicts only (no record built);
* ``orjson-record``  — ``orjson.loads`` then the same field extraction into ``AuditRecord``.

Run: ``python benchmarks/json_decode.py [--events N]``. Output: one line per method, events/s.
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

import msgspec

from identity_risk.domain import Identity
from identity_risk.ingest import Deduplicator, ParseStats, parse_lines
from identity_risk.ingest import decode as decode_module
from identity_risk.ingest.record import AuditRecord

try:
    import orjson
except ImportError:  # orjson is a test extra
    orjson = None


def generate(n: int, *, seed: int = 7) -> list[bytes]:
    rng = random.Random(seed)
    verbs = ["get", "list", "watch", "update", "patch", "create"]
    resources = ["configmaps", "pods", "leases", "secrets", "events", "endpoints"]
    lines = []
    for i in range(n):
        ns = f"ns-{rng.randrange(50)}"
        sa = f"sa-{rng.randrange(20)}"
        event = {
            "kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "Metadata",
            "auditID": f"{i:08x}-1b2c-4d5e-8f90-{rng.getrandbits(48):012x}",
            "stage": "ResponseComplete",
            "requestURI": f"/api/v1/namespaces/{ns}/configmaps/app-config?resourceVersion=0",
            "verb": rng.choice(verbs),
            "user": {
                "username": f"system:serviceaccount:{ns}:{sa}", "uid": "5a1e4c2b-...",
                "groups": ["system:serviceaccounts", f"system:serviceaccounts:{ns}",
                           "system:authenticated"],
                "extra": {
                    "authentication.kubernetes.io/credential-id": [f"JTI={rng.getrandbits(64):x}"],
                    "authentication.kubernetes.io/node-name": ["node-a"],
                    "authentication.kubernetes.io/node-uid": ["8d1c..."],
                    "authentication.kubernetes.io/pod-name": [f"{sa}-7c9d-xk2lp"],
                    "authentication.kubernetes.io/pod-uid": ["c0ffee00-1111-2222-3333-444455556666"],
                },
            },
            "sourceIPs": [f"10.244.{rng.randrange(8)}.{rng.randrange(250)}"],
            "userAgent": "app/v1.2.3 (linux/amd64) kubernetes/abcdef0",
            "objectRef": {"resource": rng.choice(resources), "namespace": ns,
                          "name": "app-config", "apiVersion": "v1"},
            "responseStatus": {"metadata": {}, "code": 200},
            "requestReceivedTimestamp": f"2026-01-05T09:{i // 60 % 60:02d}:{i % 60:02d}.{i % 999999:06d}Z",
            "stageTimestamp": f"2026-01-05T09:{i // 60 % 60:02d}:{i % 60:02d}.{(i + 7) % 999999:06d}Z",
            "annotations": {
                "authorization.k8s.io/decision": "allow",
                "authorization.k8s.io/reason": f'RBAC: allowed by RoleBinding "{sa}" of Role "{sa}" to ServiceAccount "{sa}/{ns}"',
            },
        }  # fmt: skip
        lines.append(msgspec.json.encode(event) + b"\n")
    return lines


def _orjson_record(line: bytes) -> AuditRecord:
    assert orjson is not None
    e: dict[str, Any] = orjson.loads(line)
    user = e["user"]
    extra = user.get("extra") or {}
    ref = e.get("objectRef") or {}
    ann = e.get("annotations") or {}
    t = datetime.fromisoformat(e["requestReceivedTimestamp"])
    res = ref.get("resource", "")
    return AuditRecord(
        audit_id=e["auditID"], stage=e["stage"], timestamp=t, epoch=t.timestamp(),
        username=user["username"], groups=tuple(user.get("groups", ())),
        identity=Identity.from_username(user["username"]), verb=e["verb"], resource=res,
        namespace=ref.get("namespace", ""), name=ref.get("name", ""),
        api_group=ref.get("apiGroup", ""),
        operation=f"{e['verb']} {ref.get('apiGroup', '')}/{res} {ref.get('namespace', '')}",
        decision=ann.get("authorization.k8s.io/decision", ""),
        reason=ann.get("authorization.k8s.io/reason", ""),
        response_code=(e.get("responseStatus") or {}).get("code", 0),
        source_ip=(e.get("sourceIPs") or [""])[-1], user_agent=e.get("userAgent", ""),
        pod_name=(extra.get("authentication.kubernetes.io/pod-name") or [""])[0],
        pod_uid=(extra.get("authentication.kubernetes.io/pod-uid") or [""])[0],
        node_name=(extra.get("authentication.kubernetes.io/node-name") or [""])[0],
        credential_id=(extra.get("authentication.kubernetes.io/credential-id") or [""])[0],
        request_uri=e.get("requestURI", ""),
    )  # fmt: skip


def measure(name: str, lines: list[bytes], run: Callable[[list[bytes]], int]) -> float:
    best = 0.0
    for _ in range(3):
        start = time.perf_counter()
        count = run(lines)
        elapsed = time.perf_counter() - start
        assert count == len(lines), (name, count)
        best = max(best, count / elapsed)
    print(f"{name:15s} {best:12,.0f} events/s")
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    args = parser.parse_args()
    lines = generate(args.events)
    size = sum(map(len, lines)) / len(lines)
    print(f"{len(lines):,} events, {size:.0f} bytes/event, best of 3, one core")

    def typed(ls: list[bytes]) -> int:
        return sum(1 for _ in parse_lines(ls, stats=ParseStats(), dedupe=Deduplicator()))

    measure("msgspec-typed", lines, typed)
    # Each method discards its results as it goes, as a streaming consumer would (keeping
    # millions of dicts alive would measure the garbage collector instead).
    struct_decode = decode_module._event_decoder.decode
    measure("msgspec-struct", lines, lambda ls: sum(1 for x in ls if struct_decode(x)))
    measure("msgspec-dict", lines, lambda ls: sum(1 for x in ls if msgspec.json.decode(x)))
    if orjson is not None:
        loads = orjson.loads
        measure("orjson-dict", lines, lambda ls: sum(1 for x in ls if loads(x)))
        measure("orjson-record", lines, lambda ls: sum(1 for x in ls if _orjson_record(x)))
    else:
        print("orjson not installed: pip install -e '.[test]'")


if __name__ == "__main__":
    main()
