"""The `service` router: one Service named after the ModelDeployment, no dependencies.

With one serving revision the Service selects that revision's pods. With several, it selects
every pod of the ModelDeployment and the weight is realised by the replica ratio (the planner
sizes the canary), so the effective weight is what the ready endpoints give, not the wish.
"""

from __future__ import annotations

from ..kubeapi import KubeClient
from ..render.labels import NAME_LABEL, REVISION_LABEL, selector
from ..render.service import render_main_service
from .base import RouterTarget


class ServiceRouter:
    child = ("v1", "Service")

    def __init__(self, target: RouterTarget) -> None:
        self.target = target

    @property
    def kube(self) -> KubeClient:
        return self.target.kube

    def _apply(self, revisions: list[str]) -> bool:
        wanted = selector(self.target.name, revisions[0] if len(revisions) == 1 else None)
        desired = render_main_service(name=self.target.name, namespace=self.target.namespace,
                                      owner=self.target.owner, selector=wanted)
        live = self.kube.get("v1", "Service", self.target.namespace, self.target.name)
        if live is not None and live.get("spec", {}).get("selector") != wanted:
            # A merge patch would keep the old revision key in the selector: replace the map.
            desired["spec"]["selector"] = {**{key: None for key in live["spec"].get("selector", {})}, **wanted}
        _, changed = self.kube.apply(desired)
        return changed

    def reconcile(self) -> bool:
        live = self.kube.get("v1", "Service", self.target.namespace, self.target.name)
        if live is not None:
            return False
        return self._apply([])

    def set_weights(self, weights: dict[str, int]) -> bool:
        serving = sorted(revision for revision, weight in weights.items() if weight > 0)
        return self._apply(serving)

    def get_weights(self) -> dict[str, int]:
        live = self.kube.get("v1", "Service", self.target.namespace, self.target.name)
        if live is None:
            return {}
        chosen = live.get("spec", {}).get("selector", {})
        if REVISION_LABEL in chosen:
            return {chosen[REVISION_LABEL]: 100}
        deployments = self.kube.list("apps/v1", "Deployment", self.target.namespace,
                                     {NAME_LABEL: self.target.name})
        ready = {item["metadata"]["labels"][REVISION_LABEL]: int(item.get("status", {}).get("readyReplicas") or 0)
                 for item in deployments}
        total = sum(ready.values())
        if total == 0:
            return {}
        return _percentages(ready, total)


def _percentages(ready: dict[str, int], total: int) -> dict[str, int]:
    """Largest-remainder rounding, so the percentages always sum to 100."""
    exact = {revision: count * 100 / total for revision, count in ready.items()}
    floors = {revision: int(value) for revision, value in exact.items()}
    leftover = 100 - sum(floors.values())
    for revision in sorted(exact, key=lambda r: exact[r] - floors[r], reverse=True)[:leftover]:
        floors[revision] += 1
    return floors
