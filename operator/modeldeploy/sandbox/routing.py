"""Where a request to a ModelDeployment goes, as the cluster's data plane would decide.

- ``service`` router: the main Service ``<name>`` selects pods; kube-proxy picks a ready one
  uniformly, so traffic splits by replica ratio.
- ``gatewayAPI`` router: if an HTTPRoute ``<name>`` exists, a backendRef is picked by weight,
  then a ready pod of that backend Service's selector.

Only Ready pods with a loopback ``podIP`` are endpoints (the sandbox never sends traffic elsewhere).
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Mapping
from typing import Any

from modeldeploy.kubeapi import KubeClient
from modeldeploy.render.labels import REVISION_LABEL
from modeldeploy.sandbox.addresses import is_loopback


@dataclasses.dataclass(frozen=True)
class Endpoint:
    address: str
    pod: str
    revision: str


@dataclasses.dataclass(frozen=True)
class Backend:
    """One weighted destination: a Service (by name) and its ready endpoints."""

    service: str
    weight: int
    endpoints: tuple[Endpoint, ...]


@dataclasses.dataclass(frozen=True)
class RouteTable:
    model: str
    backends: tuple[Backend, ...]

    def pick(self, rng: random.Random) -> tuple[Backend | None, Endpoint | None]:
        """A backend by weight, then one of its endpoints uniformly (None: nothing to send to)."""
        weighted = [b for b in self.backends if b.weight > 0]
        if not weighted:
            return None, None
        backend = rng.choices(weighted, weights=[b.weight for b in weighted])[0]
        return backend, (rng.choice(backend.endpoints) if backend.endpoints else None)


def _ready(pod: Mapping[str, Any]) -> bool:
    status = pod.get("status") or {}
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])
    return ready and not pod["metadata"].get("deletionTimestamp") and is_loopback(status.get("podIP") or "")


def _endpoints(kube: KubeClient, namespace: str, service: str) -> tuple[Endpoint, ...]:
    svc = kube.get("v1", "Service", namespace, service)
    selector = ((svc or {}).get("spec") or {}).get("selector")
    if not selector:
        return ()  # a Service without a selector has no endpoints here
    pods = kube.list("v1", "Pod", namespace, selector)
    return tuple(
        Endpoint(
            p["status"]["podIP"], p["metadata"]["name"], (p["metadata"].get("labels") or {}).get(REVISION_LABEL, "")
        )
        for p in pods
        if _ready(p)
    )


def resolve(kube: KubeClient, namespace: str, name: str) -> RouteTable:
    """The current route table of ModelDeployment ``name`` (its model name and weighted backends)."""
    md = kube.get("serving.modeldeploy.dev/v1alpha1", "ModelDeployment", namespace, name) or {}
    model = ((md.get("spec") or {}).get("model") or {}).get("name") or name
    # None also when the Gateway API is not installed (the kind is unknown: 404).
    route = kube.get("gateway.networking.k8s.io/v1", "HTTPRoute", namespace, name)
    if route is not None:
        refs = [ref for rule in (route.get("spec") or {}).get("rules") or [] for ref in rule.get("backendRefs") or []]
        backends = tuple(
            Backend(str(ref["name"]), int(ref.get("weight", 1)), _endpoints(kube, namespace, str(ref["name"])))
            for ref in refs
        )
        return RouteTable(model, backends)
    return RouteTable(model, (Backend(name, 1, _endpoints(kube, namespace, name)),))
