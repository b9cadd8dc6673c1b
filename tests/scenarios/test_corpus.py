"""Every scenario of the corpus, replayed through the engine as ``kubectl risk simulate`` does.

Attacks must reach their band with their signal on top; every benign identity must stay at or
below the lowest band. When a scenario fails, the message shows each identity's peak and why.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import msgspec
import pytest
from scenario_corpus import SCENARIOS, Scenario

from identity_risk.cli.inputs import load_policy_bundle
from identity_risk.engine import Engine, Evaluation, build_source, replay
from identity_risk.ingest import Deduplicator, ParseStats, parse_lines
from identity_risk.policy import band_index

POLICY = load_policy_bundle(Path(__file__).with_name("policy.yaml")).policies[0]
BANDS = POLICY.spec.bands
LOWEST = BANDS[0].name


@dataclass
class Peak:
    band: str | None = None
    score: int = 0
    top: str = ""
    explanation: str = ""


def run(s: Scenario) -> tuple[dict[str, Peak], ParseStats]:
    source = build_source(list(s.objects), pod_cidrs=s.pod_cidrs, node_cidrs=s.node_cidrs)
    engine = Engine(policies=[POLICY], source=source)
    peaks: dict[str, Peak] = {}

    def collect(ev: Evaluation) -> None:
        d = ev.decision
        p = peaks.setdefault(str(d.identity), Peak())
        if band_index(BANDS, d.band) > band_index(BANDS, p.band) or (
            d.band == p.band and d.score > p.score
        ):
            p.band, p.score, p.top = d.band, d.score, d.top_signal
            p.explanation = ev.score.explain()

    stats = ParseStats()
    lines = [msgspec.json.encode(e) for e in s.events]
    replay(
        parse_lines(lines, stats=stats, dedupe=Deduplicator()), engine=engine, on_evaluation=collect
    )
    return peaks, stats


def _report(peaks: dict[str, Peak]) -> str:
    return "\n".join(
        f"{k}: peak {p.band} ({p.score})\n{p.explanation}" for k, p in sorted(peaks.items())
    )


@pytest.mark.parametrize(
    "scenario",
    [
        pytest.param(s, marks=pytest.mark.xfail(strict=True, reason=s.known_issue))
        if s.known_issue
        else s
        for s in SCENARIOS
    ],
    ids=[s.name for s in SCENARIOS],
)
def test_scenario(scenario: Scenario) -> None:
    peaks, stats = run(scenario)
    assert not stats.rejected, stats.rejected
    for identity, peak in peaks.items():
        if scenario.attack is not None and identity == scenario.attack.identity:
            continue
        assert band_index(BANDS, peak.band) <= 0, (
            f"benign {identity} rose to {peak.band}\n{_report(peaks)}"
        )
    if scenario.attack is not None:
        want = scenario.attack
        peak = peaks.get(want.identity, Peak())
        assert (peak.band, peak.top) == (want.band, want.top_signal), _report(peaks)


def test_the_corpus_covers_every_behavioural_signal() -> None:
    from identity_risk.domain import SignalKind
    from identity_risk.signals import CATALOGUE

    behavioural = {t.value for t, spec in CATALOGUE.items() if spec.kind is SignalKind.BEHAVIOURAL}
    covered = {s.attack.top_signal for s in SCENARIOS if s.attack is not None}
    assert behavioural - covered <= {"RateDeviation"}, behavioural - covered
