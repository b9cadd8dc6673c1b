"""``identity-risk``: run the operator (``run``) or play the local demo (``demo``).

``run`` assembles the operator from its parts — the kopf watches, the webhook server (audit,
authorize, metrics, probes), the live engine, the executor and the signed decision log — and runs
until interrupted. ``demo`` needs nothing but this repository: see ``identity_risk.cli.demo``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

from prometheus_client import CollectorRegistry

from identity_risk import __version__
from identity_risk.domain import ActionType
from identity_risk.kube import Kube, KubeError, load_api_client
from identity_risk.metrics import Metrics
from identity_risk.policy import OperatorSelf
from identity_risk.record.chain import Signer
from identity_risk.record.log import DecisionLog
from identity_risk.runtime.follow import follow_audit_log
from identity_risk.runtime.leader import LEADER_LABEL, LeaderElector
from identity_risk.runtime.leader import identity as leader_identity
from identity_risk.runtime.live import LiveConfig, LiveOperator, utcnow
from identity_risk.runtime.store import InventoryStore
from identity_risk.webhook import ServerTLS, WebhookServer
from identity_risk.webhook.tls import ensure_serving_certificate

log = logging.getLogger("identity_risk")

SIGNING_KEY_FIELD = "ed25519.pem"


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    env = os.environ.get
    parser.add_argument("--kubeconfig", default=env("KUBECONFIG"), help="default: in-cluster")
    parser.add_argument(
        "--namespace",
        default=env("POD_NAMESPACE", "identity-risk"),
        help="the operator's own namespace (protected; holds the signing key)",
    )
    parser.add_argument(
        "--service-account",
        default=env("POD_SERVICE_ACCOUNT", "identity-risk-operator"),
        help="the operator's own ServiceAccount (never acted on)",
    )
    parser.add_argument("--listen", default="0.0.0.0:8443", help="HOST:PORT of the webhooks")
    parser.add_argument(
        "--tls-cert", type=Path, help="webhook serving cert (default: generated, see --tls-secret)"
    )
    parser.add_argument("--tls-key", type=Path, help="webhook serving key (with --tls-cert)")
    parser.add_argument(
        "--tls-secret",
        default="identity-risk-operator-tls",
        help="without --tls-cert: Secret (in --namespace) with the generated webhook CA, serving"
        " and apiserver client certificates; created on first start",
    )
    parser.add_argument(
        "--tls-name",
        action="append",
        default=[],
        help="DNS name of a generated serving cert (repeatable; default: the chart's Service)",
    )
    parser.add_argument(
        "--tls-ip",
        action="append",
        default=[],
        help="IP of a generated serving cert (repeatable; default: 127.0.0.1, for a NodePort)",
    )
    parser.add_argument(
        "--tls-dir",
        type=Path,
        default=Path("/tmp/identity-risk-tls"),
        help="where generated certificates are written for the server to load",
    )
    parser.add_argument(
        "--client-ca", type=Path, help="CA that signs the apiserver's webhook client certificate"
    )
    parser.add_argument(
        "--client-name",
        action="append",
        default=[],
        help="accepted client certificate CN (repeatable; default: any the CA signed)",
    )
    parser.add_argument(
        "--bearer-token-file", type=Path, help="accept this bearer token from the apiserver"
    )
    parser.add_argument("--audit-log", type=Path, help="also follow this audit log file")
    parser.add_argument(
        "--decision-log",
        type=Path,
        default=Path(env("DECISION_LOG", "/var/lib/identity-risk/decisions.jsonl")),
        help="the append-only signed decision log",
    )
    parser.add_argument(
        "--signing-key-secret",
        default="identity-risk-signing-key",
        help="Secret (in --namespace) holding the Ed25519 key; created if absent",
    )
    parser.add_argument("--pod-cidr", action="append", default=[], help="pod network (repeatable)")
    parser.add_argument(
        "--node-cidr", action="append", default=[], help="node network (repeatable)"
    )
    parser.add_argument(
        "--leader-elect",
        action="store_true",
        help="run several replicas: only the holder of the Lease identity-risk-operator (in"
        " --namespace) reads audit batches, ticks and acts; every replica serves /authorize and"
        " /mutate. Identity: POD_NAME (else hostname-pid)",
    )
    parser.add_argument(
        "--webhook-configuration",
        default="",
        help="with generated TLS: the MutatingWebhookConfiguration whose caBundle is set to the"
        " generated CA at startup (the chart's)",
    )
    parser.add_argument("--tick-seconds", type=float, default=15.0, help="decay re-evaluation")
    parser.add_argument("-v", "--verbose", action="store_true")


FAILPOINT_ENV = "IDENTITY_RISK_FAILPOINT"


def failpoint(spec: str) -> Callable[[ActionType], None] | None:
    """Test-only fault injection: ``kill-after:ACTION`` SIGKILLs the process right after that
    action's outcome is recorded, to prove a restart finishes the decision without repeating it."""
    if not spec:
        return None
    kind, _, action = spec.partition(":")
    if kind != "kill-after" or action not in {a.value for a in ActionType}:
        raise SystemExit(f"{FAILPOINT_ENV}={spec!r}: expected kill-after:<ActionType>")
    log.warning("failpoint armed: SIGKILL after %s", action)

    def kill(done: ActionType) -> None:
        if done.value == action:
            os.kill(os.getpid(), signal.SIGKILL)

    return kill


def signing_key(kube: Kube, *, namespace: str, name: str) -> Signer:
    """The decision-log key from its Secret, generated and stored on first start."""
    secret = kube.get_secret(namespace, name)
    pem = (secret.data or {}).get(SIGNING_KEY_FIELD) if secret is not None else None
    if not pem:
        generated = Signer.generate()
        kube.create_secret(
            namespace,
            name,
            {SIGNING_KEY_FIELD: base64.b64encode(generated.private_pem()).decode()},
        )
        secret = kube.get_secret(namespace, name)  # another replica may have won the race
        pem = (secret.data or {}).get(SIGNING_KEY_FIELD) if secret is not None else None
        if not pem:
            return generated
    return Signer.from_pem(base64.b64decode(pem))


def webhook_tls(kube: Kube, args: argparse.Namespace) -> tuple[Path, Path, Path | None]:
    """Serving cert, key and client CA: the given files, or generated ones kept in a Secret."""
    if (args.tls_cert is None) != (args.tls_key is None):
        raise RuntimeError("give both --tls-cert and --tls-key, or neither (to generate them)")
    if args.tls_cert is not None:
        return args.tls_cert, args.tls_key, args.client_ca
    service = "identity-risk-operator"
    files = ensure_serving_certificate(
        kube,
        namespace=args.namespace,
        secret=args.tls_secret,
        server_names=args.tls_name
        or [
            service,
            f"{service}.{args.namespace}",
            f"{service}.{args.namespace}.svc",
            f"{service}.{args.namespace}.svc.cluster.local",
        ],
        server_ips=args.tls_ip or ["127.0.0.1"],
        directory=args.tls_dir,
        now=utcnow(),
    )
    if files.created:
        log.warning(
            "generated the webhook CA and certificates into Secret %s/%s; the apiserver needs its"
            " ca.crt and apiserver-webhook-client.{crt,key} (docs/install.md)",
            args.namespace,
            args.tls_secret,
        )
    if args.webhook_configuration:
        outcome = kube.inject_webhook_ca(args.webhook_configuration, files.ca.read_bytes())
        if outcome == "missing":
            log.warning(
                "MutatingWebhookConfiguration %s not found: its caBundle was not set",
                args.webhook_configuration,
            )
        else:
            log.info(
                "MutatingWebhookConfiguration %s caBundle: %s", args.webhook_configuration, outcome
            )
    return files.cert, files.key, args.client_ca or files.ca


def pod_label(kube: Kube, namespace: str, leading: bool) -> None:
    """Label (or unlabel) this pod as the leader, for the leader-only audit Service."""
    pod = os.environ.get("POD_NAME", "")
    if not pod:
        return
    try:
        kube.patch_pod_labels(namespace, pod, {LEADER_LABEL: "true" if leading else None})
    except KubeError as exc:
        log.warning("could not %s the leader label: %s", "set" if leading else "remove", exc)


def run(args: argparse.Namespace) -> int:
    import kopf  # imported here so `kubectl risk` and `demo` stay light

    from identity_risk.enforce.clamps import TokenClamps
    from identity_risk.enforce.executor import Executor
    from identity_risk.runtime.handlers import build_registry

    host, _, port = args.listen.rpartition(":")
    api_client = load_api_client(kubeconfig=args.kubeconfig)
    kube = Kube(api_client)
    try:
        signer = signing_key(kube, namespace=args.namespace, name=args.signing_key_secret)
    except KubeError as exc:
        log.error("cannot read or create the signing key: %s", exc)
        return 1
    try:
        tls_cert, tls_key, client_ca = webhook_tls(kube, args)
    except (KubeError, RuntimeError) as exc:
        log.error("webhook certificates: %s", exc)
        return 1
    decision_log = DecisionLog(args.decision_log, signer)
    if decision_log.truncated_bytes:
        log.warning(
            "decision log: cut %d bytes of an unfinished entry left by a crash",
            decision_log.truncated_bytes,
        )
    metrics = Metrics(CollectorRegistry())
    store = InventoryStore(pod_cidrs=args.pod_cidr, node_cidrs=args.node_cidr)
    config = LiveConfig(
        operator=OperatorSelf(namespace=args.namespace, service_account=args.service_account),
    )
    live: LiveOperator
    clamps = TokenClamps()

    def executor_factory(book: object) -> Executor:
        return Executor(
            after_action=failpoint(os.environ.get(FAILPOINT_ENV, "")),
            kube=kube,
            decision_log=decision_log,
            book=book,  # type: ignore[arg-type]
            clock=utcnow,
            policies=lambda name: live.policy(name),
            inventory=lambda: live.source.inventory(),
            baseline=lambda identity: live.baseline(identity),
            clamps=clamps,
            on_outcome=lambda t, p: metrics.actions.labels(type=t.value, outcome=p.value).inc(),
        )

    live = LiveOperator(
        kube=kube,
        store=store,
        executor_factory=executor_factory,
        metrics=metrics,
        config=config,
        clamps=clamps,
        leading=not args.leader_elect,
    )
    try:
        # ServiceAccounts and Namespaces first, so the store knows which identities exist
        # before the watches catch up (restored state of a live identity is never pruned).
        for obj in kube.list_core("ServiceAccount") + kube.list_core("Namespace"):
            store.upsert(obj)
        store.synced.set()
        for wir in kube.list_custom("WorkloadIdentityRisk"):
            live.restore(wir)
        for decision in kube.list_custom("RiskDecision"):
            live.observe_decision(decision)
        if not args.leader_elect:
            live.executor.resume()  # with leader election, the leader resumes on taking over
    except KubeError as exc:
        hint = ""
        if exc.status == 404:
            hint = " (are the CRDs installed? kubectl apply -f crds/)"
        log.error("cannot read the operator's records: %s%s", exc, hint)
        return 1

    kopf_ready = threading.Event()
    stop = threading.Event()
    tokens: frozenset[str] = frozenset()
    if args.bearer_token_file:
        tokens = frozenset({args.bearer_token_file.read_text().strip()})
    server = WebhookServer(
        host=host or "0.0.0.0",
        port=int(port),
        tls=ServerTLS(
            cert_file=tls_cert,
            key_file=tls_key,
            client_ca_file=client_ca,
            client_names=frozenset(args.client_name),
        ),
        bearer_tokens=tokens,
        on_audit=live.on_audit,
        authorizer=live.authorize,
        mutator=live.mutate,
        ready=kopf_ready.is_set,
        metrics=metrics,
    )
    server.start()
    live.start()
    elector: LeaderElector | None = None
    if args.leader_elect:
        pod_label(kube, args.namespace, False)  # a restarted container is not the leader yet

        def started() -> None:
            live.start_leading()
            pod_label(kube, args.namespace, True)

        def stopped() -> None:
            live.stop_leading()
            pod_label(kube, args.namespace, False)

        elector = LeaderElector(
            kube=kube,
            namespace=args.namespace,
            me=leader_identity(),
            on_started_leading=started,
            on_stopped_leading=stopped,
        )
        elector.start()
    log.info(
        "identity-risk %s: webhooks on https://%s:%s (audit, authorize, metrics, healthz)",
        __version__,
        host or "0.0.0.0",
        server.port,
    )
    if args.audit_log:
        threading.Thread(
            target=follow_audit_log,
            kwargs={"path": args.audit_log, "live": live, "stop": stop, "metrics": metrics},
            name="identity-risk-audit-log",
            daemon=True,
        ).start()

    registry = build_registry(live, api_client)
    try:
        # kopf handles SIGTERM and SIGINT itself. No stop_flag of ours: a threading.Event one
        # would leave a waiter thread behind that asyncio.run() joins forever at shutdown.
        asyncio.run(
            kopf.operator(
                registry=registry,
                clusterwide=True,
                standalone=True,
                ready_flag=kopf_ready,
            )
        )
    finally:
        stop.set()
        if elector is not None:
            elector.stop()
        server.stop()
        live.stop()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="identity-risk", description="Workload-identity risk that acts."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    run_parser = sub.add_parser("run", help="run the operator")
    add_run_arguments(run_parser)
    demo_parser = sub.add_parser(
        "demo", help="local control plane + operator + a stolen-token scenario"
    )
    demo_parser.add_argument("--keep", action="store_true", help="leave the cluster running")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if getattr(args, "verbose", False) else logging.INFO,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
    )
    if not getattr(args, "verbose", False):
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)  # one line per watch event
    if args.command == "run":
        return run(args)
    from identity_risk.cli.demo import demo

    return demo(keep=args.keep)


if __name__ == "__main__":
    sys.exit(main())
