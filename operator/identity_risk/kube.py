"""The one Kubernetes API client wrapper the operator's effects use.

kopf owns watching; this module owns writing. Every write the operator makes goes through here so
that idempotency (a create that finds its object already there is success, not an error), owner
references, field managers and error messages are decided once. Nothing here logs object bodies:
Secrets pass through, and secret values must never reach a log.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from identity_risk.api.v1alpha1 import GROUP, VERSION

log = logging.getLogger(__name__)

FIELD_MANAGER = "identity-risk-operator"
MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
PLURALS = {
    "IdentityRiskPolicy": "identityriskpolicies",
    "WorkloadIdentityRisk": "workloadidentityrisks",
    "RiskDecision": "riskdecisions",
    "RiskApproval": "riskapprovals",
    "RiskException": "riskexceptions",
    "IdentitySignal": "identitysignals",
}


class KubeError(RuntimeError):
    """An API call that failed, with the verb, the object and the API server's message."""

    def __init__(self, action: str, target: str, exc: ApiException) -> None:
        self.status = int(exc.status or 0)
        reason = exc.reason or ""
        super().__init__(f"{action} {target}: HTTP {self.status} {reason}".strip())


def load_api_client(*, kubeconfig: str | None = None) -> client.ApiClient:
    """In-cluster configuration when running in a pod, otherwise the given or default kubeconfig."""
    if kubeconfig is None:
        try:
            config.load_incluster_config()  # type: ignore[no-untyped-call]
            return client.ApiClient()
        except config.ConfigException:
            pass
    configuration = client.Configuration()
    config.load_kube_config(  # type: ignore[no-untyped-call]
        config_file=kubeconfig, client_configuration=configuration
    )
    return client.ApiClient(configuration)


def _as_dict(obj: object) -> dict[str, Any]:
    if not isinstance(obj, dict):
        raise TypeError(f"expected a JSON object from the API server, got {type(obj).__name__}")
    return obj


def owner_reference(obj: Mapping[str, Any], *, controller: bool = False) -> dict[str, Any]:
    """The one place owner references are built."""
    meta = obj["metadata"]
    return {
        "apiVersion": obj["apiVersion"],
        "kind": obj["kind"],
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": controller,
        "blockOwnerDeletion": False,
    }


@dataclass(frozen=True, slots=True)
class ObjectRef:
    api_version: str
    kind: str
    namespace: str
    name: str
    uid: str = ""

    def __str__(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name}" if self.namespace else self.kind


class Kube:
    """Typed, idempotent writes over one ``ApiClient``."""

    def __init__(self, api_client: client.ApiClient) -> None:
        self.api_client = api_client
        self.core = client.CoreV1Api(api_client)
        self.custom = client.CustomObjectsApi(api_client)
        self.networking = client.NetworkingV1Api(api_client)
        self.coordination = client.CoordinationV1Api(api_client)
        self.admissionregistration = client.AdmissionregistrationV1Api(api_client)

    # ---- our custom resources ---------------------------------------------------------------

    def create_custom(self, kind: str, namespace: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """Create one of our objects; if its name already exists, return the existing one."""
        plural = PLURALS[kind]
        name = body["metadata"]["name"]
        try:
            if namespace:
                return _as_dict(
                    self.custom.create_namespaced_custom_object(
                        GROUP, VERSION, namespace, plural, dict(body), field_manager=FIELD_MANAGER
                    )
                )
            return _as_dict(
                self.custom.create_cluster_custom_object(
                    GROUP, VERSION, plural, dict(body), field_manager=FIELD_MANAGER
                )
            )
        except ApiException as exc:
            if exc.status == 409:
                existing = self.get_custom(kind, namespace, name)
                if existing is not None:
                    return existing
            raise KubeError("create", f"{kind} {namespace}/{name}", exc) from None

    def get_custom(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        plural = PLURALS[kind]
        try:
            if namespace:
                obj = self.custom.get_namespaced_custom_object(
                    GROUP, VERSION, namespace, plural, name
                )
            else:
                obj = self.custom.get_cluster_custom_object(GROUP, VERSION, plural, name)
            return _as_dict(obj)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise KubeError("get", f"{kind} {namespace}/{name}", exc) from None

    def list_custom(self, kind: str, namespace: str = "") -> list[dict[str, Any]]:
        plural = PLURALS[kind]
        try:
            if namespace:
                result = self.custom.list_namespaced_custom_object(
                    GROUP, VERSION, namespace, plural
                )
            else:
                result = self.custom.list_cluster_custom_object(GROUP, VERSION, plural)
        except ApiException as exc:
            raise KubeError("list", kind, exc) from None
        return [_as_dict(item) for item in _as_dict(result).get("items", [])]

    def patch_custom_status(
        self, kind: str, namespace: str, name: str, status: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Merge-patch the status subresource of one of our objects."""
        plural = PLURALS[kind]
        body = {"status": dict(status)}
        try:
            if namespace:
                obj = self.custom.patch_namespaced_custom_object_status(
                    GROUP, VERSION, namespace, plural, name, body, field_manager=FIELD_MANAGER
                )
            else:
                obj = self.custom.patch_cluster_custom_object_status(
                    GROUP, VERSION, plural, name, body, field_manager=FIELD_MANAGER
                )
            return _as_dict(obj)
        except ApiException as exc:
            raise KubeError("patch status of", f"{kind} {namespace}/{name}", exc) from None

    def annotate_custom(
        self, kind: str, namespace: str, name: str, annotations: Mapping[str, str | None]
    ) -> dict[str, Any]:
        """Merge-patch annotations onto one of our namespaced objects (None removes one)."""
        body = {"metadata": {"annotations": dict(annotations)}}
        try:
            obj = self.custom.patch_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURALS[kind], name, body, field_manager=FIELD_MANAGER
            )
        except ApiException as exc:
            raise KubeError("annotate", f"{kind} {namespace}/{name}", exc) from None
        return _as_dict(obj)

    def whoami(self) -> str:
        """The user name the API server knows this client as (SelfSubjectReview), or ""."""
        try:
            review = client.AuthenticationV1Api(self.api_client).create_self_subject_review(
                client.V1SelfSubjectReview()
            )
        except ApiException:
            return ""
        info = getattr(getattr(review, "status", None), "user_info", None)
        return str(getattr(info, "username", "") or "")

    # ---- core objects -----------------------------------------------------------------------

    def list_core(self, kind: str) -> list[dict[str, Any]]:
        """Every object of a core kind (ServiceAccount, Namespace), as plain JSON dicts."""
        try:
            result: Any = (
                self.core.list_service_account_for_all_namespaces(_preload_content=False)
                if kind == "ServiceAccount"
                else self.core.list_namespace(_preload_content=False)
            )
        except ApiException as exc:
            raise KubeError("list", kind, exc) from None
        body = _as_dict(json.loads(result.data))
        return [{**_as_dict(item), "kind": kind} for item in body.get("items", [])]

    def event(
        self,
        *,
        regarding: ObjectRef,
        reason: str,
        message: str,
        warning: bool = False,
        now: datetime,
    ) -> None:
        """Record a Kubernetes Event on ``regarding``. Failure to record is logged, not raised."""
        body = client.CoreV1Event(
            metadata=client.V1ObjectMeta(
                generate_name=f"{regarding.name}.", namespace=regarding.namespace or "default"
            ),
            involved_object=client.V1ObjectReference(
                api_version=regarding.api_version,
                kind=regarding.kind,
                name=regarding.name,
                namespace=regarding.namespace or None,
                uid=regarding.uid or None,
            ),
            reason=reason,
            message=message[:1024],
            type="Warning" if warning else "Normal",
            first_timestamp=now,
            last_timestamp=now,
            count=1,
            source=client.V1EventSource(component=FIELD_MANAGER),
            reporting_component=FIELD_MANAGER,
            reporting_instance=FIELD_MANAGER,
        )
        try:
            self.core.create_namespaced_event(regarding.namespace or "default", body)
        except ApiException as exc:
            log.warning("could not record Event %s on %s: HTTP %s", reason, regarding, exc.status)

    def evict(self, namespace: str, name: str) -> str:
        """Evict a pod through the Eviction API (PodDisruptionBudgets are honoured).

        Returns ``"evicted"``, ``"gone"`` (already deleted) or ``"blocked"`` (a
        PodDisruptionBudget refused it for now: try again later).
        """
        body = client.V1Eviction(metadata=client.V1ObjectMeta(name=name, namespace=namespace))
        try:
            self.core.create_namespaced_pod_eviction(name, namespace, body)
        except ApiException as exc:
            if exc.status == 404:
                return "gone"
            if exc.status == 429:
                return "blocked"
            raise KubeError("evict", f"pod {namespace}/{name}", exc) from None
        return "evicted"

    def get_secret(self, namespace: str, name: str) -> client.V1Secret | None:
        try:
            secret: client.V1Secret = self.core.read_namespaced_secret(name, namespace)
            return secret
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise KubeError("get", f"secret {namespace}/{name}", exc) from None

    def create_secret(self, namespace: str, name: str, data: Mapping[str, str]) -> None:
        """Create an Opaque secret (``data`` values already base64); an existing one is kept."""
        body = client.V1Secret(
            metadata=client.V1ObjectMeta(
                name=name,
                namespace=namespace,
                labels={"app.kubernetes.io/managed-by": FIELD_MANAGER},
            ),
            type="Opaque",
            data=dict(data),
        )
        try:
            self.core.create_namespaced_secret(namespace, body, field_manager=FIELD_MANAGER)
        except ApiException as exc:
            if exc.status != 409:
                raise KubeError("create", f"secret {namespace}/{name}", exc) from None

    # ---- playbook writes (QuarantinePods, RotateSecrets, RecreateServiceAccount) --------------

    def patch_pod_labels(self, namespace: str, name: str, labels: Mapping[str, str | None]) -> bool:
        """Merge-patch a pod's labels (``None`` removes one). False when the pod is gone."""
        body = {"metadata": {"labels": dict(labels)}}
        try:
            self.core.patch_namespaced_pod(
                name, namespace, body, field_manager=FIELD_MANAGER, _content_type=MERGE_PATCH
            )
        except ApiException as exc:
            if exc.status == 404:
                return False
            raise KubeError("label", f"pod {namespace}/{name}", exc) from None
        return True

    def remove_pod_label(self, namespace: str, name: str, key: str, *, value: str) -> str:
        """Remove a pod's label only if it still has ``value`` (JSON patch test, atomic).

        Returns ``"removed"``, ``"gone"`` (no such pod) or ``"kept"`` (the label is absent or
        holds another value now, e.g. set by a later decision).
        """
        path = "/metadata/labels/" + key.replace("~", "~0").replace("/", "~1")
        body = [{"op": "test", "path": path, "value": value}, {"op": "remove", "path": path}]
        try:
            self.core.patch_namespaced_pod(
                name, namespace, body, field_manager=FIELD_MANAGER, _content_type=JSON_PATCH
            )
        except ApiException as exc:
            if exc.status == 404:
                return "gone"
            if exc.status in (409, 422):  # the test failed, or the path is missing
                return "kept"
            raise KubeError("unlabel", f"pod {namespace}/{name}", exc) from None
        return "removed"

    def create_network_policy(self, namespace: str, body: Mapping[str, Any]) -> None:
        """Create a NetworkPolicy; one already there under that name is kept (idempotent)."""
        name = body["metadata"]["name"]
        try:
            self.networking.create_namespaced_network_policy(
                namespace,
                client.V1NetworkPolicy.model_validate(dict(body)),
                field_manager=FIELD_MANAGER,
            )
        except ApiException as exc:
            if exc.status != 409:
                raise KubeError("create", f"NetworkPolicy {namespace}/{name}", exc) from None

    def delete_network_policy(self, namespace: str, name: str) -> bool:
        """Delete a NetworkPolicy. False when it was already gone."""
        try:
            self.networking.delete_namespaced_network_policy(name, namespace)
        except ApiException as exc:
            if exc.status == 404:
                return False
            raise KubeError("delete", f"NetworkPolicy {namespace}/{name}", exc) from None
        return True

    def patch_secret(
        self,
        namespace: str,
        name: str,
        *,
        data: Mapping[str, str],
        annotations: Mapping[str, str],
        resource_version: str,
    ) -> None:
        """Merge new base64 ``data`` keys and annotations into a Secret, if still unchanged.

        ``resource_version`` guards the write: a concurrent change fails it with HTTP 409 and
        nothing is written. Errors name the Secret only; no value reaches a message.
        """
        body = {
            "metadata": {"resourceVersion": resource_version, "annotations": dict(annotations)},
            "data": dict(data),
        }
        try:
            self.core.patch_namespaced_secret(
                name, namespace, body, field_manager=FIELD_MANAGER, _content_type=MERGE_PATCH
            )
        except ApiException as exc:
            raise KubeError("update", f"secret {namespace}/{name}", exc) from None

    def get_service_account(self, namespace: str, name: str) -> dict[str, Any] | None:
        """A ServiceAccount as plain JSON (wire field names), or None."""
        try:
            result: Any = self.core.read_namespaced_service_account(
                name, namespace, _preload_content=False
            )
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise KubeError("get", f"ServiceAccount {namespace}/{name}", exc) from None
        return _as_dict(json.loads(result.data))

    def delete_service_account(self, namespace: str, name: str, *, uid: str) -> bool:
        """Delete the ServiceAccount with this UID (precondition). False when it is gone already
        or was replaced by another object of the same name (a 409 on the UID precondition)."""
        options = client.V1DeleteOptions(preconditions=client.V1Preconditions(uid=uid))
        try:
            self.core.delete_namespaced_service_account(name, namespace, body=options)
        except ApiException as exc:
            if exc.status in (404, 409):
                return False
            raise KubeError("delete", f"ServiceAccount {namespace}/{name}", exc) from None
        return True

    def create_service_account(self, namespace: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """Create a ServiceAccount; if the name exists, return the existing one."""
        name = body["metadata"]["name"]
        try:
            result: Any = self.core.create_namespaced_service_account(
                namespace,
                client.V1ServiceAccount.model_validate(dict(body)),
                field_manager=FIELD_MANAGER,
                _preload_content=False,
            )
        except ApiException as exc:
            if exc.status == 409:
                existing = self.get_service_account(namespace, name)
                if existing is not None:
                    return existing
            raise KubeError("create", f"ServiceAccount {namespace}/{name}", exc) from None
        return _as_dict(json.loads(result.data))

    # ---- leader election (coordination.k8s.io/v1 Lease) --------------------------------------

    def get_lease(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The Lease as plain JSON, or None when there is none."""
        try:
            result: Any = self.coordination.read_namespaced_lease(
                name, namespace, _preload_content=False
            )
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise KubeError("get", f"Lease {namespace}/{name}", exc) from None
        return _as_dict(json.loads(result.data))

    def create_lease(self, namespace: str, body: Mapping[str, Any]) -> dict[str, Any] | None:
        """Create a Lease; None when another writer created it first (HTTP 409)."""
        name = body["metadata"]["name"]
        try:
            result: Any = self.coordination.create_namespaced_lease(
                namespace,
                client.V1Lease.model_validate(dict(body)),
                field_manager=FIELD_MANAGER,
                _preload_content=False,
            )
        except ApiException as exc:
            if exc.status == 409:
                return None
            raise KubeError("create", f"Lease {namespace}/{name}", exc) from None
        return _as_dict(json.loads(result.data))

    def update_lease(self, namespace: str, body: Mapping[str, Any]) -> dict[str, Any] | None:
        """Replace a Lease guarded by its ``metadata.resourceVersion``; None on a conflict (409):
        someone else wrote it since it was read."""
        name = body["metadata"]["name"]
        try:
            result: Any = self.coordination.replace_namespaced_lease(
                name,
                namespace,
                client.V1Lease.model_validate(dict(body)),
                field_manager=FIELD_MANAGER,
                _preload_content=False,
            )
        except ApiException as exc:
            if exc.status == 409:
                return None
            raise KubeError("update", f"Lease {namespace}/{name}", exc) from None
        return _as_dict(json.loads(result.data))

    # ---- the chart's MutatingWebhookConfiguration (CA injection, TLS mode generate) -----------

    def inject_webhook_ca(self, name: str, ca_bundle: bytes) -> str:
        """Set ``caBundle`` of every webhook in the MutatingWebhookConfiguration ``name``.

        Idempotent: nothing is written when every webhook already carries it. Returns
        ``"patched"``, ``"unchanged"`` or ``"missing"`` (no such object).
        """
        encoded = base64.b64encode(ca_bundle).decode()
        try:
            result: Any = self.admissionregistration.read_mutating_webhook_configuration(
                name, _preload_content=False
            )
        except ApiException as exc:
            if exc.status == 404:
                return "missing"
            raise KubeError("get", f"MutatingWebhookConfiguration {name}", exc) from None
        webhooks = _as_dict(json.loads(result.data)).get("webhooks") or []
        if all((w.get("clientConfig") or {}).get("caBundle") == encoded for w in webhooks):
            return "unchanged"
        patch = [
            {"op": "add", "path": f"/webhooks/{i}/clientConfig/caBundle", "value": encoded}
            for i in range(len(webhooks))
        ]
        try:
            self.admissionregistration.patch_mutating_webhook_configuration(
                name, patch, field_manager=FIELD_MANAGER, _content_type=JSON_PATCH
            )
        except ApiException as exc:
            raise KubeError("patch", f"MutatingWebhookConfiguration {name}", exc) from None
        return "patched"
