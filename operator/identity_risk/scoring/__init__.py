"""Scoring: an identity's live signals → a 0-100 score, its confidence and its explanation."""

from identity_risk.scoring.ledger import Observation, SignalLedger
from identity_risk.scoring.score import (
    DEFAULT_HALF_LIFE,
    MAX_SCORE,
    Contribution,
    Score,
    ScoringConfig,
    Suppression,
    amplification_for,
    decay_factor,
    latest_per_fact,
    score_identity,
    signal_id,
)

__all__ = [
    "DEFAULT_HALF_LIFE",
    "MAX_SCORE",
    "Contribution",
    "Observation",
    "Score",
    "ScoringConfig",
    "SignalLedger",
    "Suppression",
    "amplification_for",
    "decay_factor",
    "latest_per_fact",
    "score_identity",
    "signal_id",
]
