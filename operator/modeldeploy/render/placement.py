"""Where inference pods may run: node selector, tolerations, affinity, runtime class."""

from __future__ import annotations

import copy
from typing import Any

from modeldeploy.api import ModelDeploymentSpec

GPU_PRODUCT_LABEL = "nvidia.com/gpu.product"  # set by GPU feature discovery
GPU_TAINT_KEY = "nvidia.com/gpu"


def _gpu_toleration() -> dict[str, Any]:
    return {"key": GPU_TAINT_KEY, "operator": "Exists", "effect": "NoSchedule"}


def _tolerates_gpu_taint(toleration: dict[str, Any]) -> bool:
    """True if the user already handles the nvidia.com/gpu NoSchedule taint (their value wins)."""
    key = toleration.get("key")
    operator = toleration.get("operator", "Equal")
    effect = toleration.get("effect")
    if effect not in (None, "NoSchedule"):
        return False
    if key is None:
        return operator == "Exists"  # tolerates every taint
    return key == GPU_TAINT_KEY


def placement(spec: ModelDeploymentSpec) -> dict[str, Any]:
    """The pod spec fields that place the pods; empty ones are left out."""
    resources = spec.resources
    out: dict[str, Any] = {}
    node_selector = dict(resources.node_selector)
    if resources.gpu is not None and resources.gpu.product:
        node_selector[GPU_PRODUCT_LABEL] = resources.gpu.product
    if node_selector:
        out["nodeSelector"] = node_selector
    tolerations = [toleration.to_dict() for toleration in resources.tolerations]
    if resources.gpu is not None and not any(_tolerates_gpu_taint(t) for t in tolerations):
        # GPU nodes are usually tainted so that CPU pods stay off them.
        tolerations.append(_gpu_toleration())
    if tolerations:
        out["tolerations"] = tolerations
    if resources.affinity:
        out["affinity"] = copy.deepcopy(resources.affinity)
    if resources.runtime_class_name:
        out["runtimeClassName"] = resources.runtime_class_name
    return out
