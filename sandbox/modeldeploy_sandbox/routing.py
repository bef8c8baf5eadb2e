"""Where a request to a ModelDeployment goes, as the cluster's data plane decides it.

- ``service`` router: the main Service ``<name>``; kube-proxy picks one of its ready endpoints
  uniformly, so traffic splits by replica ratio.
- ``gatewayAPI`` router: if an HTTPRoute ``<name>`` exists, a backendRef is picked by weight, then one
  ready endpoint of that backend Service.

Endpoints are what the EndpointSlice controller published for the Service (label
``kubernetes.io/service-name``): ready, not terminating. Their addresses are pod IPs; requests go to
their loopback twins (:func:`modeldeploy_sandbox.network.loopback_for`), never anywhere else.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Mapping

from modeldeploy.kubeapi import KubeClient
from modeldeploy.render.labels import REVISION_LABEL
from modeldeploy_sandbox.network import loopback_for

SERVICE_NAME_LABEL = "kubernetes.io/service-name"


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


def _endpoints(kube: KubeClient, namespace: str, service: str, revisions: Mapping[str, str]) -> tuple[Endpoint, ...]:
    """The ready endpoints of ``service``; ``revisions`` maps pod names to their revision label."""
    slices = kube.list("discovery.k8s.io/v1", "EndpointSlice", namespace, {SERVICE_NAME_LABEL: service})
    found: dict[str, Endpoint] = {}  # an address may be in two slices while the controller moves it
    for endpoint_slice in slices:
        for endpoint in endpoint_slice.get("endpoints") or []:
            conditions = endpoint.get("conditions") or {}
            if conditions.get("ready") is False or conditions.get("terminating"):
                continue
            target = endpoint.get("targetRef") or {}
            for address in endpoint.get("addresses") or []:
                found[address] = Endpoint(loopback_for(address), str(target.get("name", "")),
                                          revisions.get(str(target.get("name", "")), ""))
    return tuple(found[address] for address in sorted(found))


def resolve(kube: KubeClient, namespace: str, name: str) -> RouteTable:
    """The current route table of ModelDeployment ``name`` (its model name and weighted backends)."""
    md = kube.get("serving.modeldeploy.dev/v1alpha1", "ModelDeployment", namespace, name) or {}
    model = ((md.get("spec") or {}).get("model") or {}).get("name") or name
    revisions = {p["metadata"]["name"]: (p["metadata"].get("labels") or {}).get(REVISION_LABEL, "")
                 for p in kube.list("v1", "Pod", namespace, {"modeldeploy.dev/name": name})}
    # None also when the Gateway API is not installed (the kind is unknown: 404).
    route = kube.get("gateway.networking.k8s.io/v1", "HTTPRoute", namespace, name)
    if route is not None:
        refs = [ref for rule in (route.get("spec") or {}).get("rules") or [] for ref in rule.get("backendRefs") or []]
        backends = tuple(Backend(str(ref["name"]), int(ref.get("weight", 1)),
                                 _endpoints(kube, namespace, str(ref["name"]), revisions)) for ref in refs)
        return RouteTable(model, backends)
    return RouteTable(model, (Backend(name, 1, _endpoints(kube, namespace, name, revisions)),))
