"""QuarantinePods: cut an identity's pods off the network, and keep them for forensics.

The pods are labelled with the decision's name and a deny-all NetworkPolicy selecting that label
is created in their namespace, owned by the RiskDecision (deleting the decision deletes it).
Nothing is evicted: whoever investigates finds the pods as the attacker left them. Only a network
plugin that enforces NetworkPolicy makes this effective; the objects are the same either way.

The outcome's ``changed`` lines name every pod labelled and the policy created, in a form
``release_quarantine`` reads back to undo exactly that.
"""

from __future__ import annotations

import hashlib
from typing import Any

from identity_risk.api import v1alpha1 as v1
from identity_risk.enforce.actions import ActionContext, Outcome, identity_of, until_of
from identity_risk.kube import FIELD_MANAGER, owner_reference

QUARANTINE_LABEL = "identityrisk.dev/quarantined"
LABELLED = "label pod "
POLICY = "NetworkPolicy "


def label_value(decision_name: str) -> str:
    """The decision's name as a label value (at most 63 characters, still unique)."""
    if len(decision_name) <= 63:
        return decision_name
    digest = hashlib.sha256(decision_name.encode()).hexdigest()[:10]
    return f"{decision_name[:52].rstrip('-.')}-{digest}"


def policy_name(decision_name: str) -> str:
    return f"identityrisk-quarantine-{decision_name}"[:253]


def network_policy(obj: v1.RiskDecision, *, allow_dns: bool) -> dict[str, Any]:
    """The deny-all (ingress and egress) policy for the decision's quarantined pods."""
    name = str(obj.metadata["name"])
    owner = owner_reference(
        {"apiVersion": obj.api_version, "kind": obj.kind, "metadata": obj.metadata}
    )
    egress: list[dict[str, Any]] = []
    if allow_dns:
        egress.append({"ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]})
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {
            "name": policy_name(name),
            "namespace": obj.spec.identity.namespace,
            "labels": {"app.kubernetes.io/managed-by": FIELD_MANAGER},
            "ownerReferences": [owner],
        },
        "spec": {
            "podSelector": {"matchLabels": {QUARANTINE_LABEL: label_value(name)}},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [],
            "egress": egress,
        },
    }


def quarantine_pods(ctx: ActionContext, action: v1.Action, obj: v1.RiskDecision) -> Outcome:
    """Label the identity's pods and isolate them with an owned deny-all NetworkPolicy."""
    identity = identity_of(obj)
    name = str(obj.metadata["name"])
    namespace = identity.namespace
    # The policy first: a pod labelled before its policy exists would be labelled for nothing
    # if the process died in between; a policy selecting no pod yet is harmless.
    body = network_policy(obj, allow_dns=bool(action.allow_dns))
    ctx.kube.create_network_policy(namespace, body)
    changed = [f"{POLICY}{namespace}/{body['metadata']['name']}"]
    value = label_value(name)
    labelled = []
    for pod in ctx.inventory().pods_of(identity):
        if ctx.kube.patch_pod_labels(pod.namespace, pod.name, {QUARANTINE_LABEL: value}):
            changed.append(f"{LABELLED}{pod.namespace}/{pod.name} {QUARANTINE_LABEL}")
            labelled.append(pod.name)
    until = until_of(action, obj)
    return Outcome(
        v1.ActionPhase.SUCCEEDED,
        f"{len(labelled)} pod(s) of {identity} quarantined by NetworkPolicy "
        f"{body['metadata']['name']}" + (" (DNS allowed)" if action.allow_dns else ""),
        changed=tuple(changed),
        until=until,
    )


def release_quarantine(
    ctx: ActionContext, outcome: v1.ActionOutcome, obj: v1.RiskDecision
) -> Outcome:
    """Undo a quarantine: remove the labels it set and delete the NetworkPolicy it created."""
    undone = []
    value = label_value(str(obj.metadata["name"]))
    for line in outcome.changed:
        if line.startswith(LABELLED):
            where, _, label = line[len(LABELLED) :].partition(" ")
            namespace, _, pod = where.partition("/")
            # Only this decision's label: a later decision's quarantine of the pod stays.
            result = ctx.kube.remove_pod_label(
                namespace, pod, label or QUARANTINE_LABEL, value=value
            )
            undone.append(f"{LABELLED}{where}: label {result}")
        elif line.startswith(POLICY):
            namespace, _, policy = line[len(POLICY) :].partition("/")
            ctx.kube.delete_network_policy(namespace, policy)
            undone.append(f"{line}: deleted")
    return Outcome(
        v1.ActionPhase.RELEASED,
        f"quarantine of {identity_of(obj)} released",
        changed=tuple(undone),
    )
