"""The live inventory: what the watches have seen, as a frozen ``Inventory`` on demand.

kopf's event handlers write here from its event loop; the audit path reads snapshots from the
webhook thread. Writes replace one object under a lock and mark the snapshot stale; a read
rebuilds it at most once per change (and at most every ``min_rebuild`` seconds while the cluster
churns), so a burst of pod events does not rebuild the inventory per audit event.

Only the fields detectors use are kept: a Secret's ``data`` never enters the store, and
``managedFields`` and the last-applied annotation are dropped on the way in.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Mapping
from typing import Any

from identity_risk.signals import Inventory

LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
INVENTORY_KINDS = (
    "Pod",
    "Node",
    "ServiceAccount",
    "Secret",
    "Role",
    "ClusterRole",
    "RoleBinding",
    "ClusterRoleBinding",
)

Key = tuple[str, str, str]


def _key(obj: Mapping[str, Any]) -> Key:
    meta = obj.get("metadata") or {}
    return (str(obj.get("kind", "")), str(meta.get("namespace", "")), str(meta.get("name", "")))


def strip(obj: Mapping[str, Any]) -> dict[str, Any]:
    """The object without what the inventory must never hold or does not need."""
    out = {k: v for k, v in obj.items() if k not in ("data", "stringData")}
    meta = dict(out.get("metadata") or {})
    meta.pop("managedFields", None)
    annotations = dict(meta.get("annotations") or {})
    annotations.pop(LAST_APPLIED, None)
    meta["annotations"] = annotations
    out["metadata"] = meta
    return out


class InventoryStore:
    """Thread-safe object store with a cached frozen snapshot."""

    def __init__(
        self,
        *,
        pod_cidrs: Iterable[str] = (),
        node_cidrs: Iterable[str] = (),
        min_rebuild: float = 0.2,
    ) -> None:
        self._objects: dict[Key, dict[str, Any]] = {}
        self._namespaces: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self._version = 0
        self._built_version = -1
        self._built_at = 0.0
        self._snapshot = Inventory()
        self._pod_cidrs = tuple(pod_cidrs)
        self._node_cidrs = tuple(node_cidrs)
        self._min_rebuild = min_rebuild
        self.synced = threading.Event()

    def upsert(self, obj: Mapping[str, Any]) -> None:
        kind = obj.get("kind")
        if kind == "Namespace":
            meta = obj.get("metadata") or {}
            with self._lock:
                self._namespaces[str(meta.get("name", ""))] = strip(obj)
            return
        if kind not in INVENTORY_KINDS:
            return
        stripped = strip(obj)
        with self._lock:
            self._objects[_key(stripped)] = stripped
            self._version += 1

    def delete(self, obj: Mapping[str, Any]) -> None:
        if obj.get("kind") == "Namespace":
            with self._lock:
                self._namespaces.pop(str((obj.get("metadata") or {}).get("name", "")), None)
            return
        with self._lock:
            if self._objects.pop(_key(obj), None) is not None:
                self._version += 1

    def context_objects(self) -> list[dict[str, Any]]:
        """Namespaces and ServiceAccounts: where policy selectors and owners are read from."""
        with self._lock:
            sas = [o for k, o in self._objects.items() if k[0] == "ServiceAccount"]
            return [*self._namespaces.values(), *sas]

    def namespace(self, name: str) -> Mapping[str, Any]:
        with self._lock:
            return self._namespaces.get(name, {})

    def snapshot(self, *, fresh: bool = False) -> Inventory:
        """The current inventory; rebuilt when stale (``fresh`` forces waiting out the throttle)."""
        with self._lock:
            stale = self._built_version != self._version
            throttled = time.monotonic() - self._built_at < self._min_rebuild
            if not stale or (throttled and not fresh):
                return self._snapshot
            objects = list(self._objects.values())
            version = self._version
        inventory = Inventory.from_objects(
            objects, pod_cidrs=self._pod_cidrs, node_cidrs=self._node_cidrs
        )
        with self._lock:
            if version >= self._built_version:
                self._snapshot = inventory
                self._built_version = version
                self._built_at = time.monotonic()
            return self._snapshot
