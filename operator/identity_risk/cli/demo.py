"""``identity-risk demo``: the whole closed loop on a laptop, in about half a minute.

It starts a real control plane on loopback (``hack/cluster``'s launcher) whose audit and
authorization webhooks point at the operator, installs the CRDs and ``examples/policy-demo.yaml``
(Enforce mode), runs the operator, and plays the stolen-token story: a workload uses its pod-bound
token as usual, an attacker replays it from another address, and the demo prints score →
decision → action as the operator reports them, then shows the attacker refused and the pod
re-issued a working token. ``--keep`` leaves everything running until Ctrl-C so you can look
around with ``kubectl``.
"""

from __future__ import annotations

import base64
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from identity_risk.testing.controlplane import (
    DEFAULT_BIN_DIR,
    REPO_ROOT,
    ControlPlane,
    ControlPlaneError,
    free_port,
)
from identity_risk.testing.operator import OPERATOR_NAMESPACE, OperatorProcess
from identity_risk.testing.scenario import (
    ATTACKER_IP,
    Api,
    ScenarioError,
    apply_file,
    deploy_workload,
    install_crds,
    pod_token,
    read_configmaps,
    running_pod,
    wait_for,
)

NAMESPACE = "payments"
WORKLOAD = "checkout"


def say(text: str = "") -> None:
    print(text, flush=True)


def step(text: str) -> None:
    say(f"\n==> {text}")


def demo(*, keep: bool = False) -> int:
    started = time.monotonic()
    if not (DEFAULT_BIN_DIR / "kube-apiserver").exists():
        say("the control plane is not built yet: run `make demo` (or hack/controlplane/build.sh)")
        return 1
    port = free_port()
    plane = ControlPlane(webhook_base_url=f"https://127.0.0.1:{port}")
    work = Path(tempfile.mkdtemp(prefix="identity-risk-demo-"))
    operator: OperatorProcess | None = None
    try:
        step("starting a local Kubernetes control plane on loopback")
        t0 = time.monotonic()
        state = plane.start()
        say(f"    kube-apiserver {state.apiserver_url} ready in {time.monotonic() - t0:.1f}s")
        api = Api(url=state.apiserver_url, ca_file=plane.pki.ca.cert, admin=plane.pki.admin)

        step("installing the CRDs and the demo policy (examples/policy-demo.yaml, Enforce)")
        install_crds(api, REPO_ROOT / "crds")
        api.create(
            "/api/v1/namespaces",
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": OPERATOR_NAMESPACE}},
        )
        apply_file(api, REPO_ROOT / "examples" / "policy-demo.yaml")

        step("starting the operator (identity-risk run)")
        operator = OperatorProcess(
            state=state, pki=plane.pki, port=port, workdir=work, tick_seconds=15.0
        )
        operator.start()
        time.sleep(1)  # the watches list the policy
        say(f"    webhooks on https://127.0.0.1:{port}; log: {operator.logs[-1]}")

        step(
            f"deploying {NAMESPACE}/{WORKLOAD}: a Deployment whose ServiceAccount reads configmaps"
        )
        deploy_workload(api, namespace=NAMESPACE, name=WORKLOAD)
        pod = running_pod(api, namespace=NAMESPACE, app=WORKLOAD)
        pod_ip = pod["status"]["podIP"]
        say(f"    pod {pod['metadata']['name']} is Running at {pod_ip}")
        token = pod_token(api, pod)

        step(f"the workload uses its pod-bound token as usual, from its own address {pod_ip}")
        codes = [
            read_configmaps(api, namespace=NAMESPACE, token=token, source_ip=pod_ip)
            for _ in range(3)
        ]
        say(f"    GET configmaps -> {' '.join(map(str, codes))}")

        step(f"an attacker replays the same token from {ATTACKER_IP}")
        replayed = time.monotonic()
        code = read_configmaps(api, namespace=NAMESPACE, token=token, source_ip=ATTACKER_IP)
        say(f"    GET configmaps -> {code} (the first request gets through: nothing knew yet)")

        wir = wait_for(
            "the operator to score the identity",
            lambda: scored(api),
            timeout=30,
        )
        top = (wir["status"].get("signals") or [{}])[0]
        say(
            f"    score    {NAMESPACE}/{WORKLOAD}: {wir['status']['score']:g} "
            f"({wir['status']['confidence']} confidence), top signal {top.get('type')}: "
            f"{top.get('summary', '')}"
        )
        decision = wait_for("the decision to be carried out", lambda: finished(api), timeout=30)
        spec, status = decision["spec"], decision["status"]
        say(
            f"    decision {decision['metadata']['name']}: band {spec['band']} "
            f"[{spec['mode']}] -> {', '.join(a['type'] for a in spec['actions'])}"
        )
        for outcome in status["actions"]:
            say(f"    action   {outcome['type']}: {outcome['phase']} - {outcome['message']}")

        status_code, body = api.call(
            "GET", f"/api/v1/namespaces/{NAMESPACE}/configmaps", token=token, source_ip=ATTACKER_IP
        )
        step("the attacker tries again")
        say(
            f"    GET configmaps -> {status_code} after {time.monotonic() - replayed:.1f}s: "
            f"{body.get('message', '')}"
        )
        fresh = running_pod(api, namespace=NAMESPACE, app=WORKLOAD, exclude=pod["metadata"]["name"])
        fresh_token = pod_token(api, fresh)
        fresh_code = read_configmaps(
            api, namespace=NAMESPACE, token=fresh_token, source_ip=fresh["status"]["podIP"]
        )
        step("the Deployment re-created the evicted pod with a fresh token")
        say(f"    pod {fresh['metadata']['name']}: GET configmaps -> {fresh_code}")

        step("checking the chain of record (kubectl risk verify)")
        key = api.get(f"/api/v1/namespaces/{OPERATOR_NAMESPACE}/secrets/identity-risk-signing-key")
        say("    " + verify_log(operator.decision_log, key))

        say(f"\ndone in {time.monotonic() - started:.0f}s.")
        if keep:
            say("Look around (in another shell):")
            tools = f"{DEFAULT_BIN_DIR}:{Path(sys.executable).parent}"  # kubectl, kubectl-risk
            say(f"    export KUBECONFIG={state.kubeconfig} PATH={tools}:$PATH")
            say("    kubectl get identityrisk -A")
            say(f"    kubectl risk explain -n {NAMESPACE} {WORKLOAD}")
            say("    kubectl risk verify")
            say("\nthe cluster and the operator keep running; press Ctrl-C to stop them")
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
            signal.sigwait({signal.SIGINT, signal.SIGTERM})
        else:
            say("Run `identity-risk demo --keep` to keep the cluster up and look around.")
        step("stopping the operator and the control plane")
        return 0
    except (ControlPlaneError, ScenarioError) as exc:
        say(f"\ndemo failed: {exc}")
        if operator is not None and operator.logs:
            say(f"operator log: {operator.logs[-1]}")
        return 1
    finally:
        if operator is not None:
            operator.stop()
        plane.stop()


def scored(api: Api) -> dict[str, Any] | None:
    wir = api.get(
        f"/apis/identityrisk.dev/v1alpha1/namespaces/{NAMESPACE}/workloadidentityrisks/{WORKLOAD}"
    )
    if wir and (wir.get("status") or {}).get("score") is not None:
        return wir
    return None


def finished(api: Api) -> dict[str, Any] | None:
    items = (
        api.get(f"/apis/identityrisk.dev/v1alpha1/namespaces/{NAMESPACE}/riskdecisions") or {}
    ).get("items", [])
    done = [d for d in items if (d.get("status") or {}).get("phase") not in (None, "Executing")]
    return done[0] if done else None


def verify_log(path: Path, secret: dict[str, Any] | None) -> str:
    from identity_risk.cli.operator_main import SIGNING_KEY_FIELD
    from identity_risk.record.chain import Signer, verify
    from identity_risk.record.log import read_links

    if secret is None:
        return "signing key not found"
    signer = Signer.from_pem(base64.b64decode(secret["data"][SIGNING_KEY_FIELD]))
    return str(verify(read_links(path), signer.public_key))
