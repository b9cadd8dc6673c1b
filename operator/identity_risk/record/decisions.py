"""A policy ``Decision`` as the records people read: a RiskDecision object and a chain payload.

The RiskDecision's name is derived from the decision itself (identity, policy, band, time), so
re-processing the same decision after a crash creates nothing new: the create finds the object it
made before, and the decision log finds the link it appended before. The chain payload is the
RiskDecision's spec plus its name, so verifying the log also proves the objects were not edited.
"""

from __future__ import annotations

import hashlib
import re
from datetime import datetime
from typing import Any

from identity_risk.api import v1alpha1 as v1
from identity_risk.policy.decision import Decision
from identity_risk.scoring import Contribution

MAX_SIGNALS = 16


def decision_name(decision: Decision) -> str:
    """A DNS-1123 name, stable for the same decision: ``<serviceaccount>-<band>-<hash>``."""
    key = "|".join(
        [
            str(decision.identity),
            decision.policy,
            decision.band or "none",
            decision.at.isoformat(),
        ]
    )
    digest = hashlib.sha256(key.encode()).hexdigest()[:10]
    stem = re.sub(r"[^a-z0-9-]", "-", decision.identity.name.lower())[:40].strip("-") or "sa"
    return f"{stem}-{decision.band or 'none'}-{digest}"


def _signal(contribution: Contribution) -> v1.SignalSnapshot:
    signal = contribution.signal
    return v1.SignalSnapshot(
        type=signal.type,
        points=contribution.points,
        confidence=v1.ConfidenceLevel(signal.confidence.label),
        summary=signal.summary,
        evidence=dict(signal.evidence),
        owasp_nhi=signal.owasp_nhi,
        nist_csf=signal.nist_csf,
    )


def risk_decision(decision: Decision, *, service_account_uid: str = "") -> v1.RiskDecision:
    """The RiskDecision object for a decision (validated by the model before it is sent)."""
    spec = v1.RiskDecisionSpec(
        identity=v1.IdentityReference(
            namespace=decision.identity.namespace,
            service_account_name=decision.identity.name,
            uid=service_account_uid or None,
        ),
        owner=decision.owner or None,
        policy=decision.policy,
        mode=decision.mode,
        score=decision.score,
        confidence=v1.ConfidenceLevel(decision.confidence.label),
        band=decision.band or "none",
        previous_band=decision.previous_band,
        disposition=decision.disposition.value,
        signals=[_signal(c) for c in decision.evidence[:MAX_SIGNALS]],
        actions=list(decision.actions),
        reasons=list(decision.reasons),
        decided_at=decision.at,
    )
    return v1.RiskDecision(
        metadata={
            "name": decision_name(decision),
            "namespace": decision.identity.namespace,
            "labels": {
                "identityrisk.dev/service-account": decision.identity.name[:63],
                "identityrisk.dev/band": decision.band or "none",
            },
        },
        spec=spec,
    )


def manifest(obj: v1.RiskDecision) -> dict[str, Any]:
    """The object as the API server wants it (camelCase, no unset fields)."""
    return obj.model_dump(by_alias=True, exclude_none=True, mode="json")


RELEASE_SUFFIX = "#release"
RELEASE_REQUESTED_BY = "identityrisk.dev/release-requested-by"
"""Set on a RiskDecision (by ``kubectl risk release``) to have the operator release it."""


def release_payload(obj: v1.RiskDecision, *, by: str, at: datetime) -> dict[str, Any]:
    """What the decision log signs when a decision is released: who, when, what was undone.

    Rebuilt from the released RiskDecision's status by ``kubectl risk verify``.
    """
    meta = obj.metadata
    key = f"{meta['namespace']}/{meta['name']}"
    status = obj.status or v1.RiskDecisionStatus()
    return {
        "decision": key + RELEASE_SUFFIX,
        "release": {
            "decision": key,
            "by": by,
            "at": at.isoformat(),
            "actions": [o.type.value for o in status.actions if o.phase is v1.ActionPhase.RELEASED],
        },
    }


def chain_payload(obj: v1.RiskDecision) -> dict[str, Any]:
    """What the decision log signs for this decision: its identity and its whole spec."""
    meta = obj.metadata
    return {
        "decision": f"{meta['namespace']}/{meta['name']}",
        "spec": obj.spec.model_dump(by_alias=True, exclude_none=True, mode="json"),
    }
