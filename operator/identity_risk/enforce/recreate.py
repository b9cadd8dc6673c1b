"""RecreateServiceAccount: a new UID for the identity, so every token it ever issued dies.

Service-account tokens name the account's UID; the API server refuses a token whose UID no
longer matches the live ServiceAccount. Deleting the account and creating it again under the
same name (with its labels, annotations, owner references, ``imagePullSecrets`` and
``automountServiceAccountToken``) therefore revokes every bound and legacy token at once, while
RoleBindings, which name the account, keep granting the same permissions to the new one. The
identity's pods are then evicted so they come back with tokens for the new UID.

Not reversible: the old UID cannot be brought back. The new account carries
``identityrisk.dev/recreated-by`` naming the decision, which is how a replay after a crash knows
the work is done; if the process died between delete and create, the replay creates the account
from the inventory's copy (annotations and automount only) and says so.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from identity_risk.api import v1alpha1 as v1
from identity_risk.enforce.actions import ActionContext, Outcome, identity_of, key_of

RECREATED_BY_ANNOTATION = "identityrisk.dev/recreated-by"
KEPT_METADATA = ("labels", "annotations", "ownerReferences")
KEPT_FIELDS = ("imagePullSecrets", "automountServiceAccountToken")


def successor(current: Mapping[str, Any], *, decision: str) -> dict[str, Any]:
    """The ServiceAccount to create in place of ``current``: same name and settings, no UID.

    ``secrets`` (legacy token Secrets) is not carried over: those tokens belong to the old UID.
    """
    meta = current.get("metadata") or {}
    new_meta: dict[str, Any] = {"name": meta["name"], "namespace": meta.get("namespace")}
    for key in KEPT_METADATA:
        if meta.get(key):
            new_meta[key] = meta[key]
    new_meta["annotations"] = {**(meta.get("annotations") or {}), RECREATED_BY_ANNOTATION: decision}
    body: dict[str, Any] = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": new_meta}
    for key in KEPT_FIELDS:
        if current.get(key) is not None:
            body[key] = current[key]
    return body


def recreate_service_account(
    ctx: ActionContext, action: v1.Action, obj: v1.RiskDecision
) -> Outcome:
    """Delete and recreate the identity's ServiceAccount, then evict its pods."""
    identity = identity_of(obj)
    namespace, name = identity.namespace, identity.name
    decision = key_of(obj)
    inventory = ctx.inventory()
    current = ctx.kube.get_service_account(namespace, name)
    changed: list[str] = []
    note = ""
    cutoff: datetime | None = ctx.clock()  # pods older than the new account are rolled
    if current is None:
        known = inventory.service_account(identity)
        if known is None:
            return Outcome(
                v1.ActionPhase.FAILED, f"ServiceAccount {namespace}/{name} does not exist"
            )
        fallback: dict[str, Any] = {
            "metadata": {
                "name": name,
                "namespace": namespace,
                "annotations": dict(known.annotations),
            }
        }
        if known.automount is not None:
            fallback["automountServiceAccountToken"] = known.automount
        created = ctx.kube.create_service_account(namespace, successor(fallback, decision=decision))
        note = " (it was missing: recreated from the operator's inventory, labels and "
        note += "imagePullSecrets may be lost)"
        changed.append(f"ServiceAccount {namespace}/{name}: created uid {_uid(created)}")
    elif (current.get("metadata") or {}).get("annotations", {}).get(
        RECREATED_BY_ANNOTATION
    ) == decision:  # a replay: done already; pods re-created since are not rolled again
        cutoff = _created(current)
        changed.append(f"ServiceAccount {namespace}/{name}: recreated uid {_uid(current)}")
    else:
        old_uid = _uid(current)
        ctx.kube.delete_service_account(namespace, name, uid=old_uid)
        created = ctx.kube.create_service_account(namespace, successor(current, decision=decision))
        changed.append(
            f"ServiceAccount {namespace}/{name}: deleted uid {old_uid}, created uid {_uid(created)}"
        )
    rolled = []
    for pod in inventory.pods_of(identity):
        if not pod.created_before(cutoff):
            continue
        result = ctx.kube.evict(pod.namespace, pod.name)
        changed.append(f"pod {pod.namespace}/{pod.name}: {result}")
        rolled.append(f"{pod.name} {result}")
    return Outcome(
        v1.ActionPhase.SUCCEEDED,
        f"ServiceAccount {identity} recreated: tokens of the old UID no longer authenticate"
        + note
        + (f"; pods: {', '.join(rolled)}" if rolled else ""),
        changed=tuple(changed),
    )


def _created(obj: Mapping[str, Any]) -> datetime | None:
    value = (obj.get("metadata") or {}).get("creationTimestamp")
    try:
        return datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None


def _uid(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("uid", ""))
