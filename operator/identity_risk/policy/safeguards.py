"""Cluster-wide safeguards: an action rate limit and a circuit breaker, as pure functions.

A burst of escalations across many identities at once is more often a bad policy, a detector
bug or a noisy deploy than a coordinated attack, and mass containment is an outage. These checks
look at the recent decisions across the cluster (the caller keeps them; ``history_window`` says
for how long) and hold back a decision's enforcement when the rate limit is spent or when too
many identities have crossed bands inside the breaker's window. Held decisions are still
recorded with the reason, so nothing is silent.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from identity_risk.api.v1alpha1 import Safeguards
from identity_risk.policy.bands import duration
from identity_risk.policy.decision import Decision, Disposition, held_back

RATE_WINDOW = timedelta(minutes=1)


def history_window(safeguards: Safeguards) -> timedelta:
    """How much decision history ``apply_safeguards`` needs."""
    return max(RATE_WINDOW, duration(safeguards.circuit_breaker.window))


def apply_safeguards(
    decision: Decision,
    *,
    recent: Iterable[Decision],
    safeguards: Safeguards,
    now: datetime,
) -> Decision:
    """``decision``, held back if the breaker is open or the rate limit is spent.

    ``recent`` are earlier decisions (any identity, any order); only those inside the windows
    count. Only a decision that would act is affected.
    """
    if decision.disposition is not Disposition.ACT:
        return decision
    breaker = safeguards.circuit_breaker
    window = duration(breaker.window)
    crossing: set[object] = {decision.identity}
    spent = 0
    for d in recent:
        if d.escalated and now - window < d.at <= now:
            crossing.add(d.identity)
        if d.disposition is Disposition.ACT and now - RATE_WINDOW < d.at <= now:
            spent += len(d.actions)
    if len(crossing) > breaker.max_identities:
        return held_back(
            decision,
            disposition=Disposition.CIRCUIT_OPEN,
            reason=f"circuit breaker open: {len(crossing)} identities crossed bands within"
            f" {breaker.window} (limit {breaker.max_identities}); enforcement paused",
        )
    if spent + len(decision.actions) > safeguards.max_actions_per_minute:
        return held_back(
            decision,
            disposition=Disposition.RATE_LIMITED,
            reason=f"rate limit: {spent} actions in the last minute, {len(decision.actions)} more"
            f" would exceed {safeguards.max_actions_per_minute}/min",
        )
    return decision
