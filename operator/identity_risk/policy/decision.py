"""The Decision: one identity, one policy, one score, one band, the actions it orders, and why.

``decide`` is the ordered chain of pure policy steps (band with hysteresis → crossing → actions →
protection → exceptions → mode) over plain inputs and an injected ``now``. It is a pure function:
the same inputs give an equal Decision, which is what makes ``kubectl risk simulate`` an honest
preview of what the operator will do. Cluster-wide safeguards run afterwards (``safeguards``),
because they look across identities.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime

from identity_risk.api.v1alpha1 import (
    Action,
    IdentityRiskPolicy,
    IdentityRiskPolicySpec,
    RiskException,
    parse_duration,
)
from identity_risk.domain import ActionType, Confidence, Identity, Mode
from identity_risk.policy.bands import BandState, band_index, choose_band
from identity_risk.policy.coverage import IdentityContext, OperatorSelf, protection_reason
from identity_risk.policy.exceptions import describe, enforcement_exemption
from identity_risk.scoring import Contribution, Score, ScoringConfig


class Disposition(enum.StrEnum):
    """What happens to a decision's actions."""

    ACT = "Act"
    """Enforce mode, nothing in the way: carry the actions out."""
    AUDIT = "Audit"
    """The policy is in Audit mode: record, do not act."""
    NO_CHANGE = "NoChange"
    """No escalation, so no new actions."""
    PROTECTED = "Protected"
    EXEMPT = "Exempt"
    CIRCUIT_OPEN = "CircuitOpen"
    RATE_LIMITED = "RateLimited"


@dataclass(frozen=True, slots=True, kw_only=True)
class Decision:
    """One immutable link of the chain (becomes a RiskDecision)."""

    identity: Identity
    policy: str
    mode: Mode
    score: int
    confidence: Confidence
    band: str | None
    previous_band: str | None
    band_since: datetime
    escalated: bool
    """The identity entered a higher band with this decision (a "crossing")."""
    actions: tuple[Action, ...]
    """The band's ordered actions when it escalated; empty otherwise."""
    disposition: Disposition
    reasons: tuple[str, ...]
    at: datetime
    evidence: tuple[Contribution, ...] = ()
    owner: str = ""

    @property
    def changed_band(self) -> bool:
        return self.band != self.previous_band

    @property
    def top_signal(self) -> str:
        return self.evidence[0].signal.type if self.evidence else ""

    @property
    def actions_to_execute(self) -> tuple[Action, ...]:
        """What the effects layer may do now. Notify is information, not enforcement: it runs
        in every disposition that has actions; everything else only when the disposition is Act."""
        if self.disposition is Disposition.ACT:
            return self.actions
        return tuple(a for a in self.actions if a.type is ActionType.NOTIFY)

    @property
    def band_state(self) -> BandState:
        return BandState(band=self.band, since=self.band_since)


def scoring_config(spec: IdentityRiskPolicySpec) -> ScoringConfig:
    """The scoring knobs a policy sets."""
    return ScoringConfig(
        half_life=parse_duration(spec.scoring.half_life),
        weight_overrides=dict(spec.scoring.weights),
    )


def decide(
    *,
    ctx: IdentityContext,
    score: Score,
    policy: IdentityRiskPolicy,
    previous: BandState | None,
    exceptions: Iterable[RiskException] = (),
    operator: OperatorSelf = OperatorSelf(),  # noqa: B008 - frozen
    now: datetime,
) -> Decision:
    """Decide for one identity. ``exceptions`` must already be the active ones for it."""
    if score.identity != ctx.identity:
        raise ValueError(f"score is for {score.identity}, context for {ctx.identity}")
    spec = policy.spec
    bands = spec.bands
    choice = choose_band(
        bands=bands,
        score=score.score,
        confidence=score.confidence,
        previous=previous,
        hysteresis=spec.hysteresis,
        now=now,
    )
    band = choice.band
    band_name = band.name if band is not None else None
    prev_name = previous.band if previous is not None else None
    since = previous.since if previous is not None and prev_name == band_name else now
    # A band starting at 0 is where every identity lives; being first placed there is no crossing.
    escalated = band_index(bands, band_name) > band_index(bands, prev_name) and not (
        prev_name is None and band is not None and band.min_score == 0
    )

    top = score.top_signal
    reasons = [
        f"score {score.score} ({score.confidence.label} confidence)"
        + (f", top signal {top.type}: {top.summary}" if top is not None else ", no live signals"),
        *choice.reasons,
    ]
    if score.overridden_by:
        reasons.append(score.overridden_by)
    if band_name != prev_name:
        verb = "entered" if escalated else "stepped down to"
        reasons.append(f"{verb} band {band_name or '(none)'} from {prev_name or '(none)'}")

    actions: tuple[Action, ...] = tuple(band.actions) if escalated and band is not None else ()
    disposition = Disposition.NO_CHANGE
    if actions:
        protected = protection_reason(
            identity=ctx.identity,
            protected_namespaces=spec.safeguards.protected_namespaces,
            operator=operator,
            break_glass=ctx.break_glass,
        )
        exemption = enforcement_exemption(exceptions)
        if protected is not None:
            disposition = Disposition.PROTECTED
            reasons.append(f"protected, not acted on: {protected}")
        elif exemption is not None:
            disposition = Disposition.EXEMPT
            reasons.append(f"exempt from enforcement by {describe(exemption)}")
        elif spec.mode is Mode.AUDIT:
            disposition = Disposition.AUDIT
            reasons.append("policy mode is Audit: recorded, not acted on")
        else:
            disposition = Disposition.ACT
    for exc in exceptions:
        if exc.spec.signal_types:
            reasons.append(
                f"signal types {', '.join(exc.spec.signal_types)} not counted: {describe(exc)}"
            )

    return Decision(
        identity=ctx.identity,
        policy=policy.name,
        mode=spec.mode,
        score=score.score,
        confidence=score.confidence,
        band=band_name,
        previous_band=prev_name,
        band_since=since,
        escalated=escalated,
        actions=actions,
        disposition=disposition,
        reasons=tuple(reasons),
        at=now,
        evidence=score.contributions,
        owner=ctx.owner,
    )


def held_back(decision: Decision, *, disposition: Disposition, reason: str) -> Decision:
    """The same decision with its actions held back by a safeguard."""
    return replace(decision, disposition=disposition, reasons=(*decision.reasons, reason))
