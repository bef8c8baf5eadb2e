"""Which watch events are worth a reconcile: fingerprints of what the planner reads.

The operator's own writes come back as watch events; without this filter each status write, child
apply and annotation would wake another (no-op) reconcile. Fingerprints only live in memory: after a
restart every object is seen anew, which wakes it once — harmless.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from .render.labels import NAME_LABEL, TRAFFIC_LABEL

Fingerprint = tuple[Any, ...]


def model_deployment_fingerprint(body: dict[str, Any]) -> Fingerprint:
    """Spec changes (generation), manual intents and deletion: not our own status writes."""
    meta = body.get("metadata") or {}
    intent = (body.get("status") or {}).get("intent")
    return meta.get("generation"), json.dumps(intent, sort_keys=True), bool(meta.get("deletionTimestamp"))


def deployment_fingerprint(body: dict[str, Any]) -> Fingerprint:
    status = body.get("status") or {}
    # ReplicaFailure (FailedCreate) is how a Deployment says its pods cannot even be created.
    failure = next(((c.get("status"), c.get("message")) for c in status.get("conditions") or []
                    if c.get("type") == "ReplicaFailure"), None)
    return ((body.get("spec") or {}).get("replicas"), status.get("readyReplicas"), status.get("availableReplicas"),
            status.get("updatedReplicas"), failure)


def pod_fingerprint(body: dict[str, Any]) -> Fingerprint:
    """Readiness, scheduling and container states: what failure classification reads."""
    status = body.get("status") or {}
    conditions = tuple(sorted((c.get("type"), c.get("status"), c.get("reason"))
                              for c in status.get("conditions") or []))
    containers = tuple(
        (c.get("name"), c.get("ready"), c.get("restartCount"), json.dumps(c.get("state"), sort_keys=True))
        for c in [*(status.get("initContainerStatuses") or []), *(status.get("containerStatuses") or [])])
    traffic = ((body.get("metadata") or {}).get("labels") or {}).get(TRAFFIC_LABEL)  # what the router routes
    return status.get("phase"), status.get("podIP"), conditions, containers, traffic


def child_fingerprint(body: dict[str, Any]) -> Fingerprint:
    """Services, HPAs, PDBs, HTTPRoutes: their spec (someone edited it, or a route changed); a
    deletion always wakes (WakeFilter), so a deleted child comes back at once, not at the resync."""
    # A digest, not the JSON: thousands of children's fingerprints stay small in memory.
    return (hashlib.blake2b(json.dumps(body.get("spec"), sort_keys=True).encode(), digest_size=16).digest(),)


Key = tuple[str, str, str]  # kind, namespace, name


class WakeFilter:
    def __init__(self) -> None:
        self._seen: dict[Key, Fingerprint] = {}
        self._owners: dict[Key, str] = {}  # child key -> its ModelDeployment's name
        # (namespace, ModelDeployment) -> its children's keys: a deletion forgets them without a scan
        self._children: dict[tuple[str, str], set[Key]] = {}

    def forget(self, namespace: str, name: str) -> None:
        """Drop the fingerprints of a deleted ModelDeployment and of its children."""
        for key in [("ModelDeployment", namespace, name), *self._children.pop((namespace, name), ())]:
            self._seen.pop(key, None)
            self._owners.pop(key, None)

    def _drop(self, key: Key) -> None:
        self._seen.pop(key, None)
        self._unown(key)

    def _unown(self, key: Key) -> None:
        owner = self._owners.pop(key, None)
        if owner is not None:
            children = self._children.get((key[1], owner))
            if children is not None:
                children.discard(key)
                if not children:
                    del self._children[key[1], owner]

    def __len__(self) -> int:
        return len(self._seen)

    def changed(self, kind: str, event_type: str | None, body: dict[str, Any], fingerprint: Fingerprint) -> bool:
        meta = body.get("metadata") or {}
        key = (kind, meta.get("namespace", ""), meta.get("name", ""))
        if event_type == "DELETED":
            self._drop(key)
            return True
        if self._seen.get(key) == fingerprint:
            return False
        self._seen[key] = fingerprint
        owner = (meta.get("labels") or {}).get(NAME_LABEL)
        if self._owners.get(key) != owner:  # new, relabelled to another owner, or the label removed
            self._unown(key)
            if owner is not None:
                self._owners[key] = owner
                self._children.setdefault((key[1], owner), set()).add(key)
        return True
