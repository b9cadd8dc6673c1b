"""``kubectl risk simulate``: replays a log through a policy; errors name the file and field."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from builders import (
    ATTACKER_IP,
    KUBECTL_USER_AGENT,
    NODE_CIDR,
    default_objects,
    make_audit_event,
    make_jsonl,
)

from identity_risk.cli.kubectl_risk import main
from identity_risk.engine import Engine, build_source, replay
from identity_risk.ingest import Deduplicator, ParseStats, parse_lines
from identity_risk.policy import Disposition

POLICY: dict[str, Any] = {
    "apiVersion": "identityrisk.dev/v1alpha1",
    "kind": "IdentityRiskPolicy",
    "metadata": {"name": "shop"},
    "spec": {
        "mode": "Enforce",
        "scoring": {"halfLife": "1h"},
        "hysteresis": {"margin": 5, "hold": "10m"},
        "bands": [
            {"name": "low", "minScore": 20, "actions": [{"type": "Notify"}]},
            {"name": "high", "minScore": 60, "minConfidence": "High",
             "actions": [{"type": "RevokeToken"}, {"type": "QuarantinePods", "allowDNS": True}]},
        ],
    },
}  # fmt: skip


def attack_log() -> list[dict[str, Any]]:
    """A day of ordinary use by shop/web, then its token replayed with kubectl from outside."""
    events = [make_audit_event(at=i * 600.0) for i in range(160)]
    events += [
        make_audit_event(at=96_000.0 + i, source_ip=ATTACKER_IP, user_agent=KUBECTL_USER_AGENT)
        for i in range(3)
    ]
    events += [make_audit_event(at=96_100.0 + i * 600.0) for i in range(40)]  # life goes on
    return events


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    policy = tmp_path / "policy.yaml"
    policy.write_text(yaml.safe_dump(POLICY))
    log = tmp_path / "audit.log"
    log.write_bytes(b"".join(make_jsonl(attack_log())))
    inventory = tmp_path / "inventory"
    inventory.mkdir()
    (inventory / "cluster.yaml").write_text(yaml.safe_dump_all(default_objects()))
    return {"policy": policy, "log": log, "inventory": inventory}


def simulate(files: dict[str, Path], *extra: str) -> list[str]:
    return [
        "simulate", "--policy", str(files["policy"]), "--audit-log", str(files["log"]),
        "--inventory", str(files["inventory"]), "--quiet", *extra,
    ]  # fmt: skip


def test_table_shows_scores_crossings_and_actions(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(simulate(files)) == 0
    out = capsys.readouterr().out
    assert "shop/web" in out
    assert "BAND CROSSINGS" in out
    assert "RevokeToken, QuarantinePods" in out
    assert "TokenReplay" in out


def test_json_has_timeline_crossings_and_decay(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(simulate(files, "-o", "json")) == 0
    report = json.loads(capsys.readouterr().out)
    (web,) = [i for i in report["identities"] if i["identity"] == "shop/web"]
    up = web["crossings"][0]
    assert (up["to"], up["outcome"], up["topSignal"]) == ("high", "Act", "TokenReplay")
    assert up["actions"] == [{"type": "RevokeToken"}, {"type": "QuarantinePods", "allowDNS": True}]
    # with a 1h half-life the score decays over the following hours and the band steps down
    assert web["score"] < web["peak"]
    assert any(c["to"] != "high" and not c["escalated"] for c in web["crossings"][1:])


def test_progress_goes_to_stderr_not_stdout(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("identity_risk.cli.simulate.PROGRESS_EVERY", 50)
    monkeypatch.setattr("identity_risk.cli.simulate.Progress.__call__", _always_report)
    args = [a for a in simulate(files, "-o", "json") if a != "--quiet"]
    assert main(args) == 0
    captured = capsys.readouterr()
    json.loads(captured.out)
    assert "events processed" in captured.err


def _always_report(self: Any, n: int) -> None:
    self.stream.write(f"simulate: {n:,} events processed\n")


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda p: p["spec"]["bands"][1].update(minScore=150), "spec.bands[1].minScore"),
        (lambda p: p["spec"].update(mode="Sometimes"), "spec.mode"),
        (lambda p: p["spec"].update(bandz=[]), "spec.bandz"),
        (lambda p: p.update(kind="ConfigMap"), "expected IdentityRiskPolicy"),
        (lambda p: p["spec"]["bands"][1]["actions"].append({"type": "Explode"}), "spec.bands[1].actions[2].type"),
    ],
    ids=["out-of-range", "bad-enum", "unknown-field", "wrong-kind", "unknown-action"],
)  # fmt: skip
def test_invalid_policy_names_the_file_and_field(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str], mutate: Any, expected: str
) -> None:
    policy = json.loads(json.dumps(POLICY))
    mutate(policy)
    files["policy"].write_text(yaml.safe_dump(policy))
    assert main(simulate(files)) == 1
    err = capsys.readouterr().err
    assert str(files["policy"]) in err
    assert expected in err


@pytest.mark.parametrize(
    ("target", "content", "expected"),
    [
        ("policy", "spec: [unclosed", "not valid YAML at line 1"),
        ("policy", None, "no such file"),
        ("log", None, "no such file"),
        ("log", "this is not json\n{}\n", "no audit event could be read"),
    ],
    ids=["policy-not-yaml", "policy-missing", "log-missing", "log-garbage"],
)
def test_unreadable_inputs_are_reported_clearly(
    files: dict[str, Path],
    capsys: pytest.CaptureFixture[str],
    target: str,
    content: str | None,
    expected: str,
) -> None:
    if content is None:
        files[target].unlink()
    else:
        files[target].write_text(content)
    assert main(simulate(files)) == 1
    err = capsys.readouterr().err
    assert str(files[target]) in err
    assert expected in err


def test_inventory_must_be_a_directory(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    files["inventory"] = files["policy"]
    assert main(simulate(files)) == 1
    assert "expects a directory" in capsys.readouterr().err


def test_audit_mode_policy_would_not_act(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    files["policy"].write_text(
        yaml.safe_dump({**POLICY, "spec": {**POLICY["spec"], "mode": "Audit"}})
    )
    assert main(simulate(files, "-o", "json")) == 0
    report = json.loads(capsys.readouterr().out)
    outcomes = {
        c["outcome"] for i in report["identities"] for c in i["crossings"] if c["escalated"]
    }
    assert outcomes == {"Audit"}


def test_the_engine_is_deterministic() -> None:
    from identity_risk.api.v1alpha1 import IdentityRiskPolicy

    def once() -> list[tuple[object, ...]]:
        engine = Engine(
            policies=[IdentityRiskPolicy.model_validate(POLICY)],
            source=build_source(default_objects(), node_cidrs=[NODE_CIDR]),
        )
        out: list[tuple[object, ...]] = []
        lines = make_jsonl(attack_log())
        replay(
            parse_lines(lines, stats=ParseStats(), dedupe=Deduplicator()),
            engine=engine,
            on_evaluation=lambda ev: out.append(
                (ev.decision.at, ev.decision.score, ev.decision.band, ev.decision.disposition)
            ),
        )
        return out

    first = once()
    assert first == once()
    assert any(d == Disposition.ACT for *_, d in first)


def test_bad_cidr_is_reported(files: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*simulate(files), "--pod-cidr", "10.244.0.0/99"]) == 1
    assert "10.244.0.0/99" in capsys.readouterr().err


def test_networks_from_flags_let_location_detectors_work_without_nodes(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    (files["inventory"] / "cluster.yaml").write_text(
        yaml.safe_dump_all([o for o in default_objects() if o["kind"] != "Node"])
    )
    args = [*simulate(files, "-o", "json"), "--pod-cidr", "10.244.0.0/16", "--node-cidr", NODE_CIDR]
    assert main(args) == 0
    report = json.loads(capsys.readouterr().out)
    signals = {
        s["type"] for i in report["identities"] for c in i["crossings"] for s in c["signals"]
    }
    assert "AnomalousLocation" in signals


def test_a_flood_of_the_same_replayed_token_is_not_re_decided_per_request() -> None:
    from identity_risk.api.v1alpha1 import IdentityRiskPolicy

    engine = Engine(
        policies=[IdentityRiskPolicy.model_validate(POLICY)],
        source=build_source(default_objects(), node_cidrs=[NODE_CIDR]),
    )
    day = [make_audit_event(at=i * 600.0) for i in range(160)]
    flood = [make_audit_event(at=96_000.0 + i * 0.01, source_ip=ATTACKER_IP) for i in range(3000)]
    evaluations: list[object] = []
    replay(
        parse_lines(make_jsonl(day + flood), stats=ParseStats(), dedupe=Deduplicator()),
        engine=engine,
        on_evaluation=evaluations.append,
    )
    assert 1 <= len(evaluations) < 20


def test_the_bundled_example_shows_both_attacks(capsys: pytest.CaptureFixture[str]) -> None:
    root = Path(__file__).resolve().parents[2]
    args = [
        "simulate", "--policy", str(root / "examples/policy-enforce.yaml"),
        "--audit-log", str(root / "examples/simulate/audit.log.gz"),
        "--inventory", str(root / "examples/simulate/inventory"),
        "--node-cidr", NODE_CIDR, "--quiet", "-o", "json",
    ]  # fmt: skip
    assert main(args) == 0
    report = json.loads(capsys.readouterr().out)
    peaks = {i["identity"]: (i["peak"], i["topSignal"]) for i in report["identities"]}
    assert peaks["shop/web"][1] == "TokenReplay"
    assert peaks["ci/deployer"][1] == "PrivilegeEscalation"
    assert {i["band"] for i in report["identities"]} == {"high"}
