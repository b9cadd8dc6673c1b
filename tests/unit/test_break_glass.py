"""Break-glass: an annotated ServiceAccount or Namespace is protected (decided, never acted on)."""

from __future__ import annotations

from typing import Any

import pytest
from test_policy_engine import T0, policy, replay_signal

from identity_risk.domain import Identity
from identity_risk.engine import DetectorSource, Engine
from identity_risk.policy import Disposition, OperatorSelf, protection_reason
from identity_risk.policy.coverage import BREAK_GLASS_ANNOTATION
from identity_risk.signals import Inventory

WEB = Identity(namespace="shop", name="web")


def make_namespace(name: str, **annotations: str) -> dict[str, Any]:
    return {"kind": "Namespace", "metadata": {"name": name, "annotations": annotations}}


def make_sa(namespace: str, name: str, **annotations: str) -> dict[str, Any]:
    meta = {"name": name, "namespace": namespace, "annotations": annotations}
    return {"kind": "ServiceAccount", "metadata": meta}


GLASS = {BREAK_GLASS_ANNOTATION: "true"}


@pytest.mark.parametrize(
    ("objects", "where"),
    [
        ([make_namespace("shop"), make_sa("shop", "web", **GLASS)], "ServiceAccount shop/web"),
        ([make_namespace("shop", **GLASS), make_sa("shop", "web")], "Namespace shop"),
        ([make_namespace("shop"), make_sa("shop", "web")], ""),
        ([make_sa("shop", "web", **{BREAK_GLASS_ANNOTATION: "false"})], ""),
        ([make_sa("shop", "other", **GLASS)], ""),
    ],
    ids=["on-the-sa", "on-the-namespace", "none", "false", "another-sa"],
)
def test_the_context_says_where_break_glass_is_set(objects: list[Any], where: str) -> None:
    source = DetectorSource(inventory=Inventory(), objects=objects)
    assert source.context(WEB).break_glass == where


def test_break_glass_is_a_protection_reason() -> None:
    reason = protection_reason(
        identity=WEB,
        protected_namespaces=[],
        operator=OperatorSelf(),
        break_glass="Namespace shop",
    )
    assert reason == f"break-glass: Namespace shop is annotated {BREAK_GLASS_ANNOTATION}=true"
    assert protection_reason(identity=WEB, protected_namespaces=[], operator=OperatorSelf()) is None


class GlassSource:
    """A source whose identities all carry break-glass."""

    def __init__(self) -> None:
        self.inner = DetectorSource(
            inventory=Inventory(), objects=[make_namespace("shop", **GLASS)]
        )

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def test_a_break_glass_identity_is_decided_but_never_acted_on() -> None:
    engine = Engine(policies=[policy()], source=GlassSource())  # type: ignore[arg-type]
    (ev,) = engine.add_signals([replay_signal(WEB)], now=T0)
    assert (ev.decision.band, ev.decision.disposition) == ("high", Disposition.PROTECTED)
    assert any("break-glass" in r for r in ev.decision.reasons)
