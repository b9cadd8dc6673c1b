"""The labelled scenario corpus: audit-event sequences with the outcome each must produce.

Every scenario is a small cluster (nodes, pods, ServiceAccounts, RBAC, namespaces) and the audit
events its identities generate. Each begins with a day and a bit of ordinary traffic, so baselines
are warm when anything interesting happens, and includes benign neighbours doing their jobs. An
attack scenario names the identity attacked, the band it must reach under ``policy.yaml`` and the
signal that must be on top of its explanation when it gets there. Every other identity in every
scenario is benign and must stay at or below the lowest band.

Read a scenario as a story: ``traffic(...)`` is what a workload does all day; the lines after it
are what happened.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from builders import (
    APP_USER_AGENT,
    ATTACKER_IP,
    CREDENTIAL_ID,
    KUBECTL_USER_AGENT,
    NODE_CIDR,
    NODE_IP,
    OTHER_POD_IP,
    POD_CIDR,
    POD_IP,
    POD_UID,
    make_audit_event,
    make_node,
    make_pod,
    make_pod_spec_object,
    make_role,
    make_role_binding,
    make_rule,
    make_service_account,
    sa_subject,
)

JSON = dict[str, Any]
MINUTE = 60.0
HOUR = 3600.0
DAY = 24 * HOUR
WARM = 26 * HOUR
"""When the story starts: every identity has had a day of traffic (warm-up is 24 h, 50 requests)."""

CONTROLLER_UA = "manager/v0.18.2 (linux/amd64) kubernetes/$Format"
CI_UA = "argo/v3.5.5 (linux/amd64) kubernetes/ed1e3b1"
CURL_UA = "curl/8.5.0"
CI_RUNNER_IP = "198.51.100.10"
SECOND_SITE_IP = "192.0.2.77"


@dataclass(frozen=True, slots=True)
class Expect:
    identity: str
    band: str
    top_signal: str


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    story: str
    events: tuple[JSON, ...]
    objects: tuple[JSON, ...]
    attack: Expect | None = None
    pod_cidrs: tuple[str, ...] = (POD_CIDR,)
    node_cidrs: tuple[str, ...] = (NODE_CIDR,)
    known_issue: str = ""
    """Non-empty: the corpus has found a detector false positive not fixed yet (strict xfail)."""


# --- the workloads -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Workload:
    """A ServiceAccount with one pod, the operations it performs and the client it uses."""

    namespace: str
    name: str
    pod: str
    ip: str
    uid: str
    credential: str
    user_agent: str
    ops: tuple[tuple[str, str, str, str], ...]
    """(verb, api group, resource[/subresource], namespace or "" for cluster scope)."""
    node: str = "node-a"

    @property
    def sa(self) -> tuple[str, str]:
        return (self.namespace, self.name)

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    def event(self, verb: str, resource: str, *, at: float, group: str = "", **kw: Any) -> JSON:
        """One request of this workload's (unless overridden: IP, agent, token claims…)."""
        res, _, sub = resource.partition("/")
        kw.setdefault("source_ip", self.ip)
        kw.setdefault("user_agent", self.user_agent)
        kw.setdefault("pod_name", self.pod)
        kw.setdefault("pod_uid", self.uid)
        kw.setdefault("node_name", self.node)
        kw.setdefault("credential_id", self.credential)
        return make_audit_event(
            sa=self.sa, verb=verb, resource=res, subresource=sub, api_group=group, at=at, **kw
        )

    def objects(self, *, rules: Sequence[JSON] | None = None) -> list[JSON]:
        if rules is None:
            rules = [
                make_rule(sorted({v for v, g, _, _ in self.ops if g == grp}),
                          sorted({r for _, g, r, _ in self.ops if g == grp}), api_groups=[grp])
                for grp in sorted({g for _, g, _, _ in self.ops})
            ]  # fmt: skip
        pods = (
            [
                make_pod(
                    name=self.pod,
                    namespace=self.namespace,
                    sa=self.name,
                    ip=self.ip,
                    uid=self.uid,
                    node=self.node,
                    labels={"app": self.name},
                ),
            ]
            if self.pod
            else []
        )
        return [
            *pods,
            make_service_account(name=self.name, namespace=self.namespace),
            make_role(name=self.name, namespace=self.namespace, rules=rules),
            make_role_binding(name=self.name, namespace=self.namespace, role=self.name,
                              subjects=[sa_subject(self.name, self.namespace)]),
        ]  # fmt: skip


def traffic(
    w: Workload, *, start: float = 0.0, end: float = WARM, every: float = 5 * MINUTE
) -> list[JSON]:
    """What ``w`` does all day: its operations in turn, one request every ``every`` seconds."""
    events = []
    t, i = start, 0
    while t < end:
        verb, group, resource, ns = w.ops[i % len(w.ops)]
        events.append(
            w.event(
                verb, resource, at=t, group=group, namespace=ns or w.namespace if ns != "-" else ""
            )
        )
        t += every
        i += 1
    return events


WEB = Workload(
    namespace="shop", name="web", pod="web-1", ip=POD_IP, uid=POD_UID, credential=CREDENTIAL_ID,
    user_agent=APP_USER_AGENT,
    ops=(("get", "", "configmaps", ""), ("list", "", "endpoints", ""), ("watch", "", "configmaps", ""),
         ("get", "", "secrets", ""), ("create", "", "events", "")),
)  # fmt: skip
CONTROLLER = Workload(
    namespace="platform", name="rollout-controller", pod="rollout-controller-6d9f-x2x4", ip="10.244.1.40",
    uid="6f1c2b9e-0000-4000-8000-000000000040", credential="JTI=controller-40",
    user_agent=CONTROLLER_UA,
    ops=(("list", "", "pods", "-"), ("watch", "", "pods", "-"), ("list", "apps", "deployments", "-"),
         ("watch", "apps", "deployments", "-"), ("update", "apps", "deployments", "shop"),
         ("patch", "", "pods", "shop"), ("create", "", "events", "shop")),
)  # fmt: skip
CI = Workload(
    namespace="ci", name="deployer", pod="deployer-runner-1", ip="10.244.1.51",
    uid="6f1c2b9e-0000-4000-8000-000000000051", credential="JTI=ci-51",
    user_agent=CI_UA,
    ops=(("create", "batch", "jobs", ""), ("get", "batch", "jobs", ""), ("list", "", "pods", ""),
         ("get", "", "pods/log", ""), ("delete", "batch", "jobs", ""), ("patch", "apps", "deployments", "shop"),
         ("create", "", "configmaps", "")),
)  # fmt: skip


def namespace(name: str, **labels: str) -> JSON:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}}


def world(*workloads: Workload, extra: Iterable[JSON] = ()) -> tuple[JSON, ...]:
    objects: list[JSON] = [make_node(), namespace("shop"), namespace("platform"), namespace("ci"),
                           namespace("kube-system")]  # fmt: skip
    for w in workloads:
        objects.extend(w.objects())
    objects.extend(extra)
    return tuple(objects)


def background(*, end: float) -> list[JSON]:
    """The benign neighbours present in every scenario, busy from the start to ``end``."""
    return [
        *traffic(CONTROLLER, end=end, every=2 * MINUTE),
        *traffic(CI, end=end, every=7 * MINUTE),
    ]


def scenario(name: str, story: str, *events: Iterable[JSON], attack: Expect | None = None,
             workloads: Sequence[Workload] = (WEB,), extra: Iterable[JSON] = (),
             end: float = WARM + 2 * HOUR, known_issue: str = "") -> Scenario:  # fmt: skip
    everything = [e for group in events for e in group] + background(end=end)
    everything.sort(key=lambda e: e["requestReceivedTimestamp"])
    return Scenario(
        name=name,
        story=story,
        events=tuple(everything),
        objects=world(*{w.key: w for w in (*workloads, CONTROLLER, CI)}.values(), extra=extra),
        attack=attack,
        known_issue=known_issue,
    )


def burst(make: Any, *, at: float, n: int, every: float = 20.0) -> list[JSON]:
    return [make(at + i * every) for i in range(n)]


# --- benign ------------------------------------------------------------------------------------


def _restart(w: Workload, *, pod: str, ip: str, uid: str, credential: str) -> Workload:
    return Workload(namespace=w.namespace, name=w.name, pod=pod, ip=ip, uid=uid,
                    credential=credential, user_agent=w.user_agent, ops=w.ops, node=w.node)  # fmt: skip


WEB_2 = _restart(WEB, pod="web-2", ip="10.244.1.18", uid="uid-web-2", credential="JTI=web-2")
WEB_3 = _restart(WEB, pod="web-3", ip="10.244.1.19", uid="uid-web-3", credential="JTI=web-3")

DEPLOYS_AND_RESTARTS = scenario(
    "benign-deploys-and-restarts",
    "A normal day and a half: the app reads its config, the rollout controller lists and watches "
    "what it owns and rolls a deployment, CI runs jobs; the app's pod is restarted twice (new pod "
    "name, new IP, new token each time) and keeps doing the same things.",
    traffic(WEB, end=WARM),
    traffic(WEB_2, start=WARM, end=WARM + HOUR),
    traffic(WEB_3, start=WARM + HOUR, end=WARM + 2 * HOUR),
    workloads=(WEB, WEB_2, WEB_3),
)

QUIET_AND_BUSY_HOURS = scenario(
    "benign-busy-hour",
    "Traffic doubles during a sale: the app makes the same requests, more often, from its own pod.",
    traffic(WEB, end=WARM, every=2 * MINUTE),
    traffic(WEB, start=WARM, end=WARM + HOUR, every=30.0),
)

_GITOPS = Workload(
    namespace="platform", name="argocd-application-controller", pod="argocd-application-controller-0",
    ip="10.244.1.80", uid="uid-argocd-0", credential="JTI=argocd-0",
    user_agent="argocd-application-controller/v2.13.1 (linux/amd64) kubernetes/abc",
    ops=(("get", "apps", "deployments", "shop"), ("patch", "apps", "deployments", "shop"),
         ("get", "rbac.authorization.k8s.io", "rolebindings", "shop"),
         ("patch", "rbac.authorization.k8s.io", "rolebindings", "shop"),
         ("patch", "rbac.authorization.k8s.io", "roles", "shop"), ("list", "", "configmaps", "-"),
         ("watch", "", "configmaps", "-")),
)  # fmt: skip

GITOPS_SYNC = scenario(
    "benign-gitops-sync",
    "Argo CD's application controller syncs the shop namespace all day and the day after: it "
    "patches deployments, Roles and RoleBindings, because that is its job.",
    traffic(WEB, end=WARM + 2 * HOUR),
    traffic(_GITOPS, end=WARM + 2 * HOUR, every=3 * MINUTE),
    workloads=(WEB, _GITOPS),
)

_SECRETS_CONTROLLER = Workload(
    namespace="platform", name="external-secrets", pod="external-secrets-5c7d9-abcde",
    ip="10.244.1.90", uid="uid-external-secrets", credential="JTI=external-secrets",
    user_agent="external-secrets/v0.10.4 (linux/amd64) kubernetes/def",
    ops=(("list", "", "secrets", "-"), ("watch", "", "secrets", "-"), ("update", "", "secrets", "shop"),
         ("create", "", "events", "shop"), ("list", "external-secrets.io", "externalsecrets", "-")),
)  # fmt: skip

SECRETS_CONTROLLER = scenario(
    "benign-secrets-controller",
    "The External Secrets operator lists and watches secrets cluster-wide and writes the ones it "
    "manages, from the first minute the risk operator watches it.",
    traffic(WEB, end=WARM + 2 * HOUR),
    traffic(_SECRETS_CONTROLLER, end=WARM + 2 * HOUR, every=4 * MINUTE),
    workloads=(WEB, _SECRETS_CONTROLLER),
)

# --- attacks -----------------------------------------------------------------------------------

TOKEN_REPLAY = scenario(
    "token-replay",
    "web's bound token is exfiltrated and replayed from another pod in the cluster, making the "
    "requests the app normally makes (so nothing but the address gives it away).",
    traffic(WEB, end=WARM + 2 * HOUR),
    burst(
        lambda t: WEB.event("get", "configmaps", at=t, source_ip=OTHER_POD_IP),
        at=WARM + 30 * MINUTE,
        n=10,
    ),
    attack=Expect("shop/web", "medium", "TokenReplay"),
)

STOLEN_TOKEN_FROM_OUTSIDE = scenario(
    "token-replay-from-outside",
    "web's token is replayed from the internet with curl, minutes after the pod used it: every "
    "detector that can see it does.",
    traffic(WEB, end=WARM + 2 * HOUR),
    burst(
        lambda t: WEB.event("get", "configmaps", at=t, source_ip=ATTACKER_IP, user_agent=CURL_UA),
        at=WARM + 30 * MINUTE + 20,
        n=5,
    ),
    attack=Expect("shop/web", "high", "TokenReplay"),
)

_UNBOUND_CI = Workload(
    namespace="ci", name="release-bot", pod="", ip=CI_RUNNER_IP, uid="", credential="JTI=release-bot-minted",
    user_agent="release-bot/2.1 (linux/amd64)",
    ops=(("get", "apps", "deployments", "shop"), ("patch", "apps", "deployments", "shop"),
         ("list", "", "pods", "shop")),
)  # fmt: skip


def _unbound(
    w: Workload, verb: str, resource: str, *, at: float, group: str = "", **kw: Any
) -> JSON:
    """A request with a token minted by TokenRequest without a pod (``kubectl create token``)."""
    event = w.event(verb, resource, at=at, group=group, **kw)
    extra = event["user"]["extra"]
    for claim in ("pod-name", "pod-uid", "node-name"):
        extra.pop(f"authentication.kubernetes.io/{claim}", None)
    return event


def _release_bot_day(end: float) -> list[JSON]:
    out, t, i = [], 0.0, 0
    while t < end:
        verb, group, resource, ns = _UNBOUND_CI.ops[i % 3]
        out.append(_unbound(_UNBOUND_CI, verb, resource, at=t, group=group, namespace=ns))
        t, i = t + 10 * MINUTE, i + 1
    return out


IMPOSSIBLE_TRAVEL = scenario(
    "impossible-travel",
    "The release bot's minted token (no pod binding) is used from its CI runner's network and, "
    "two minutes later, from a different network.",
    _release_bot_day(WARM + 2 * HOUR),
    [
        _unbound(
            _UNBOUND_CI,
            "get",
            "deployments",
            at=WARM + 32 * MINUTE,
            group="apps",
            namespace="shop",
            source_ip=SECOND_SITE_IP,
        )
    ],
    attack=Expect("ci/release-bot", "medium", "ImpossibleTravel"),
    workloads=(WEB, _UNBOUND_CI),
    extra=[],
)

_LEGACY = Workload(
    namespace="shop", name="reporting", pod="reporting-0", ip="10.244.1.60", uid="uid-reporting-0",
    credential="", user_agent="reporting/0.9", ops=(("get", "", "configmaps", ""), ("list", "", "services", "")),
)  # fmt: skip


def _legacy_token(verb: str, resource: str, *, at: float, **kw: Any) -> JSON:
    """A request with a legacy long-lived token Secret: no bound-token claims at all."""
    return make_audit_event(sa=_LEGACY.sa, verb=verb, resource=resource, at=at, bound=False,
                            user_agent=_LEGACY.user_agent, **kw)  # fmt: skip


ANOMALOUS_LOCATION = scenario(
    "anomalous-location",
    "The reporting job's legacy token Secret leaks; someone uses it from outside the cluster with "
    "the job's own client string.",
    [_legacy_token(("get", "list")[i % 2], ("configmaps", "services")[i % 2], at=i * 10 * MINUTE,
                   source_ip=_LEGACY.ip) for i in range(int((WARM + 2 * HOUR) / (10 * MINUTE)))],
    [_legacy_token("list", "services", at=WARM + 40 * MINUTE, source_ip=ATTACKER_IP)],
    attack=Expect("shop/reporting", "low", "AnomalousLocation"),
    workloads=(WEB, _LEGACY),
)  # fmt: skip

HUMAN_USE = scenario(
    "human-use",
    "Someone execs into the web pod and drives its ServiceAccount with kubectl, from the pod's own "
    "address, reading only what the app may read.",
    traffic(WEB, end=WARM + 2 * HOUR),
    burst(
        lambda t: WEB.event("get", "configmaps", at=t, user_agent=KUBECTL_USER_AGENT),
        at=WARM + 20 * MINUTE,
        n=4,
    ),
    attack=Expect("shop/web", "low", "HumanUse"),
)

PRIVILEGE_ESCALATION = scenario(
    "privilege-escalation",
    "The CI deployer's token is abused to bind cluster-admin, start a privileged hostPath pod and "
    "exec into another pod.",
    traffic(WEB, end=WARM + 2 * HOUR),
    [
        CI.event("create", "clusterrolebindings", at=WARM + 10 * MINUTE, group="rbac.authorization.k8s.io",
                 namespace="", name="ci-admin"),
        CI.event("create", "pods", at=WARM + 11 * MINUTE,
                 request_object=make_pod_spec_object(privileged=True, host_path="/")),
        CI.event("create", "pods/exec", at=WARM + 12 * MINUTE, namespace="shop", name="web-1"),
    ],
    attack=Expect("ci/deployer", "high", "PrivilegeEscalation"),
)  # fmt: skip

CREDENTIAL_ACCESS = scenario(
    "credential-access",
    "web starts listing secrets: cluster-wide, then in kube-system and platform.",
    traffic(WEB, end=WARM + 2 * HOUR),
    [
        WEB.event("list", "secrets", at=WARM + 15 * MINUTE, namespace=""),
        WEB.event("list", "secrets", at=WARM + 16 * MINUTE, namespace="kube-system"),
        WEB.event("list", "secrets", at=WARM + 17 * MINUTE, namespace="platform"),
    ],
    attack=Expect("shop/web", "medium", "CredentialAccess"),
)

RECONNAISSANCE = scenario(
    "reconnaissance",
    "web asks what it may do, then probes: a burst of forbidden requests for things it never uses.",
    traffic(WEB, end=WARM + 2 * HOUR),
    [WEB.event("create", "selfsubjectrulesreviews", at=WARM + 10 * MINUTE,
               group="authorization.k8s.io", namespace="")],
    [WEB.event(verb, res, at=WARM + 11 * MINUTE + i * 5, decision="forbid", namespace=ns)
     for i, (verb, res, ns) in enumerate([("list", "nodes", ""), ("list", "namespaces", ""),
                                          ("get", "services", "platform"), ("list", "pods", "platform"),
                                          ("list", "deployments", "platform"), ("get", "configmaps", "platform")])],
    attack=Expect("shop/web", "medium", "Reconnaissance"),
)  # fmt: skip

_DORMANT = Workload(
    namespace="shop", name="migration", pod="migration-1", ip="10.244.1.70", uid="uid-migration-1",
    credential="JTI=migration-1", user_agent="migrate/1.0",
    ops=(("get", "", "configmaps", ""), ("update", "", "configmaps", "")),
)  # fmt: skip

DORMANT_REACTIVATED = scenario(
    "dormant-reactivated",
    "A one-off migration identity, silent for 40 days, suddenly makes requests again.",
    traffic(WEB, end=41 * DAY + WARM),
    traffic(_DORMANT, end=WARM),
    traffic(_DORMANT, start=40 * DAY + WARM, end=40 * DAY + WARM + 10 * MINUTE),
    attack=Expect("shop/migration", "low", "DormantReactivated"),
    workloads=(WEB, _DORMANT),
    end=41 * DAY + WARM,
)

BASELINE_DEVIATION = scenario(
    "baseline-deviation",
    "web, which only ever read config, starts doing a string of ordinary things it never did: "
    "listing deployments, services, ingresses, jobs, creating configmaps and leases.",
    traffic(WEB, end=WARM + 2 * HOUR),
    [WEB.event(verb, res, at=WARM + 20 * MINUTE + i * 30, group=grp)
     for i, (verb, grp, res) in enumerate([("list", "apps", "deployments"), ("list", "", "services"),
                                           ("list", "networking.k8s.io", "ingresses"), ("list", "batch", "jobs"),
                                           ("create", "", "configmaps"), ("create", "coordination.k8s.io", "leases"),
                                           ("list", "", "persistentvolumeclaims")])],
    attack=Expect("shop/web", "low", "BaselineDeviation"),
)  # fmt: skip

SCENARIOS: tuple[Scenario, ...] = (
    DEPLOYS_AND_RESTARTS,
    QUIET_AND_BUSY_HOURS,
    GITOPS_SYNC,
    SECRETS_CONTROLLER,
    TOKEN_REPLAY,
    STOLEN_TOKEN_FROM_OUTSIDE,
    IMPOSSIBLE_TRAVEL,
    ANOMALOUS_LOCATION,
    HUMAN_USE,
    PRIVILEGE_ESCALATION,
    CREDENTIAL_ACCESS,
    RECONNAISSANCE,
    DORMANT_REACTIVATED,
    BASELINE_DEVIATION,
)

__all__ = ["NODE_IP", "SCENARIOS", "Expect", "Scenario"]
