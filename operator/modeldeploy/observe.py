"""Read a ModelDeployment's world from the API into the planner's plain data."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from .api import API_VERSION, KIND
from .api.semantics import spec_problems
from .api.status_parse import parse_status
from .kubeapi import KubeClient
from .render.labels import (
    MANAGED_BY,
    MANAGED_BY_LABEL,
    NAME_LABEL,
    REVISION_LABEL,
    ROLE_LABEL,
    SERVING,
    SPEC_HASH_ANNOTATION,
    TRAFFIC_LABEL,
)
from .rollout import ContainerState, DeploymentState, Observed, PodState


def children_selector(name: str) -> dict[str, str]:
    return {MANAGED_BY_LABEL: MANAGED_BY, NAME_LABEL: name}


def _owned_by(obj: dict[str, Any], uid: str) -> bool:
    return any(ref.get("uid") == uid for ref in obj.get("metadata", {}).get("ownerReferences") or [])


def replica_failure(status: dict[str, Any]) -> str | None:
    """The message of the ReplicaFailure condition the Deployment controller copies from its
    ReplicaSet (reason FailedCreate: the API server refused the pods), while it is True."""
    for condition in status.get("conditions") or []:
        if condition.get("type") == "ReplicaFailure" and condition.get("status") == "True":
            return str(condition.get("message") or condition.get("reason") or "ReplicaFailure")
    return None


def deployment_state(obj: dict[str, Any]) -> DeploymentState:
    meta = obj["metadata"]
    status = obj.get("status") or {}
    replicas = (obj.get("spec") or {}).get("replicas")
    template_labels = (((obj.get("spec") or {}).get("template") or {}).get("metadata") or {}).get("labels") or {}
    return DeploymentState(
        revision=meta["labels"][REVISION_LABEL],
        spec_hash=(meta.get("annotations") or {}).get(SPEC_HASH_ANNOTATION, ""),
        role=meta["labels"].get(ROLE_LABEL),
        replicas=replicas,
        ready_replicas=int(status.get("readyReplicas") or 0),
        available_replicas=int(status.get("availableReplicas") or 0),
        updated_replicas=int(status.get("updatedReplicas") or 0),
        replica_failure=replica_failure(status),
        created_at=str(meta.get("creationTimestamp") or ""),
        born_serving=template_labels.get(TRAFFIC_LABEL) == SERVING,
    )


def _container(raw: dict[str, Any], init: bool) -> ContainerState:
    state = raw.get("state") or {}
    last = raw.get("lastState") or {}
    waiting = state.get("waiting") or {}
    terminated = state.get("terminated") or {}
    last_terminated = last.get("terminated") or {}
    return ContainerState(
        name=raw.get("name", ""), init=init, ready=bool(raw.get("ready")),
        restart_count=int(raw.get("restartCount") or 0),
        waiting_reason=waiting.get("reason"), waiting_message=waiting.get("message"),
        terminated_reason=terminated.get("reason"), terminated_exit_code=terminated.get("exitCode"),
        terminated_message=terminated.get("message"),
        last_terminated_reason=last_terminated.get("reason"),
        last_terminated_exit_code=last_terminated.get("exitCode"),
        last_terminated_message=last_terminated.get("message"),
    )


def pod_state(obj: dict[str, Any]) -> PodState:
    status = obj.get("status") or {}
    conditions = {c.get("type"): c for c in status.get("conditions") or []}
    scheduled = conditions.get("PodScheduled") or {}
    unschedulable = (scheduled.get("message") or "unschedulable") if (
        scheduled.get("status") == "False" and scheduled.get("reason") == "Unschedulable") else None
    containers = tuple(_container(raw, True) for raw in status.get("initContainerStatuses") or []) + tuple(
        _container(raw, False) for raw in status.get("containerStatuses") or [])
    return PodState(
        name=obj["metadata"]["name"],
        revision=(obj["metadata"].get("labels") or {}).get(REVISION_LABEL, ""),
        phase=status.get("phase", "Pending"),
        ready=(conditions.get("Ready") or {}).get("status") == "True",
        unschedulable_message=unschedulable,
        containers=containers,
        address=status.get("podIP"),
        requests_gpu=any(name.startswith("nvidia.com/")
                         for container in (obj.get("spec") or {}).get("containers") or []
                         for name in ((container.get("resources") or {}).get("limits") or {})),
    )


def observe(kube: KubeClient, obj: dict[str, Any], now: datetime) -> Observed:
    meta = obj["metadata"]
    name, namespace, uid = meta["name"], meta["namespace"], meta.get("uid", "")
    spec, problems = spec_problems(name, obj.get("spec") or {})
    selector = children_selector(name)
    deployments = [d for d in kube.list("apps/v1", "Deployment", namespace, selector)
                   if _owned_by(d, uid) and REVISION_LABEL in d["metadata"].get("labels", {})]
    pods = kube.list("v1", "Pod", namespace, selector) if deployments else []
    return Observed(
        name=name, namespace=namespace, generation=int(meta.get("generation") or 1),
        spec=spec, problems=tuple(problems), status=parse_status(obj.get("status")),
        deployments={state.revision: state for state in map(deployment_state, deployments)},
        pods=tuple(pod_state(pod) for pod in pods if not pod["metadata"].get("deletionTimestamp")),
        now=now,
    )


__all__ = ["API_VERSION", "KIND", "observe", "parse_status"]
