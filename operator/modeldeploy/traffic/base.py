"""The router interface (after Flagger's router.Interface): reconcile, set weights, get weights."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from ..api.spec import ModelDeploymentSpec
from ..kubeapi import KubeClient
from ..render.labels import Owner


@dataclass(frozen=True)
class RouterTarget:
    """The ModelDeployment a router serves."""

    kube: KubeClient
    owner: Owner
    spec: ModelDeploymentSpec

    @property
    def name(self) -> str:
        return self.owner.name

    @property
    def namespace(self) -> str:
        return self.owner.namespace


class Router(Protocol):
    # (apiVersion, kind) of the routing object, named after the ModelDeployment: errors name it.
    child: tuple[str, str]

    def set_weights(self, weights: dict[str, int]) -> bool:
        """Route `weights` (revision -> percent, summing to 100); True if anything was written."""

    def get_weights(self) -> dict[str, int]:
        """The effective weights as the routing objects realise them now."""
