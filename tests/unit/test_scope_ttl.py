"""RestrictScope and ShortenTokenTTL: the state they put in force, and how it is rebuilt and undone."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from builders import make_inventory, make_pod

from identity_risk.api import v1alpha1 as v1
from identity_risk.domain import ActionType, Identity
from identity_risk.enforce import admission
from identity_risk.enforce.actions import ActionContext, Blocks
from identity_risk.enforce.authorization import BlockKind, Request, review
from identity_risk.enforce.clamps import Clamp, TokenClamps, clamps_of, token_patch
from identity_risk.enforce.executor import AuthorizationBook, blocks_of
from identity_risk.enforce.scope import release_scope, restrict_scope
from identity_risk.enforce.ttl import admit_pod, release_token_ttl, shorten_token_ttl

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
WEB = Identity("shop", "web")
BASELINE = frozenset({"list /configmaps shop", "get /api"})


def make_decision(
    action: dict[str, Any], outcome: dict[str, Any] | None = None, *, phase: str = "Enforced"
) -> v1.RiskDecision:
    return v1.RiskDecision.model_validate(
        {
            "metadata": {"name": "d1", "namespace": "shop"},
            "spec": {
                "identity": {"namespace": "shop", "serviceAccountName": "web"},
                "policy": "p",
                "mode": "Enforce",
                "score": 80,
                "confidence": "High",
                "band": "high",
                "actions": [action],
                "decidedAt": NOW.isoformat(),
            },
            "status": {"phase": phase, "actions": [outcome] if outcome else []},
        }
    )


class Evictions:
    """Stands in for ``Kube`` in handler tests: records which pods were evicted."""

    def __init__(self) -> None:
        self.evicted: list[str] = []

    def evict(self, namespace: str, name: str) -> str:
        self.evicted.append(f"{namespace}/{name}")
        return "evicted"


def make_context(*pods: dict[str, Any]) -> tuple[ActionContext, AuthorizationBook, Evictions]:
    book, kube = AuthorizationBook(), Evictions()
    inventory = make_inventory(*pods, defaults=False)
    ctx = ActionContext(
        kube=kube,  # type: ignore[arg-type]
        blocks=book,
        clock=lambda: NOW,
        policies=lambda _name: None,
        inventory=lambda: inventory,
        baseline=lambda identity: BASELINE if identity == WEB else frozenset(),
    )
    return ctx, book, kube


def sar(verb: str, resource: str, namespace: str = "shop") -> Request:
    body = {
        "kind": "SubjectAccessReview",
        "spec": {
            "user": WEB.username,
            "resourceAttributes": {"verb": verb, "resource": resource, "namespace": namespace},
        },
    }
    return Request.from_review(body)


# --- RestrictScope ---------------------------------------------------------------------------


def test_restrict_scope_allows_the_baseline_and_records_it() -> None:
    ctx, book, _ = make_context()
    obj = make_decision({"type": "RestrictScope"})
    outcome = restrict_scope(ctx, obj.spec.actions[0], obj)
    assert outcome.phase is v1.ActionPhase.SUCCEEDED
    assert outcome.allowed_operations == tuple(sorted(BASELINE))
    assert not review(sar("list", "configmaps"), book.state, now=NOW).denied
    verdict = review(sar("list", "secrets"), book.state, now=NOW)
    assert verdict.denied
    assert "shop/d1" in verdict.reason


def test_restrict_scope_with_a_duration_expires() -> None:
    ctx, book, _ = make_context()
    obj = make_decision({"type": "RestrictScope", "duration": "1h"})
    outcome = restrict_scope(ctx, obj.spec.actions[0], obj)
    assert outcome.until == datetime(2026, 12, 4, 13, 0, tzinfo=UTC)
    assert not review(sar("list", "secrets"), book.state, now=outcome.until).denied


def test_every_replica_rebuilds_the_restriction_from_the_recorded_outcome() -> None:
    obj = make_decision(
        {"type": "RestrictScope"},
        {"type": "RestrictScope", "phase": "Succeeded", "allowedOperations": sorted(BASELINE)},
    )
    (block,) = blocks_of(obj)
    assert block.kind is BlockKind.RESTRICT_SCOPE
    assert block.allowed == BASELINE
    released = make_decision(
        {"type": "RestrictScope"},
        {"type": "RestrictScope", "phase": "Succeeded", "allowedOperations": sorted(BASELINE)},
        phase="Released",
    )
    assert blocks_of(released) == []


def test_releasing_the_restriction_lifts_it() -> None:
    ctx, book, _ = make_context()
    obj = make_decision({"type": "RestrictScope"})
    restrict_scope(ctx, obj.spec.actions[0], obj)
    outcome = v1.ActionOutcome(type=ActionType.RESTRICT_SCOPE, phase=v1.ActionPhase.SUCCEEDED)
    assert release_scope(ctx, outcome, obj).phase is v1.ActionPhase.RELEASED
    assert not review(sar("list", "secrets"), book.state, now=NOW).denied


# --- ShortenTokenTTL -------------------------------------------------------------------------


def token_source(seconds: int | None) -> dict[str, Any]:
    token: dict[str, Any] = {"path": "token"}
    if seconds is not None:
        token["expirationSeconds"] = seconds
    return {"serviceAccountToken": token}


@pytest.mark.parametrize(
    ("sources", "clamped"),
    [
        ([token_source(3607), {"configMap": {"name": "kube-root-ca.crt"}}], [0]),
        ([token_source(None)], [0]),
        ([token_source(600)], []),
        ([{"configMap": {"name": "x"}}], []),
        ([token_source(7200), token_source(3600)], [0, 1]),
    ],
    ids=["kube-api-access", "default-lifetime", "already-short", "no-token", "two-tokens"],
)
def test_token_patch_caps_every_longer_projected_token(
    sources: list[dict[str, Any]], clamped: list[int]
) -> None:
    pod = {
        "spec": {"volumes": [{"name": "cfg", "configMap": {}}, {"projected": {"sources": sources}}]}
    }
    ops = token_patch(pod, 900)
    assert [op["path"] for op in ops] == [
        f"/spec/volumes/1/projected/sources/{j}/serviceAccountToken/expirationSeconds"
        for j in clamped
    ]
    assert all(op["value"] == 900 for op in ops)


def admission_request(sa: str, namespace: str = "shop") -> dict[str, Any]:
    pod = make_pod(sa=sa, namespace=namespace, token_expiration=3607)
    return {
        "uid": "u1",
        "operation": "CREATE",
        "namespace": namespace,
        "resource": {"group": "", "version": "v1", "resource": "pods"},
        "object": pod,
    }


def test_new_pods_of_a_clamped_identity_are_patched_and_others_are_not() -> None:
    clamps = TokenClamps()
    clamps.add(Clamp(WEB, "shop/d1", 600))
    handlers = {"pods": admit_pod(clamps)}
    response = admission.review({"request": admission_request("web")}, handlers)["response"]
    patch = json.loads(base64.b64decode(response["patch"]))
    assert patch == [
        {
            "op": "add",
            "path": "/spec/volumes/0/projected/sources/0/serviceAccountToken/expirationSeconds",
            "value": 600,
        }
    ]
    assert "shop/d1" in response["warnings"][0]
    other = admission.review({"request": admission_request("ledger")}, handlers)["response"]
    assert other["allowed"]
    assert "patch" not in other


def test_the_tightest_clamp_wins_and_release_removes_only_its_decision() -> None:
    clamps = TokenClamps()
    clamps.add(Clamp(WEB, "shop/d1", 1800))
    clamps.add(Clamp(WEB, "shop/d2", 600))
    assert clamps.clamp_for(WEB) == Clamp(WEB, "shop/d2", 600)
    clamps.release("shop/d2")
    assert clamps.clamp_for(WEB) == Clamp(WEB, "shop/d1", 1800)


def test_shorten_token_ttl_clamps_then_evicts_only_pods_with_longer_tokens() -> None:
    long_lived = make_pod(name="web-1", token_expiration=3607)
    short = make_pod(name="web-2", uid="uid-2", token_expiration=600)
    ctx, _, kube = make_context(long_lived, short)
    obj = make_decision({"type": "ShortenTokenTTL", "maxTokenSeconds": 600})
    outcome = shorten_token_ttl(ctx, obj.spec.actions[0], obj)
    assert outcome.phase is v1.ActionPhase.SUCCEEDED
    assert kube.evicted == ["shop/web-1"]
    assert ctx.clamps.clamp_for(WEB) == Clamp(WEB, "shop/d1", 600)
    recorded = v1.ActionOutcome(type=ActionType.SHORTEN_TOKEN_TTL, phase=v1.ActionPhase.SUCCEEDED)
    assert release_token_ttl(ctx, recorded, obj).phase is v1.ActionPhase.RELEASED
    assert ctx.clamps.clamp_for(WEB) is None


def test_clamps_are_rebuilt_from_the_recorded_decision() -> None:
    action = {"type": "ShortenTokenTTL", "maxTokenSeconds": 900}
    done = make_decision(action, {"type": "ShortenTokenTTL", "phase": "Succeeded"})
    assert clamps_of(done) == [Clamp(WEB, "shop/d1", 900)]
    skipped = make_decision(action, {"type": "ShortenTokenTTL", "phase": "Skipped"})
    assert clamps_of(skipped) == []
    released = make_decision(
        action, {"type": "ShortenTokenTTL", "phase": "Succeeded"}, phase="Released"
    )
    assert clamps_of(released) == []


def test_releasers_are_harmless_out_of_process_and_when_repeated() -> None:
    """``kubectl risk release`` runs them with a bare context; a crash may run them twice."""
    ctx = ActionContext(
        kube=Evictions(),  # type: ignore[arg-type]
        blocks=Blocks(),
        clock=lambda: NOW,
        policies=lambda _name: None,
    )
    for action, releaser in (
        ({"type": "RestrictScope"}, release_scope),
        ({"type": "ShortenTokenTTL", "maxTokenSeconds": 600}, release_token_ttl),
    ):
        obj = make_decision(action)
        recorded = v1.ActionOutcome(type=obj.spec.actions[0].type, phase=v1.ActionPhase.SUCCEEDED)
        for _ in range(2):
            assert releaser(ctx, recorded, obj).phase is v1.ActionPhase.RELEASED
