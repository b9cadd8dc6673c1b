"""Token-lifetime clamps in force: what the pod admission webhook answers from.

ShortenTokenTTL caps the projected service-account token lifetime of an identity's new pods. Like
the authorization state, the clamps are a plain value rebuilt from RiskDecisions (``clamps_of``),
so every operator replica clamps the same pods from the same records; the handler also puts its
clamp here directly, before it evicts pods, so the re-created pods are already clamped.
``token_patch`` is the pure part: the JSON patch that clamps one pod.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from identity_risk.api import v1alpha1 as v1
from identity_risk.domain import ActionType, Identity

DEFAULT_TOKEN_SECONDS = 3600
"""What the apiserver assumes for a ``serviceAccountToken`` projection without a lifetime."""


@dataclass(frozen=True, slots=True)
class Clamp:
    identity: Identity
    decision: str
    """``namespace/name`` of the RiskDecision that ordered it."""
    max_seconds: int


class TokenClamps:
    """The clamps in force, by decision, shared between the executor and the webhook threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_decision: dict[str, tuple[Clamp, ...]] = {}
        self._by_identity: dict[Identity, Clamp] = {}

    def put(self, decision: str, clamps: Iterable[Clamp]) -> None:
        """Replace the clamps of ``decision`` (none: it has no clamp in force)."""
        with self._lock:
            found = tuple(clamps)
            if found:
                self._by_decision[decision] = found
            else:
                self._by_decision.pop(decision, None)
            self._reindex()

    def add(self, clamp: Clamp) -> None:
        with self._lock:
            mine = self._by_decision.get(clamp.decision, ())
            if clamp not in mine:
                self._by_decision[clamp.decision] = (*mine, clamp)
            self._reindex()

    def release(self, decision: str) -> None:
        self.put(decision, ())

    def _reindex(self) -> None:
        tightest: dict[Identity, Clamp] = {}
        for clamps in self._by_decision.values():
            for clamp in clamps:
                known = tightest.get(clamp.identity)
                if known is None or clamp.max_seconds < known.max_seconds:
                    tightest[clamp.identity] = clamp
        self._by_identity = tightest  # replaced whole: readers need no lock

    def clamp_for(self, identity: Identity) -> Clamp | None:
        """The tightest clamp in force for ``identity``."""
        return self._by_identity.get(identity)


def clamps_of(obj: v1.RiskDecision) -> list[Clamp]:
    """The clamps a recorded decision has in force (from its succeeded ShortenTokenTTL)."""
    if obj.status is None or obj.status.phase is v1.DecisionPhase.RELEASED:
        return []
    identity = Identity(obj.spec.identity.namespace, obj.spec.identity.service_account_name)
    decision = f"{obj.metadata.get('namespace', '')}/{obj.metadata.get('name', '')}"
    out = []
    # Outcomes are recorded in action order, so outcome i is the result of action i.
    for action, outcome in zip(obj.spec.actions, obj.status.actions, strict=False):
        if (
            outcome.type is ActionType.SHORTEN_TOKEN_TTL
            and outcome.phase is v1.ActionPhase.SUCCEEDED
            and action.max_token_seconds is not None
        ):
            out.append(Clamp(identity, decision, clamp_seconds(action.max_token_seconds)))
    return out


def clamp_seconds(max_token_seconds: int) -> int:
    """Never below the apiserver's minimum projected-token lifetime (600 s)."""
    return max(v1.MIN_TOKEN_SECONDS, max_token_seconds)


def token_patch(pod: Mapping[str, Any], max_seconds: int) -> list[dict[str, Any]]:
    """JSON patch ops that cap every ``serviceAccountToken`` projection of ``pod`` at
    ``max_seconds`` (an absent lifetime counts as the apiserver's default, one hour)."""
    ops: list[dict[str, Any]] = []
    volumes = (pod.get("spec") or {}).get("volumes") or []
    for i, volume in enumerate(volumes):
        sources = ((volume or {}).get("projected") or {}).get("sources") or []
        for j, source in enumerate(sources):
            token = (source or {}).get("serviceAccountToken")
            if not isinstance(token, Mapping):
                continue
            seconds = token.get("expirationSeconds", DEFAULT_TOKEN_SECONDS)
            if not isinstance(seconds, int) or seconds > max_seconds:
                ops.append(
                    {
                        "op": "add",  # sets the member whether or not it is there
                        "path": f"/spec/volumes/{i}/projected/sources/{j}"
                        "/serviceAccountToken/expirationSeconds",
                        "value": max_seconds,
                    }
                )
    return ops


def identity_of_pod(request: Mapping[str, Any]) -> Identity | None:
    """The ServiceAccount a pod in an AdmissionReview request runs as."""
    pod = request.get("object")
    if not isinstance(pod, Mapping):
        return None
    namespace = str(request.get("namespace") or (pod.get("metadata") or {}).get("namespace") or "")
    spec = pod.get("spec") or {}
    name = str(spec.get("serviceAccountName") or spec.get("serviceAccount") or "default")
    return Identity(namespace, name) if namespace else None
