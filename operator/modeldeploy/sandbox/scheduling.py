"""The sandbox's one Node and a scheduler that says what kube-scheduler would say about a pod.

The node has CPU and memory but no ``nvidia.com/gpu``: a GPU pod stays Pending with
``PodScheduled=False, reason=Unschedulable`` and kube-scheduler's message, e.g.
``0/1 nodes are available: 1 Insufficient nvidia.com/gpu.`` (the operator classifies that as
InsufficientGPU). As in kube-scheduler, the filters run in order and the first failing one names
the reasons: unschedulable node, node selector/affinity, taints, then resources (all that don't fit).
"""

from __future__ import annotations

import dataclasses
import platform
from collections.abc import Iterable, Mapping
from typing import Any

from modeldeploy.sandbox.quantities import parse_quantity

NODE_NAME = "modeldeploy-sandbox"
NODE_ADDRESS = "127.0.0.1"
DEFAULT_ALLOCATABLE: Mapping[str, str] = {"cpu": "64", "memory": "256Gi", "pods": "110", "ephemeral-storage": "100Gi"}
_ARCH = {"x86_64": "amd64", "aarch64": "arm64"}


@dataclasses.dataclass(frozen=True)
class SandboxNode:
    name: str = NODE_NAME
    allocatable: Mapping[str, str] = dataclasses.field(default_factory=lambda: dict(DEFAULT_ALLOCATABLE))
    labels: Mapping[str, str] = dataclasses.field(default_factory=dict)

    def all_labels(self) -> dict[str, str]:
        arch = _ARCH.get(platform.machine(), platform.machine())
        return {
            "kubernetes.io/hostname": self.name,
            "kubernetes.io/os": "linux",
            "kubernetes.io/arch": arch,
            "node.kubernetes.io/instance-type": "modeldeploy-sandbox",
            **self.labels,
        }

    def manifest(self) -> dict[str, Any]:
        return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": self.name, "labels": self.all_labels()}}

    def status(self, now: str) -> dict[str, Any]:
        ready = {
            "type": "Ready",
            "status": "True",
            "reason": "KubeletReady",
            "message": "modeldeploy sandbox kubelet",
            "lastHeartbeatTime": now,
            "lastTransitionTime": now,
        }
        return {
            "capacity": dict(self.allocatable),
            "allocatable": dict(self.allocatable),
            "conditions": [ready],
            "addresses": [{"type": "InternalIP", "address": NODE_ADDRESS}, {"type": "Hostname", "address": self.name}],
            "nodeInfo": {
                "kubeletVersion": "v1.30.0-modeldeploy-sandbox",
                "operatingSystem": "linux",
                "architecture": self.all_labels()["kubernetes.io/arch"],
                "containerRuntimeVersion": "sandbox://processes",
            },
        }


def pod_requests(pod_spec: Mapping[str, Any]) -> dict[str, float]:
    """Effective requests: max(sum over containers, each init container); limits stand in for missing requests."""

    def of(container: Mapping[str, Any]) -> dict[str, float]:
        resources = container.get("resources") or {}
        merged = {**(resources.get("limits") or {}), **(resources.get("requests") or {})}
        return {name: parse_quantity(value) for name, value in merged.items()}

    total: dict[str, float] = {}
    for container in pod_spec.get("containers") or []:
        for name, value in of(container).items():
            total[name] = total.get(name, 0.0) + value
    for container in pod_spec.get("initContainers") or []:
        for name, value in of(container).items():
            total[name] = max(total.get(name, 0.0), value)
    return total


def _expression_matches(expression: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    key, operator, values = expression.get("key", ""), expression.get("operator"), expression.get("values") or []
    if operator == "In":
        return labels.get(key) in values
    if operator == "NotIn":
        return labels.get(key) not in values
    if operator == "Exists":
        return key in labels
    if operator == "DoesNotExist":
        return key not in labels
    if operator in ("Gt", "Lt") and key in labels and values:
        try:
            have, want = int(labels[key]), int(values[0])
        except ValueError:
            return False
        return have > want if operator == "Gt" else have < want
    return False


def _affinity_matches(pod_spec: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    selector = pod_spec.get("nodeSelector") or {}
    if any(labels.get(key) != value for key, value in selector.items()):
        return False
    required = ((pod_spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution"
    ) or {}
    terms = required.get("nodeSelectorTerms") or []
    # Terms are ORed, the expressions of a term ANDed; no terms means no constraint.
    return not terms or any(
        all(_expression_matches(e, labels) for e in term.get("matchExpressions") or []) for term in terms
    )


def unschedulable_message(
    pod_spec: Mapping[str, Any], node: SandboxNode, bound: Iterable[Mapping[str, Any]] = ()
) -> str | None:
    """None if the pod fits on ``node`` next to the ``bound`` pod specs, else kube-scheduler's message."""
    reasons: list[str] = []
    if not _affinity_matches(pod_spec, node.all_labels()):
        reasons.append("node(s) didn't match Pod's node affinity/selector")
    else:
        allocatable = {name: parse_quantity(value) for name, value in node.allocatable.items()}
        used: dict[str, float] = {"pods": 1.0}
        for other in bound:
            used["pods"] += 1
            for name, value in pod_requests(other).items():
                used[name] = used.get(name, 0.0) + value
        wanted = pod_requests(pod_spec)
        if used["pods"] > allocatable.get("pods", 110):
            reasons.append("Too many pods")
        for name in sorted(wanted):
            if wanted[name] > 0 and used.get(name, 0.0) + wanted[name] > allocatable.get(name, 0.0):
                reasons.append(f"Insufficient {name}")
    if not reasons:
        return None
    return "0/1 nodes are available: " + ", ".join(f"1 {reason}" for reason in sorted(reasons)) + "."
