"""Run the end-to-end suite as the Helm chart's ServiceAccount (``IDENTITY_RISK_E2E_AS_CHART_SA=1``).

The chart is installed into the control plane with ``helm install`` (its pods only exist as kwok
fakes), and the operator process gets a kubeconfig holding a TokenRequest token of the chart's
ServiceAccount instead of the admin certificate: every API call it makes is then authorized by
the chart's ClusterRole and Role alone. The apiserver also writes an audit log file in which every
request of that ServiceAccount is recorded (the shared audit policy with one rule put first, for
Events, which it otherwise drops), so ``test_chart_rbac.py`` can check that no call was refused and
that every rule was used.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from identity_risk.testing.controlplane import CONFIG_DIR, DEFAULT_BIN_DIR, ClusterState
from identity_risk.testing.scenario import Api, ScenarioError

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "identity-risk"
HELM = DEFAULT_BIN_DIR / "helm"
ENABLED = os.environ.get("IDENTITY_RISK_E2E_AS_CHART_SA") == "1"
RELEASE = "identity-risk"
SERVICE_ACCOUNT = "identity-risk-operator"  # the chart's default fullname


def username(namespace: str) -> str:
    return f"system:serviceaccount:{namespace}:{SERVICE_ACCOUNT}"


def helm(state: ClusterState, *args: str) -> str:
    result = subprocess.run(
        [str(HELM), f"--kubeconfig={state.kubeconfig}", *args],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    if result.returncode != 0:
        raise ScenarioError(f"helm {' '.join(args)} failed:\n{result.stdout}{result.stderr}")
    return result.stdout


@dataclass
class ChartIdentity:
    """The chart installed, and the operator's credentials as its ServiceAccount."""

    workdir: Path
    namespace: str

    @property
    def audit_log(self) -> Path:
        return self.workdir / "apiserver-audit.log"

    @property
    def kubeconfig(self) -> Path:
        return self.workdir / "chart-sa.kubeconfig"

    def apiserver_args(self) -> list[str]:
        """An audit log file beside the webhook, with the operator's Events included.

        The shared policy is kept rule for rule; one rule is put first (the first matching
        rule wins) so the operator's own requests are all recorded, Events included.
        """
        policy = yaml.safe_load((CONFIG_DIR / "audit-policy.yaml").read_text())
        policy["rules"].insert(0, {"level": "Metadata", "users": [username(self.namespace)]})
        path = self.workdir / "audit-policy.yaml"
        path.write_text(yaml.safe_dump(policy))
        # Later flags win: this --audit-policy-file replaces the launcher's copy of the same file.
        return [f"--audit-policy-file={path}", f"--audit-log-path={self.audit_log}"]

    def install(self, state: ClusterState, api: Api) -> None:
        """``helm install`` the chart, then write a kubeconfig with its ServiceAccount's token."""
        helm(
            state,
            "install",
            RELEASE,
            str(CHART),
            f"--namespace={self.namespace}",
            "--create-namespace",
            # No kube-proxy on the test control plane: a Service is unreachable from the
            # apiserver, and an admission webhook would add its timeout to every pod creation.
            "--set=mutatingWebhook.enabled=false",
            "--wait",
            "--timeout=120s",
        )
        status, body = api.call(
            "POST",
            f"/api/v1/namespaces/{self.namespace}/serviceaccounts/{SERVICE_ACCOUNT}/token",
            {
                "apiVersion": "authentication.k8s.io/v1",
                "kind": "TokenRequest",
                "spec": {"expirationSeconds": 4 * 3600},
            },
        )
        if status != 201:
            raise ScenarioError(
                f"TokenRequest for the chart's ServiceAccount: HTTP {status} {body}"
            )
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "e2e",
                    "cluster": {
                        "server": state.apiserver_url,
                        "certificate-authority": str(api.ca_file),
                    },
                }
            ],
            "users": [{"name": SERVICE_ACCOUNT, "user": {"token": body["status"]["token"]}}],
            "contexts": [{"name": "e2e", "context": {"cluster": "e2e", "user": SERVICE_ACCOUNT}}],
            "current-context": "e2e",
        }
        self.kubeconfig.write_text(json.dumps(config))
        self.kubeconfig.chmod(0o600)

    def requests(self) -> Iterator[dict[str, Any]]:
        """Every audited request of the chart's ServiceAccount (a watch is logged when it starts)."""
        user = username(self.namespace)
        with self.audit_log.open() as lines:
            for line in lines:
                event = json.loads(line)
                if event["user"].get("username") != user:
                    continue
                if event["stage"] not in ("ResponseStarted", "ResponseComplete", "Panic"):
                    continue
                yield event
