"""Applies (or removes) the NetworkPolicy spec.access renders: the edge of render.access."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .api.spec import ModelDeploymentSpec
from .kubeapi import KubeClient
from .render.access import render_network_policy
from .render.labels import Owner
from .settings import access_peers

API_VERSION, KIND = "networking.k8s.io/v1", "NetworkPolicy"


def reconcile_network_policy(kube: KubeClient, apply: Callable[[dict[str, Any]], None],
                             delete: Callable[[str, str, str, str], None],
                             owner: Owner, spec: ModelDeploymentSpec) -> None:
    """The policy when spec.access is set; none otherwise (a removed spec.access removes it). Deleted only
    when one of ours is there: a quiet reconcile sends no write."""
    desired = render_network_policy(spec, name=owner.name, namespace=owner.namespace, owner=owner,
                                    peers=access_peers())
    if desired is not None:
        apply(desired)
        return
    live = kube.get(API_VERSION, KIND, owner.namespace, owner.name)
    owners = (live or {}).get("metadata", {}).get("ownerReferences") or []
    if any(ref.get("uid") == owner.uid for ref in owners):
        delete(API_VERSION, KIND, owner.namespace, owner.name)
