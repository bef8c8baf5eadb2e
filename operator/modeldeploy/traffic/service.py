"""The `service` router: one Service named after the ModelDeployment, no dependencies.

With one serving revision the Service selects that revision's pods. With several (a canary in
progress) it selects the pods labelled `modeldeploy.dev/traffic=serving`, and the router writes
that label on the pods of exactly the serving revisions: a superseded or rolled-back revision that
keeps running for its scale-down delay loses the label, so it finishes its in-flight requests and
gets no new ones. The weight is realised by the replica ratio (the planner sizes the canary), so
`get_weights` reports what the ready, labelled endpoints give, not the wish.

Order keeps at least one backend. The label is kept on the serving revision's pods while it serves
alone too, so when a canary starts the stable's pods have carried it for long: the EndpointSlice
controller, whose pod cache lags the API, never sees the label selector before the stable's labels
(it would briefly find no endpoint). Only the canary's fresh pods can be late, which delays the
canary's share, never the stable's.

A first deploy's pods are born with the label (its pod template carries it: render.deployment's
`born_serving`), so they need no patch. Nothing can route to them before they serve: there is no other
revision. A canary's pods are born without it, since a Service over several revisions would reach them
before their gates passed.
"""

from __future__ import annotations

from typing import Any

from ..kubeapi import KubeClient
from ..render.labels import (
    MANAGED_BY,
    MANAGED_BY_LABEL,
    NAME_LABEL,
    REVISION_LABEL,
    SERVING,
    TRAFFIC_LABEL,
    selector,
)
from ..render.service import render_main_service
from .base import RouterTarget


def _is_ready(pod: dict[str, Any]) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def _revision(pod: dict[str, Any]) -> str:
    return str((pod["metadata"].get("labels") or {}).get(REVISION_LABEL, ""))


class ServiceRouter:
    child = ("v1", "Service")

    def __init__(self, target: RouterTarget) -> None:
        self.target = target

    @property
    def kube(self) -> KubeClient:
        return self.target.kube

    def _live(self) -> dict[str, Any] | None:
        return self.kube.get("v1", "Service", self.target.namespace, self.target.name)

    def _pods(self) -> list[dict[str, Any]]:
        owned = {MANAGED_BY_LABEL: MANAGED_BY, **selector(self.target.name)}  # ours: what the watch cache holds
        return [pod for pod in self.kube.list("v1", "Pod", self.target.namespace, owned)
                if not pod["metadata"].get("deletionTimestamp")]

    def _apply_selector(self, wanted: dict[str, str]) -> bool:
        desired = render_main_service(name=self.target.name, namespace=self.target.namespace,
                                      owner=self.target.owner, selector=wanted)
        live = self._live()
        if live is not None and live.get("spec", {}).get("selector") != wanted:
            # A merge patch would keep the old keys in the selector: replace the map.
            desired["spec"]["selector"] = {**{key: None for key in live["spec"].get("selector", {})}, **wanted}
        _, changed = self.kube.apply(desired)
        return changed

    def _label_pods(self, serving: set[str]) -> bool:
        """The traffic label on the pods of `serving` revisions, and on no other pod."""
        changed = False
        for pod in self._pods():
            has = (pod["metadata"].get("labels") or {}).get(TRAFFIC_LABEL) == SERVING
            wants = _revision(pod) in serving
            if has != wants:
                patch = {"metadata": {"labels": {TRAFFIC_LABEL: SERVING if wants else None}}}
                self.kube.merge_patch("v1", "Pod", self.target.namespace, pod["metadata"]["name"], patch)
                changed = True
        return changed

    def set_weights(self, weights: dict[str, int]) -> bool:
        serving = {revision for revision, weight in weights.items() if weight > 0}
        if len(serving) == 1:
            changed = self._apply_selector(selector(self.target.name, next(iter(serving))))
            return self._label_pods(serving) or changed  # labelled ahead of the next canary
        labelled = self._label_pods(serving)
        return self._apply_selector({**selector(self.target.name), TRAFFIC_LABEL: SERVING}) or labelled

    def get_weights(self) -> dict[str, int]:
        live = self._live()
        if live is None:
            return {}
        chosen = live.get("spec", {}).get("selector") or {}
        if REVISION_LABEL in chosen:
            return {chosen[REVISION_LABEL]: 100}
        ready: dict[str, int] = {}
        for pod in self._pods():
            labels = pod["metadata"].get("labels") or {}
            if _is_ready(pod) and all(labels.get(key) == value for key, value in chosen.items()):
                ready[_revision(pod)] = ready.get(_revision(pod), 0) + 1
        total = sum(ready.values())
        return _percentages(ready, total) if total else {}


def _percentages(ready: dict[str, int], total: int) -> dict[str, int]:
    """Largest-remainder rounding, so the percentages always sum to 100."""
    exact = {revision: count * 100 / total for revision, count in ready.items()}
    floors = {revision: int(value) for revision, value in exact.items()}
    leftover = 100 - sum(floors.values())
    for revision in sorted(exact, key=lambda r: exact[r] - floors[r], reverse=True)[:leftover]:
        floors[revision] += 1
    return floors


__all__ = ["NAME_LABEL", "ServiceRouter"]
