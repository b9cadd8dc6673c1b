"""ShortenTokenTTL: new pods of the identity get short-lived projected tokens.

The clamp goes into ``ctx.clamps`` first, so the pod admission webhook (``admit_pod``) caps the
``serviceAccountToken`` projections of every pod the identity creates from then on — the
``kube-api-access-*`` volume included: the ServiceAccount admission plugin adds it before mutating
webhooks run. Then the identity's pods whose tokens live longer are evicted (PodDisruptionBudgets
honoured), so their controllers re-create them clamped. Pods already within the limit are left
alone, which also makes a replay after a crash a no-op.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from identity_risk.api import v1alpha1 as v1
from identity_risk.enforce.actions import ActionContext, Outcome, identity_of, key_of
from identity_risk.enforce.admission import ALLOW, Admission, AdmissionHandler
from identity_risk.enforce.clamps import (
    Clamp,
    TokenClamps,
    clamp_seconds,
    identity_of_pod,
    token_patch,
)


def shorten_token_ttl(ctx: ActionContext, action: v1.Action, obj: v1.RiskDecision) -> Outcome:
    """Clamp the identity's new pods' token lifetime, then evict its pods that exceed it."""
    if action.max_token_seconds is None:  # the CRD requires it; a hand-made record may not
        return Outcome(v1.ActionPhase.FAILED, "ShortenTokenTTL without maxTokenSeconds")
    identity = identity_of(obj)
    seconds = clamp_seconds(action.max_token_seconds)
    ctx.clamps.add(Clamp(identity, key_of(obj), seconds))
    changed = [f"admission: clamp projected tokens of {identity} to {seconds}s"]
    results: dict[str, int] = {}
    for pod in ctx.inventory().pods_of(identity):
        expiration = pod.token_expiration_seconds
        if expiration is None or expiration <= seconds:
            continue
        result = ctx.kube.evict(pod.namespace, pod.name)
        changed.append(f"pod {pod.namespace}/{pod.name}: {result}")
        results[result] = results.get(result, 0) + 1
    evicted = ", ".join(f"{n} pod(s) {r}" for r, n in sorted(results.items())) or "no pod to roll"
    return Outcome(
        v1.ActionPhase.SUCCEEDED,
        f"new pods of {identity} get tokens of at most {seconds}s; {evicted}",
        changed=tuple(changed),
    )


def release_token_ttl(
    ctx: ActionContext, outcome: v1.ActionOutcome, obj: v1.RiskDecision
) -> Outcome:
    """Stop clamping; pods keep the lifetime they were admitted with until they are replaced."""
    ctx.clamps.release(key_of(obj))
    return Outcome(
        v1.ActionPhase.RELEASED,
        f"new pods of {identity_of(obj)} get their requested token lifetime again",
        changed=(f"admission: token clamp of {identity_of(obj)} lifted",),
    )


def admit_pod(clamps: TokenClamps) -> AdmissionHandler:
    """The ``pods`` admission handler: patch a new pod of a clamped identity."""

    def admit(request: Mapping[str, Any]) -> Admission:
        identity = identity_of_pod(request)
        clamp = clamps.clamp_for(identity) if identity is not None else None
        if clamp is None or str(request.get("operation", "CREATE")) != "CREATE":
            return ALLOW
        patch = token_patch(request["object"], clamp.max_seconds)
        if not patch:
            return ALLOW
        return Admission(
            patch=patch,
            warnings=(
                f"identity-risk: service-account token lifetime of {identity} clamped to "
                f"{clamp.max_seconds}s by RiskDecision {clamp.decision}",
            ),
        )

    return admit
