"""Policy: which policy governs an identity, which band its score puts it in, what to do about
it, and the cluster-wide safeguards on top. Pure functions over the ``api`` models."""

from identity_risk.policy.bands import BandChoice, BandState, band_index, choose_band, raw_band
from identity_risk.policy.coverage import (
    IdentityContext,
    OperatorSelf,
    covers,
    is_break_glass,
    protection_reason,
    select_policy,
)
from identity_risk.policy.decision import Decision, Disposition, decide, scoring_config
from identity_risk.policy.exceptions import (
    active_exceptions,
    enforcement_exemption,
    exempt_signal_types,
)
from identity_risk.policy.safeguards import apply_safeguards, history_window

__all__ = [
    "BandChoice",
    "BandState",
    "Decision",
    "Disposition",
    "IdentityContext",
    "OperatorSelf",
    "active_exceptions",
    "apply_safeguards",
    "band_index",
    "choose_band",
    "covers",
    "decide",
    "enforcement_exemption",
    "exempt_signal_types",
    "history_window",
    "is_break_glass",
    "protection_reason",
    "raw_band",
    "scoring_config",
    "select_policy",
]
