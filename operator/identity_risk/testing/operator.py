"""``identity-risk run`` as a child process wired to a loopback control plane.

The demo and the end-to-end tests both run the operator this way: as a real process (so a test
can SIGKILL it and start it again), serving the webhooks the control plane's apiserver calls, with
the control plane's PKI — the apiserver presents ``kube-apiserver-webhook-client``, the only
client name the operator accepts.
"""

from __future__ import annotations

import http.client
import os
import signal
import ssl
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from identity_risk.testing.controlplane import ClusterState, Pki
from identity_risk.testing.scenario import ScenarioError, wait_for

OPERATOR_NAMESPACE = "identity-risk"


@dataclass
class OperatorProcess:
    """``identity-risk run`` as a child process, restartable."""

    state: ClusterState
    pki: Pki
    port: int
    workdir: Path
    proc: subprocess.Popen[bytes] | None = None
    kubeconfig: Path | None = None  # None: the admin's; set to run as the chart's SA
    tick_seconds: float = 5.0
    extra_args: list[str] = field(default_factory=list)
    """More ``identity-risk run`` flags (``--leader-elect``, generated TLS, ...)."""
    env: dict[str, str] = field(default_factory=dict)
    generate_tls: bool = False
    """Serve certificates the operator generates (TLS mode generate) instead of the PKI's."""
    """Environment for every start (``POD_NAME``: the Lease holder identity)."""
    starts: int = 0
    logs: list[Path] = field(default_factory=list)

    @property
    def tls_dir(self) -> Path:
        return self.workdir / "tls"

    @property
    def decision_log(self) -> Path:
        return self.workdir / "decisions.jsonl"

    def start(self, *, env: Mapping[str, str] | None = None) -> None:
        self.starts += 1
        log_path = self.workdir / f"operator-{self.starts}.log"
        self.logs.append(log_path)
        command = [
            sys.executable,
            "-m",
            "identity_risk.cli.operator_main",
            "run",
            f"--kubeconfig={self.kubeconfig or self.state.kubeconfig}",
            f"--namespace={OPERATOR_NAMESPACE}",
            f"--listen=127.0.0.1:{self.port}",
            *(
                [f"--tls-dir={self.tls_dir}", "--tls-ip=127.0.0.1"]
                if self.generate_tls
                else [
                    f"--tls-cert={self.pki.webhook_server.cert}",
                    f"--tls-key={self.pki.webhook_server.key}",
                ]
            ),
            f"--client-ca={self.pki.ca.cert}",
            "--client-name=kube-apiserver-webhook-client",
            f"--decision-log={self.decision_log}",
            f"--tick-seconds={self.tick_seconds}",
            *self.extra_args,
        ]
        with log_path.open("wb") as out:
            self.proc = subprocess.Popen(
                command,
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1", **self.env, **(env or {})},
            )
        wait_for("the operator to be ready", self.ready, timeout=60)

    def ready(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise ScenarioError(
                f"the operator exited with {self.proc.returncode}:\n{self.log_tail()}"
            )
        cafile = self.tls_dir / "ca.crt" if self.generate_tls else self.pki.ca.cert
        try:
            ctx = ssl.create_default_context(cafile=str(cafile))
        except OSError:
            return False  # the generated CA is not written yet
        conn = http.client.HTTPSConnection("127.0.0.1", self.port, context=ctx, timeout=2)
        try:
            conn.request("GET", "/readyz")
            return conn.getresponse().status == 200
        except OSError:
            return False
        finally:
            conn.close()

    def wait_exit(self, timeout: float = 60) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout=timeout)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def log_tail(self, lines: int = 60) -> str:
        if not self.logs:
            return ""
        return "\n".join(self.logs[-1].read_text(errors="replace").splitlines()[-lines:])
