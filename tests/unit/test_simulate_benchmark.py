"""The end-to-end benchmark's workload stays realistic: attacks escalate, benign traffic does not."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

BENCHMARK = Path(__file__).resolve().parents[2] / "benchmarks" / "pipeline.py"


def load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_pipeline", BENCHMARK)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_small_run_escalates_only_attacked_identities() -> None:
    bench = load()
    lines, objects = bench.generate(20_000)
    n, _engine, evaluations = bench.run_pipeline(lines, objects)
    assert n == 20_000
    escalated = {str(e.decision.identity) for e in evaluations if e.decision.escalated}
    assert escalated
    assert all(bench.is_attacked(i) for i in escalated), escalated
