"""Services: one per revision (canary analysis, Gateway API backends) and the main one users call."""

from __future__ import annotations

from typing import Any

from .labels import Owner, child_labels, object_meta, selector
from .ports import PORTS

USER_PORTS = ("http", "grpc")  # metrics are scraped per pod/revision, never through the main Service


def _ports(names: tuple[str, ...]) -> list[dict[str, Any]]:
    return [{"name": port_name, "port": PORTS[port_name][0], "targetPort": port_name,
             "protocol": "TCP", "appProtocol": PORTS[port_name][1]} for port_name in names]


def render_revision_service(*, name: str, namespace: str, revision: str, role: str,
                            owner: Owner) -> dict[str, Any]:
    """Service `revision` selecting exactly that revision's pods."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": object_meta(revision, namespace, owner, child_labels(name, revision, role)),
        "spec": {"type": "ClusterIP", "selector": selector(name, revision), "ports": _ports(tuple(PORTS))},
    }


def render_main_service(*, name: str, namespace: str, owner: Owner,
                        selector: dict[str, str]) -> dict[str, Any]:
    """Service `name`, the stable endpoint; the traffic router decides which revisions it selects."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": object_meta(name, namespace, owner, child_labels(name, None, None)),
        "spec": {"type": "ClusterIP", "selector": dict(selector), "ports": _ports(USER_PORTS)},
    }
