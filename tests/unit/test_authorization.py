"""The authorization webhook's answers: deny what a decision blocks, no opinion otherwise."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from identity_risk.domain import Identity
from identity_risk.enforce.authorization import (
    CREDENTIAL_ID_KEY,
    NO_OPINION,
    AuthorizationState,
    Block,
    BlockKind,
    Request,
    review,
)
from identity_risk.ingest import parse_event

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
CHECKOUT = Identity("payments", "checkout")
OTHER = Identity("payments", "ledger")


def make_review(
    identity: Identity,
    *,
    verb: str = "get",
    resource: str = "configmaps",
    namespace: str = "payments",
    credential_id: str = "JTI=aaa",
    non_resource: bool = False,
    group: str = "",
    subresource: str = "",
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "user": identity.username,
        "groups": ["system:serviceaccounts", f"system:serviceaccounts:{identity.namespace}"],
        "extra": {CREDENTIAL_ID_KEY: [credential_id]},
    }
    if non_resource:
        spec["nonResourceAttributes"] = {"path": "/api", "verb": "get"}
    else:
        spec["resourceAttributes"] = {
            "verb": verb,
            "group": group,
            "resource": resource,
            "subresource": subresource,
            "namespace": namespace,
        }
    return {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview", "spec": spec}


def decide(body: dict[str, Any], *blocks: Block, now: datetime = NOW) -> Any:
    return review(Request.from_review(body), AuthorizationState.of(blocks), now=now)


DENY_CHECKOUT = Block(BlockKind.DENY_IDENTITY, CHECKOUT, decision="payments/d1")
REVOKE_AAA = Block(
    BlockKind.DENY_CREDENTIAL, CHECKOUT, decision="payments/d2", credential_id="JTI=aaa"
)
RESTRICT = Block(
    BlockKind.RESTRICT_SCOPE,
    CHECKOUT,
    decision="payments/d3",
    allowed=frozenset(
        {"get /configmaps payments", "get apps/deployments/scale payments", "get /healthz"}
    ),
)


@pytest.mark.parametrize(
    ("body", "blocks", "denied", "reason_part"),
    [
        (make_review(CHECKOUT), (), False, ""),
        (make_review(CHECKOUT), (DENY_CHECKOUT,), True, "denied API access"),
        (make_review(OTHER), (DENY_CHECKOUT,), False, ""),
        (make_review(CHECKOUT, credential_id="JTI=aaa"), (REVOKE_AAA,), True, "was revoked"),
        (make_review(CHECKOUT, credential_id="JTI=bbb"), (REVOKE_AAA,), False, ""),
        (make_review(CHECKOUT), (RESTRICT,), False, ""),
        (make_review(CHECKOUT, verb="list", resource="secrets"), (RESTRICT,), True, "baseline"),
        (make_review(CHECKOUT, verb="list", namespace="billing"), (RESTRICT,), True, "billing"),
        (
            make_review(CHECKOUT, group="apps", resource="deployments", subresource="scale"),
            (RESTRICT,),
            False,
            "",
        ),
        (make_review(CHECKOUT, non_resource=True), (RESTRICT,), True, "get /api"),
        (make_review(OTHER, verb="list", resource="secrets"), (RESTRICT,), False, ""),
    ],
    ids=[
        "nothing-in-force",
        "denied-identity",
        "other-identity-unaffected",
        "revoked-credential",
        "fresh-credential-unaffected",
        "restricted-inside-baseline",
        "restricted-outside-baseline",
        "restricted-other-namespace",
        "restricted-subresource-inside-baseline",
        "restricted-non-resource-outside-baseline",
        "restriction-is-per-identity",
    ],
)
def test_review(body: dict[str, Any], blocks: tuple[Block, ...], denied: bool, reason_part: str):
    verdict = decide(body, *blocks)
    assert verdict.denied is denied
    assert reason_part in verdict.reason


def test_a_deny_names_the_decision_behind_it() -> None:
    verdict = decide(make_review(CHECKOUT), DENY_CHECKOUT)
    assert verdict.decision == "payments/d1"
    assert "payments/d1" in verdict.reason


def test_an_expired_block_no_longer_denies() -> None:
    block = Block(BlockKind.DENY_IDENTITY, CHECKOUT, decision="d", until=NOW + timedelta(hours=1))
    assert decide(make_review(CHECKOUT), block, now=NOW).denied
    assert not decide(make_review(CHECKOUT), block, now=NOW + timedelta(hours=1)).denied


def test_release_removes_only_that_decisions_blocks() -> None:
    state = AuthorizationState.of([DENY_CHECKOUT, REVOKE_AAA])
    released = state.without_decision("payments/d1")
    assert released.blocks == (REVOKE_AAA,)


def test_the_webhook_never_allows() -> None:
    body = make_review(CHECKOUT)
    for verdict in (NO_OPINION, decide(body, DENY_CHECKOUT)):
        assert verdict.response(body)["status"]["allowed"] is False


@pytest.mark.parametrize(
    "body",
    [{}, {"kind": "TokenReview"}, {"kind": "SubjectAccessReview", "spec": "nope"}],
    ids=["empty", "wrong-kind", "bad-spec"],
)
def test_not_a_review_is_refused(body: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="SubjectAccessReview"):
        Request.from_review(body)


def test_a_restriction_denial_names_the_decision_and_the_operation() -> None:
    verdict = decide(make_review(CHECKOUT, verb="list", resource="secrets"), RESTRICT)
    assert verdict.decision == "payments/d3"
    assert "payments/d3" in verdict.reason
    assert "'list /secrets payments'" in verdict.reason


def test_releasing_a_restriction_keeps_the_decisions_other_blocks() -> None:
    revoke = Block(BlockKind.DENY_CREDENTIAL, CHECKOUT, decision="payments/d3", credential_id="x")
    state = AuthorizationState.of([RESTRICT, revoke, DENY_CHECKOUT])
    released = state.without_kind("payments/d3", BlockKind.RESTRICT_SCOPE)
    assert set(released.blocks) == {revoke, DENY_CHECKOUT}


@pytest.mark.parametrize(
    ("attributes", "audit_event_operation"),
    [
        ({"verb": "list", "resource": "configmaps", "namespace": "p"}, "list /configmaps p"),
        (
            {"verb": "get", "group": "apps", "resource": "deployments", "subresource": "scale",
             "namespace": "p", "name": "web"},
            "get apps/deployments/scale p",
        ),
        ({"verb": "list", "resource": "namespaces"}, "list /namespaces "),
    ],
    ids=["core", "subresource", "cluster-scoped"],
)  # fmt: skip
def test_a_review_spells_its_operation_as_the_audit_decoder_does(
    attributes: dict[str, str], audit_event_operation: str
) -> None:
    body = make_review(CHECKOUT)
    body["spec"]["resourceAttributes"] = attributes
    event = {
        "apiVersion": "audit.k8s.io/v1",
        "kind": "Event",
        "auditID": "a1",
        "stage": "ResponseComplete",
        "requestURI": "/x",
        "verb": attributes["verb"],
        "user": {"username": CHECKOUT.username},
        "objectRef": {
            k: v
            for k, v in {
                "resource": attributes.get("resource"),
                "subresource": attributes.get("subresource"),
                "namespace": attributes.get("namespace"),
                "apiGroup": attributes.get("group"),
            }.items()
            if v
        },
        "requestReceivedTimestamp": "2026-12-04T12:00:00Z",
    }
    record = parse_event(json.dumps(event).encode())
    assert record is not None
    assert record.operation == audit_event_operation
    assert Request.from_review(body).operation == audit_event_operation
