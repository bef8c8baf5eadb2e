"""The `gatewayAPI` router: an HTTPRoute `<name>` with weighted backendRefs to per-revision Services."""

from __future__ import annotations

from typing import Any

from ..render.labels import child_labels, object_meta
from ..render.ports import HTTP_PORT
from .base import RouterTarget

HTTPROUTE_API = "gateway.networking.k8s.io/v1"


def render_httproute(target: RouterTarget, weights: dict[str, int]) -> dict[str, Any]:
    """Pure: the HTTPRoute for these weights (revisions sorted, so equal weights render equal routes)."""
    gateway = target.spec.rollout.traffic.gateway
    parent_refs = [ref.to_dict() for ref in gateway.parent_refs] if gateway else []
    spec: dict[str, Any] = {
        "parentRefs": parent_refs,
        "rules": [{"backendRefs": [{"name": revision, "port": HTTP_PORT, "weight": weight}
                                   for revision, weight in sorted(weights.items())]}],
    }
    if gateway and gateway.hostnames:
        spec["hostnames"] = list(gateway.hostnames)
    return {"apiVersion": HTTPROUTE_API, "kind": "HTTPRoute",
            "metadata": object_meta(target.name, target.namespace, target.owner, child_labels(target.name, None, None)),
            "spec": spec}


class GatewayRouter:
    child = (HTTPROUTE_API, "HTTPRoute")

    def __init__(self, target: RouterTarget) -> None:
        self.target = target

    def set_weights(self, weights: dict[str, int]) -> bool:
        _, changed = self.target.kube.apply(render_httproute(self.target, weights))
        return changed

    def get_weights(self) -> dict[str, int]:
        live = self.target.kube.get(HTTPROUTE_API, "HTTPRoute", self.target.namespace, self.target.name)
        if live is None:
            return {}
        rules = live.get("spec", {}).get("rules") or [{}]
        return {ref["name"]: int(ref.get("weight", 1)) for ref in rules[0].get("backendRefs") or []}
