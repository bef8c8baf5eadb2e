"""What the deployment + replicaset controllers do, as pure functions over plain dicts.

The sandbox's pods belong to their Deployment directly (no ReplicaSet objects), carry the
template's labels plus ``pod-template-hash``, and are named ``<deployment>-<5 chars>``. A
template change surges: new pods are created at once and the old ones are deleted when the new
ones are all ready (the operator renders ``maxUnavailable: 0``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

TEMPLATE_HASH_LABEL = "pod-template-hash"

Obj = dict[str, Any]
ReadyFn = Callable[[Mapping[str, Any]], bool]


def template_hash(deployment: Mapping[str, Any]) -> str:
    template = (deployment.get("spec") or {}).get("template") or {}
    return hashlib.sha256(json.dumps(template, sort_keys=True).encode()).hexdigest()[:10]


def replicas_of(deployment: Mapping[str, Any]) -> int:
    """spec.replicas; the API server defaults a missing value to 1."""
    replicas = (deployment.get("spec") or {}).get("replicas")
    return 1 if replicas is None else int(replicas)


def owned_by(pod: Mapping[str, Any], uid: str) -> bool:
    return any(ref.get("uid") == uid for ref in (pod.get("metadata") or {}).get("ownerReferences") or [])


def new_pod(deployment: Mapping[str, Any]) -> Obj:
    """A pod of the Deployment's current template (``generateName``: the API server adds 5 chars)."""
    meta = deployment["metadata"]
    template = (deployment.get("spec") or {}).get("template") or {}
    template_meta = template.get("metadata") or {}
    labels = {**(template_meta.get("labels") or {}), TEMPLATE_HASH_LABEL: template_hash(deployment)}
    owner = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }
    pod_meta: Obj = {
        "generateName": f"{meta['name']}-",
        "namespace": meta.get("namespace", "default"),
        "labels": labels,
        "ownerReferences": [owner],
    }
    if template_meta.get("annotations"):
        pod_meta["annotations"] = dict(template_meta["annotations"])
    spec = json.loads(json.dumps(template.get("spec") or {}))
    spec.setdefault("restartPolicy", "Always")
    return {"apiVersion": "v1", "kind": "Pod", "metadata": pod_meta, "spec": spec}


@dataclasses.dataclass
class ScalePlan:
    create: int = 0
    delete: list[str] = dataclasses.field(default_factory=list)


def _deletion_order(pods: Sequence[Mapping[str, Any]], ready: ReadyFn) -> list[Mapping[str, Any]]:
    # As the replicaset controller: unscheduled first, then not ready, then the newest.
    newest_first = sorted(pods, key=lambda p: p["metadata"].get("creationTimestamp", ""), reverse=True)
    return sorted(newest_first, key=lambda p: (bool((p.get("spec") or {}).get("nodeName")), ready(p)))


def plan_scale(deployment: Mapping[str, Any], pods: Sequence[Mapping[str, Any]], ready: ReadyFn) -> ScalePlan:
    """Pods to create and to delete so that the Deployment's pods match its spec."""
    wanted, current_hash = replicas_of(deployment), template_hash(deployment)
    current = [p for p in pods if (p["metadata"].get("labels") or {}).get(TEMPLATE_HASH_LABEL) == current_hash]
    old = [p for p in pods if p not in current]
    plan = ScalePlan(create=max(0, wanted - len(current)))
    if len(current) > wanted:
        doomed = _deletion_order(current, ready)[: len(current) - wanted]
        plan.delete += [p["metadata"]["name"] for p in doomed]
    if old and sum(map(ready, current)) >= wanted:
        plan.delete += [p["metadata"]["name"] for p in old]
    return plan


def deployment_status(deployment: Mapping[str, Any], pods: Sequence[Mapping[str, Any]], ready: ReadyFn) -> Obj:
    """The status the deployment controller reports; zero counts are omitted as the API does."""
    current_hash = template_hash(deployment)
    total = len(pods)
    ready_count = sum(map(ready, pods))
    updated = sum((p["metadata"].get("labels") or {}).get(TEMPLATE_HASH_LABEL) == current_hash for p in pods)
    counts = {
        "replicas": total,
        "updatedReplicas": updated,
        "readyReplicas": ready_count,
        "availableReplicas": ready_count,
        "unavailableReplicas": max(0, replicas_of(deployment) - ready_count),
    }
    status: Obj = {"observedGeneration": int(deployment["metadata"].get("generation") or 1)}
    status.update({key: value for key, value in counts.items() if value})
    return status
