"""A real Kubernetes control plane on loopback, for integration tests and the demo.

A mock API server is not Kubernetes, so the tests run against the real thing: etcd,
kube-apiserver, kube-controller-manager, kube-scheduler and kwok (fake Nodes that make Deployments
produce Running pods), built from Go modules by ``hack/controlplane/build.sh``. The apiserver is
wired to the operator with the files in ``config/apiserver/`` -- the same files ``kind-config.yaml``
mounts -- rendered by replacing only their kind paths and the operator's URL.

Every pod IP is a loopback address (each fake Node gets a ``127.0.N.0/24`` pod CIDR), so a test can
act *as* a pod by binding its client socket to the pod's IP, and the apiserver's audit
``sourceIPs`` tell the truth.

This module is test and demo tooling, not part of the operator's pure core: it starts processes,
opens sockets and writes files. ``hack/cluster`` is its command line.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import datetime
import http.client
import ipaddress
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from identity_risk.webhook.tls import cert_pem, key_pem, new_ca
from identity_risk.webhook.tls import issue as issue_certificate

RELEASE = "v1.36.3"
REPO_ROOT = Path(__file__).resolve().parents[3]
CONFIG_DIR = REPO_ROOT / "config" / "apiserver"
DEFAULT_BIN_DIR = REPO_ROOT / ".cache" / "controlplane" / RELEASE / "bin"
KWOK_STAGES = "kwok-stages.yaml"  # written next to bin/ by hack/controlplane/build.sh
# Where `hack/cluster up` records its state file, for `down`/`status` from another process.
CLI_STATE_POINTER = Path(
    os.environ.get(
        "IDENTITY_RISK_CLUSTER_STATE", REPO_ROOT / ".cache" / "controlplane" / "cluster.json"
    )
)

# The strings in config/apiserver/ that differ between a kind node and this launcher.
KIND_CONFIG_DIR = "/etc/kubernetes/identity-risk/"
KIND_PKI_DIR = "/etc/kubernetes/identity-risk-pki/"
KIND_WEBHOOK_BASE = "https://127.0.0.1:30443"
KIND_AUDIT_WEBHOOK_BASE = "https://127.0.0.1:30444"
"""The audit webhook's NodePort: the chart's leader-only Service (only the leader reads batches)."""
TEMPLATES = (
    "audit-policy.yaml",
    "audit-webhook.kubeconfig",
    "authorization-config.yaml",
    "authorization-webhook.kubeconfig",
    "admission-config.yaml",
    "admission-webhook.kubeconfig",
)

SERVICE_CIDR = "10.0.0.0/24"
SA_ISSUER = "https://kubernetes.default.svc.cluster.local"
FAKE_NODE_ANNOTATION = ("kwok.x-k8s.io/node", "fake")
PR_SET_PDEATHSIG = 1
BINARIES = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok")


class ControlPlaneError(RuntimeError):
    """A component did not start or become ready; the message carries the tail of its log."""


# --------------------------------------------------------------------------------------------
# PKI


@dataclass(frozen=True)
class CertPair:
    cert: Path
    key: Path


@dataclass(frozen=True)
class Pki:
    """Every credential the control plane and its webhooks use, as files in one directory."""

    dir: Path
    ca: CertPair
    apiserver: CertPair
    admin: CertPair
    controller_manager: CertPair
    scheduler: CertPair
    service_account: CertPair  # cert is the public key PEM, key the signing key
    webhook_server: CertPair  # for a receiver on 127.0.0.1/localhost (tests, the local operator)
    webhook_client: CertPair  # what the apiserver presents to the operator's webhooks

    @classmethod
    def generate(cls, directory: Path, *, extra_webhook_names: Sequence[str] = ()) -> Pki:
        """Create a CA and issue every certificate from it (ECDSA P-256, valid for a week)."""
        directory.mkdir(parents=True, exist_ok=True)
        now = datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=5)
        week = datetime.timedelta(days=7)
        authority = new_ca("identity-risk-test-ca", not_before=now, validity=week)
        ca = _write_pair(directory, "ca", authority.cert, authority.key)

        def issue(
            name: str,
            cn: str,
            *,
            orgs: Sequence[str] = (),
            server_names: Sequence[str] = (),
            server_ips: Sequence[str] = (),
        ) -> CertPair:
            cert, key = issue_certificate(
                authority,
                cn,
                not_before=now,
                validity=week,
                orgs=orgs,
                server_names=server_names,
                server_ips=server_ips,
            )
            return _write_pair(directory, name, cert, key)

        service_ip = str(next(ipaddress.ip_network(SERVICE_CIDR).hosts()))
        sa_key = ec.generate_private_key(ec.SECP256R1())
        sa = CertPair(cert=directory / "service-account.pub", key=directory / "service-account.key")
        sa.key.write_bytes(key_pem(sa_key))
        sa.cert.write_bytes(
            sa_key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
        return cls(
            dir=directory,
            ca=ca,
            apiserver=issue(
                "apiserver",
                "kube-apiserver",
                server_names=[
                    "localhost",
                    "kubernetes",
                    "kubernetes.default",
                    "kubernetes.default.svc",
                    "kubernetes.default.svc.cluster.local",
                ],
                server_ips=["127.0.0.1", service_ip],
            ),
            admin=issue("admin", "identity-risk-admin", orgs=["system:masters"]),
            controller_manager=issue("controller-manager", "system:kube-controller-manager"),
            scheduler=issue("scheduler", "system:kube-scheduler"),
            service_account=sa,
            webhook_server=issue(
                "webhook-server",
                "identity-risk-operator",
                server_names=["localhost", *extra_webhook_names],
                server_ips=["127.0.0.1"],
            ),
            webhook_client=issue("apiserver-webhook-client", "kube-apiserver-webhook-client"),
        )

    def server_context(self) -> ssl.SSLContext:
        """TLS for a webhook receiver: serve webhook_server, require the apiserver's client cert."""
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(self.ca.cert))
        ctx.load_cert_chain(str(self.webhook_server.cert), str(self.webhook_server.key))
        ctx.verify_mode = ssl.CERT_REQUIRED
        return ctx

    def client_context(self, pair: CertPair | None = None) -> ssl.SSLContext:
        """TLS for talking to the apiserver, optionally with a client certificate."""
        ctx = ssl.create_default_context(cafile=str(self.ca.cert))
        if pair is not None:
            ctx.load_cert_chain(str(pair.cert), str(pair.key))
        return ctx


def _write_pair(
    directory: Path, name: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey
) -> CertPair:
    pair = CertPair(cert=directory / f"{name}.crt", key=directory / f"{name}.key")
    pair.cert.write_bytes(cert_pem(cert))
    pair.key.write_bytes(key_pem(key))
    pair.key.chmod(0o600)
    return pair


# --------------------------------------------------------------------------------------------
# Configuration


def render_apiserver_config(
    *, target: Path, pki_dir: Path, webhook_base_url: str, source: Path = CONFIG_DIR
) -> dict[str, Path]:
    """Write config/apiserver/ into ``target`` with kind's paths and URL replaced by ours."""
    target.mkdir(parents=True, exist_ok=True)
    rendered: dict[str, Path] = {}
    for name in TEMPLATES:
        text = (source / name).read_text()
        text = text.replace(KIND_PKI_DIR, f"{pki_dir}/")
        text = text.replace(KIND_CONFIG_DIR, f"{target}/")
        text = text.replace(KIND_WEBHOOK_BASE, webhook_base_url.rstrip("/"))
        text = text.replace(KIND_AUDIT_WEBHOOK_BASE, webhook_base_url.rstrip("/"))
        # a bare host:port: an admission kubeconfig's user is named after the webhook's host
        text = text.replace(
            KIND_WEBHOOK_BASE.removeprefix("https://"), urlsplit(webhook_base_url).netloc
        )
        (target / name).write_text(text)
        rendered[name] = target / name
    return rendered


def write_kubeconfig(path: Path, *, server: str, ca: Path, client: CertPair, user: str) -> Path:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "identity-risk",
                "cluster": {"server": server, "certificate-authority": str(ca)},
            }
        ],
        "users": [
            {
                "name": user,
                "user": {"client-certificate": str(client.cert), "client-key": str(client.key)},
            }
        ],
        "contexts": [
            {"name": "identity-risk", "context": {"cluster": "identity-risk", "user": user}}
        ],
        "current-context": "identity-risk",
    }
    path.write_text(json.dumps(config, indent=2))  # JSON is YAML; kubectl reads either
    return path


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


# --------------------------------------------------------------------------------------------
# State


@dataclass
class ClusterState:
    """What ``down`` needs from another process: the PIDs started, and the one directory used."""

    root: str
    kubeconfig: str
    apiserver_url: str
    etcd_url: str
    webhook_base_url: str
    ca_file: str
    pids: dict[str, int] = field(default_factory=dict)
    binaries: dict[str, str] = field(default_factory=dict)
    nodes: list[str] = field(default_factory=list)
    ready_after: dict[str, float] = field(default_factory=dict)  # seconds since start, per check

    @property
    def state_file(self) -> Path:
        return Path(self.root) / "state.json"

    def save(self) -> None:
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2))
        tmp.replace(self.state_file)

    @classmethod
    def load(cls, path: Path) -> ClusterState:
        data: dict[str, Any] = json.loads(path.read_text())
        return cls(**data)


# --------------------------------------------------------------------------------------------
# The control plane


class ControlPlane:
    """Starts and stops one control plane in one temporary directory.

    The PKI exists as soon as the object does, so a caller can start its webhook receivers with
    ``pki.webhook_server`` before calling ``start()``: the apiserver's webhook URLs are fixed at
    its start. Without a ``webhook_base_url`` the webhooks point at a port where nothing listens,
    which the cluster must (and does) survive: authorization falls through to RBAC, audit events
    are buffered and retried.
    """

    def __init__(
        self,
        *,
        bin_dir: Path = DEFAULT_BIN_DIR,
        webhook_base_url: str | None = None,
        webhook_ca_file: Path | None = None,
        nodes: int = 2,
        root: Path | None = None,
        extra_apiserver_args: Sequence[str] = (),
        die_with_parent: bool = False,
    ) -> None:
        self.bin_dir = bin_dir
        self.root = root or Path(tempfile.mkdtemp(prefix="identity-risk-cp-"))
        self.pki = Pki.generate(self.root / "pki")
        self.webhook_base_url = webhook_base_url or f"https://127.0.0.1:{free_port()}"
        self.webhook_ca_file = webhook_ca_file
        self.node_count = nodes
        self.extra_apiserver_args = tuple(extra_apiserver_args)
        # For test sessions: if pytest is killed, the kernel stops the components too.
        self.die_with_parent = die_with_parent
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        self._logs: dict[str, BinaryIO] = {}
        self.state: ClusterState | None = None

    # -- public ------------------------------------------------------------------------------

    def start(self, *, timeout: float = 90.0) -> ClusterState:
        """Start every component and wait until each is ready; on failure stop all and raise."""
        missing = [b for b in BINARIES if not (self.bin_dir / b).exists()]
        if missing:
            raise ControlPlaneError(
                f"missing binaries {missing} in {self.bin_dir}; run hack/controlplane/build.sh"
            )
        try:
            self._start(deadline=time.monotonic() + timeout)
        except BaseException:
            self.stop()
            raise
        assert self.state is not None
        return self.state

    def stop(self) -> None:
        """Stop exactly the processes this object started, then remove its directory."""
        for name in reversed(list(self._procs)):
            proc = self._procs[name]
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=10)
        for log in self._logs.values():
            log.close()
        self._procs.clear()
        self._logs.clear()
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> ClusterState:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- internals ---------------------------------------------------------------------------

    def _start(self, *, deadline: float) -> None:
        self._started = time.monotonic()
        pki = self.pki
        (self.root / "logs").mkdir(exist_ok=True)
        pki_dir = self.root / "webhook-pki"
        pki_dir.mkdir(exist_ok=True)
        # The names the kubeconfig templates expect; the webhook CA is the operator's, if given.
        shutil.copy(self.webhook_ca_file or pki.ca.cert, pki_dir / "webhook-ca.crt")
        shutil.copy(pki.webhook_client.cert, pki_dir / "apiserver-webhook-client.crt")
        shutil.copy(pki.webhook_client.key, pki_dir / "apiserver-webhook-client.key")
        config = render_apiserver_config(
            target=self.root / "apiserver", pki_dir=pki_dir, webhook_base_url=self.webhook_base_url
        )

        etcd_port, etcd_peer, api_port = free_port(), free_port(), free_port()
        etcd_url = f"http://127.0.0.1:{etcd_port}"
        api_url = f"https://127.0.0.1:{api_port}"
        kubeconfig = write_kubeconfig(
            self.root / "kubeconfig",
            server=api_url,
            ca=pki.ca.cert,
            client=pki.admin,
            user="admin",
        )
        self.state = ClusterState(
            root=str(self.root),
            kubeconfig=str(kubeconfig),
            apiserver_url=api_url,
            etcd_url=etcd_url,
            webhook_base_url=self.webhook_base_url,
            ca_file=str(pki.ca.cert),
            binaries={b: str(self.bin_dir / b) for b in BINARIES},
        )

        self._spawn(
            "etcd",
            [
                "--name=default",
                f"--data-dir={self.root / 'etcd'}",
                f"--listen-client-urls={etcd_url}",
                f"--advertise-client-urls={etcd_url}",
                f"--listen-peer-urls=http://127.0.0.1:{etcd_peer}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{etcd_peer}",
                f"--initial-cluster=default=http://127.0.0.1:{etcd_peer}",
                "--unsafe-no-fsync",
                "--log-level=warn",
            ],
        )
        self._wait("etcd", deadline, lambda: _http_ok(f"{etcd_url}/health", None))

        self._spawn(
            "kube-apiserver",
            [
                f"--etcd-servers={etcd_url}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                # A loopback address is not a valid Endpoints IP: leave the kubernetes service alone.
                "--endpoint-reconciler-type=none",
                f"--secure-port={api_port}",
                f"--tls-cert-file={pki.apiserver.cert}",
                f"--tls-private-key-file={pki.apiserver.key}",
                f"--client-ca-file={pki.ca.cert}",
                # Published for delegated authentication (controller-manager, scheduler, an
                # aggregated API); no certificate with this name is ever issued here.
                f"--requestheader-client-ca-file={pki.ca.cert}",
                "--requestheader-allowed-names=front-proxy-client",
                "--requestheader-username-headers=X-Remote-User",
                "--requestheader-group-headers=X-Remote-Group",
                "--requestheader-extra-headers-prefix=X-Remote-Extra-",
                f"--service-account-issuer={SA_ISSUER}",
                f"--service-account-key-file={pki.service_account.cert}",
                f"--service-account-signing-key-file={pki.service_account.key}",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                f"--authorization-config={config['authorization-config.yaml']}",
                f"--audit-policy-file={config['audit-policy.yaml']}",
                f"--audit-webhook-config-file={config['audit-webhook.kubeconfig']}",
                "--audit-webhook-mode=batch",
                "--audit-webhook-batch-max-wait=1s",
                # the client certificate presented to the operator's /mutate
                f"--admission-control-config-file={config['admission-config.yaml']}",
                "--allow-privileged=true",
                "--profiling=false",
                "--v=1",
                *self.extra_apiserver_args,
            ],
        )
        admin_ctx = pki.client_context(pki.admin)
        self._wait("kube-apiserver", deadline, lambda: _http_ok(f"{api_url}/readyz", admin_ctx))

        def component_kubeconfig(name: str, pair: CertPair) -> Path:
            return write_kubeconfig(
                self.root / f"{name}.kubeconfig",
                server=api_url,
                ca=pki.ca.cert,
                client=pair,
                user=name,
            )

        kcm = component_kubeconfig("kube-controller-manager", pki.controller_manager)
        kcm_port = free_port()
        self._spawn(
            "kube-controller-manager",
            [
                f"--kubeconfig={kcm}",
                f"--authentication-kubeconfig={kcm}",
                f"--authorization-kubeconfig={kcm}",
                "--bind-address=127.0.0.1",
                f"--secure-port={kcm_port}",
                "--controllers=*",
                # Each controller acts as its own ServiceAccount with its bootstrap role.
                "--use-service-account-credentials=true",
                "--leader-elect=false",
                f"--root-ca-file={pki.ca.cert}",
                f"--service-account-private-key-file={pki.service_account.key}",
                f"--cluster-signing-cert-file={pki.ca.cert}",
                f"--cluster-signing-key-file={pki.ca.key}",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--cluster-name=identity-risk",
                "--profiling=false",
                "--v=1",
            ],
        )
        sched = component_kubeconfig("kube-scheduler", pki.scheduler)
        sched_port = free_port()
        self._spawn(
            "kube-scheduler",
            [
                f"--kubeconfig={sched}",
                f"--authentication-kubeconfig={sched}",
                f"--authorization-kubeconfig={sched}",
                "--bind-address=127.0.0.1",
                f"--secure-port={sched_port}",
                "--leader-elect=false",
                "--profiling=false",
                "--v=1",
            ],
        )
        nodes = self._create_nodes(api_url, admin_ctx)
        self._spawn(
            "kwok",
            [
                f"--kubeconfig={kubeconfig}",
                f"--config={self.bin_dir.parent / KWOK_STAGES}",
                "--manage-all-nodes=false",
                "--manage-nodes-with-annotation-selector=" + "=".join(FAKE_NODE_ANNOTATION),
                f"--server-address=127.0.0.1:{free_port()}",
                "--node-lease-duration-seconds=40",
            ],
        )
        insecure = ssl.create_default_context()
        insecure.check_hostname = False
        insecure.verify_mode = ssl.CERT_NONE  # the components serve self-signed /healthz
        self._wait(
            "kube-controller-manager",
            deadline,
            lambda: _http_ok(f"https://127.0.0.1:{kcm_port}/healthz", insecure),
        )
        self._wait(
            "kube-scheduler",
            deadline,
            lambda: _http_ok(f"https://127.0.0.1:{sched_port}/healthz", insecure),
        )
        self._wait(
            "kwok", deadline, lambda: _nodes_ready(api_url, admin_ctx, nodes), check="nodes Ready"
        )
        # Pods cannot be created before their namespace's ServiceAccount exists.
        self._wait(
            "kube-controller-manager",
            deadline,
            lambda: _http_ok(
                f"{api_url}/api/v1/namespaces/default/serviceaccounts/default", admin_ctx
            ),
            check="default ServiceAccount",
        )
        self.state.nodes = nodes
        self.state.save()

    def _spawn(self, name: str, args: Sequence[str]) -> None:
        log = (self.root / "logs" / f"{name}.log").open("ab")
        self._logs[name] = log
        # Its own session: a Ctrl-C in the terminal that ran `hack/cluster up` does not reach it.
        self._procs[name] = subprocess.Popen(
            [str(self.bin_dir / name), *args],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            cwd=self.root,
            preexec_fn=_die_with_parent if self.die_with_parent else None,
        )
        if self.state is not None:
            self.state.pids[name] = self._procs[name].pid
            self.state.save()

    def _wait(self, name: str, deadline: float, ready: Any, *, check: str = "") -> None:
        self._wait_until_ready(name, deadline, ready)
        if self.state is not None:
            self.state.ready_after[check or name] = round(time.monotonic() - self._started, 2)

    def _wait_until_ready(self, name: str, deadline: float, ready: Any) -> None:
        while True:
            proc = self._procs[name]
            if proc.poll() is not None:
                raise ControlPlaneError(
                    f"{name} exited with code {proc.returncode}:\n{self.log_tail(name)}"
                )
            try:
                if ready():
                    return
            except (OSError, http.client.HTTPException, ValueError):
                pass
            if time.monotonic() > deadline:
                raise ControlPlaneError(f"{name} not ready in time:\n{self.log_tail(name)}")
            time.sleep(0.2)

    def log_tail(self, name: str, lines: int = 40) -> str:
        path = self.root / "logs" / f"{name}.log"
        try:
            text = path.read_text(errors="replace").splitlines()
        except OSError:
            return "(no log)"
        return "\n".join(text[-lines:])

    def _create_nodes(self, api_url: str, ctx: ssl.SSLContext) -> list[str]:
        names = []
        for i in range(self.node_count):
            name = f"kwok-node-{i}"
            cidr = f"127.0.{i + 1}.0/24"
            node = {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {
                    "name": name,
                    "annotations": {
                        FAKE_NODE_ANNOTATION[0]: FAKE_NODE_ANNOTATION[1],
                        "node.alpha.kubernetes.io/ttl": "0",
                    },
                    "labels": {
                        "kubernetes.io/hostname": name,
                        "kubernetes.io/os": "linux",
                        "kubernetes.io/arch": "amd64",
                        "type": "kwok",
                    },
                },
                "spec": {"podCIDR": cidr, "podCIDRs": [cidr]},
            }
            status, _ = api_request(api_url, ctx, "POST", "/api/v1/nodes", node)
            if status not in (201, 409):
                raise ControlPlaneError(f"creating node {name}: HTTP {status}")
            # Its own loopback address, so node traffic and pod traffic are told apart. kwok keeps
            # an InternalIP that is already there.
            addresses = {
                "status": {
                    "addresses": [
                        {"type": "InternalIP", "address": f"127.0.{100 + i}.1"},
                        {"type": "Hostname", "address": name},
                    ],
                    "capacity": {"cpu": "32", "memory": "256Gi", "pods": "110"},
                    "allocatable": {"cpu": "32", "memory": "256Gi", "pods": "110"},
                }
            }
            status, body = api_request(
                api_url,
                ctx,
                "PATCH",
                f"/api/v1/nodes/{name}/status",
                addresses,
                content_type="application/merge-patch+json",
            )
            if status != 200:
                raise ControlPlaneError(f"setting node {name} status: HTTP {status} {body}")
            names.append(name)
        return names


def _die_with_parent() -> None:
    """In the child before exec: SIGKILL when the process that started it dies (Linux).

    Not SIGTERM: the components die together, and kube-apiserver without etcd never finishes
    its graceful shutdown.
    """
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def api_request(
    api_url: str,
    ctx: ssl.SSLContext,
    method: str,
    path: str,
    body: Mapping[str, Any] | None = None,
    *,
    content_type: str = "application/json",
    headers: Mapping[str, str] | None = None,
    source_ip: str | None = None,
    timeout: float = 10.0,
) -> tuple[int, dict[str, Any]]:
    """One JSON request to the apiserver; ``source_ip`` binds the client socket (act as a pod)."""
    url = api_url.removeprefix("https://")
    host, _, port = url.partition(":")
    conn = http.client.HTTPSConnection(
        host,
        int(port),
        context=ctx,
        timeout=timeout,
        source_address=(source_ip, 0) if source_ip else None,
    )
    try:
        hdrs = {"Accept": "application/json", **(headers or {})}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            hdrs["Content-Type"] = content_type
        conn.request(method, path, body=data, headers=hdrs)
        resp = conn.getresponse()
        raw = resp.read()
        try:
            parsed = json.loads(raw) if raw else {}
        except ValueError:
            parsed = {"raw": raw.decode(errors="replace")}
        return resp.status, parsed if isinstance(parsed, dict) else {"items": parsed}
    finally:
        conn.close()


def _http_ok(url: str, ctx: ssl.SSLContext | None) -> bool:
    scheme, _, rest = url.partition("://")
    hostport, _, path = rest.partition("/")
    host, _, port = hostport.partition(":")
    conn: http.client.HTTPConnection
    if scheme == "https":
        conn = http.client.HTTPSConnection(host, int(port), context=ctx, timeout=2)
    else:
        conn = http.client.HTTPConnection(host, int(port), timeout=2)
    try:
        conn.request("GET", "/" + path)
        return conn.getresponse().status == 200
    finally:
        conn.close()


def _nodes_ready(api_url: str, ctx: ssl.SSLContext, names: Sequence[str]) -> bool:
    for name in names:
        status, node = api_request(api_url, ctx, "GET", f"/api/v1/nodes/{name}")
        conditions = node.get("status", {}).get("conditions", []) if status == 200 else []
        if not any(c["type"] == "Ready" and c["status"] == "True" for c in conditions):
            return False
    return True


# --------------------------------------------------------------------------------------------
# Stopping from another process


def _pid_runs(pid: int, binary: str | None) -> bool:
    """True while ``pid`` is alive and is still the binary we started (not a reused PID)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    if stat.rsplit(")", 1)[-1].split()[0] == "Z":
        return False
    return binary is None or cmdline.split(b"\0", 1)[0] == binary.encode()


def stop_from_state(state: ClusterState, *, timeout: float = 15.0) -> None:
    """Stop the PIDs a state file lists (only if they still run our binaries); remove its dir."""
    for name in reversed(list(state.pids)):
        pid, binary = state.pids[name], state.binaries.get(name)
        if not _pid_runs(pid, binary):
            continue
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        end = time.monotonic() + timeout
        while _pid_runs(pid, binary) and time.monotonic() < end:
            time.sleep(0.1)
        if _pid_runs(pid, binary):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    shutil.rmtree(state.root, ignore_errors=True)


# --------------------------------------------------------------------------------------------
# Command line (hack/cluster)


@contextlib.contextmanager
def _timer() -> Iterator[list[float]]:
    elapsed = [0.0]
    start = time.monotonic()
    try:
        yield elapsed
    finally:
        elapsed[0] = time.monotonic() - start


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="hack/cluster", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start a control plane on loopback")
    up.add_argument("--bin-dir", type=Path, default=DEFAULT_BIN_DIR)
    up.add_argument("--webhook-url", help="operator base URL (…/audit, …/authorize appended)")
    up.add_argument("--webhook-ca", type=Path, help="CA of the operator's serving certificate")
    up.add_argument("--nodes", type=int, default=2)
    sub.add_parser("down", help="stop the control plane that `up` started")
    sub.add_parser("status", help="show the running control plane")
    pki = sub.add_parser("pki", help="write webhook credentials for kind-config.yaml")
    pki.add_argument("dir", type=Path)
    args = parser.parse_args(argv)

    if args.command == "up":
        if CLI_STATE_POINTER.exists():
            print(f"a control plane is already up ({CLI_STATE_POINTER}); run hack/cluster down")
            return 1
        plane = ControlPlane(
            bin_dir=args.bin_dir,
            webhook_base_url=args.webhook_url,
            webhook_ca_file=args.webhook_ca,
            nodes=args.nodes,
        )
        try:
            with _timer() as elapsed:
                state = plane.start()
        except ControlPlaneError as err:
            print(f"hack/cluster up failed: {err}", file=sys.stderr)
            return 1
        CLI_STATE_POINTER.parent.mkdir(parents=True, exist_ok=True)
        CLI_STATE_POINTER.write_text(json.dumps({"state": str(state.state_file)}))
        print(f"# control plane {RELEASE} ready in {elapsed[0]:.1f}s")
        _print_status(state)
        return 0
    if args.command == "pki":
        made = Pki.generate(
            args.dir,
            extra_webhook_names=[
                "identity-risk-operator",
                "identity-risk-operator.identity-risk.svc",
                "identity-risk-operator.identity-risk.svc.cluster.local",
            ],
        )
        shutil.copy(made.ca.cert, args.dir / "webhook-ca.crt")
        print(
            f"wrote {made.dir}: webhook-ca.crt, webhook-server.{{crt,key}}, "
            "apiserver-webhook-client.{crt,key} (client CA: ca.crt)"
        )
        return 0
    if not CLI_STATE_POINTER.exists():
        print("no control plane is up")
        return 0 if args.command == "down" else 1
    state_file = Path(json.loads(CLI_STATE_POINTER.read_text())["state"])
    if args.command == "status":
        _print_status(ClusterState.load(state_file))
        return 0
    if state_file.exists():
        stop_from_state(ClusterState.load(state_file))
    CLI_STATE_POINTER.unlink()
    print("control plane stopped")
    return 0


def _print_status(state: ClusterState) -> None:
    print(f"export KUBECONFIG={state.kubeconfig}")
    print(f"# apiserver   {state.apiserver_url}")
    print(f"# etcd        {state.etcd_url}")
    print(f"# webhooks    {state.webhook_base_url}/audit  {state.webhook_base_url}/authorize")
    print(f"# nodes       {', '.join(state.nodes)} (pod CIDRs 127.0.N.0/24)")
    print(f"# ready after {' '.join(f'{k}={v}s' for k, v in state.ready_after.items())}")
    print(f"# pids        {' '.join(f'{k}={v}' for k, v in state.pids.items())}")
    print(f"# state       {state.state_file}")


if __name__ == "__main__":
    sys.exit(main())
