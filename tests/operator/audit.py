"""The operator's own requests, as the apiserver's audit log recorded them (its ServiceAccount's group only).

Tests count what the operator did with these, instead of sleeping to see that nothing happens:

    since = mark(cluster)                      # a byte offset into the log: later reads parse only the rest
    ...
    creates = count(operator_calls(cluster, namespace, since), "create", "deployments", 201)
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from modeldeploy_sandbox.cluster import LocalCluster

WRITES = ("create", "update", "patch", "delete")


@dataclasses.dataclass(frozen=True)
class Call:
    verb: str
    resource: str
    subresource: str
    name: str
    code: int
    user_agent: str
    user: str = ""  # system:serviceaccount:<namespace>:<name>: tells the shards' operators apart

    @property
    def write(self) -> bool:
        return self.verb in WRITES


def mark(cluster: LocalCluster) -> int:
    try:
        return cluster.control_plane.audit_log.stat().st_size
    except OSError:
        return 0


def _events(cluster: LocalCluster, since: int) -> list[dict[str, Any]]:
    try:
        with open(cluster.control_plane.audit_log, "rb") as log:
            log.seek(since)
            text = log.read().decode(errors="replace")
    except OSError:
        return []
    return [json.loads(line) for line in text.splitlines() if line.strip().endswith("}")]


def operator_calls(cluster: LocalCluster, namespace: str, since: int = 0) -> list[Call]:
    """Completed requests of the operator in ``namespace`` after ``since`` (watches: once, when they end)."""
    calls = []
    for event in _events(cluster, since):
        ref = event.get("objectRef") or {}
        if event.get("stage") != "ResponseComplete" or ref.get("namespace") != namespace:
            continue
        calls.append(Call(event.get("verb", ""), ref.get("resource", ""), ref.get("subresource", ""),
                          ref.get("name", ""), int((event.get("responseStatus") or {}).get("code") or 0),
                          event.get("userAgent", ""), (event.get("user") or {}).get("username", "")))
    return calls


def forbidden(cluster: LocalCluster, since: int = 0) -> list[str]:
    """The operator's requests that the chart's RBAC refused (403) after ``since``."""
    return [f"{e.get('verb')} {e.get('requestURI')}" for e in _events(cluster, since)
            if (e.get("responseStatus") or {}).get("code") == 403]


def count(calls: list[Call], verb: str, resource: str, code: int | None = None, subresource: str = "") -> int:
    return sum(1 for c in calls if c.verb == verb and c.resource == resource and c.subresource == subresource
               and (code is None or c.code == code))


def settled(status: dict[str, Any], generation: int) -> bool:
    """Healthy, with ``generation`` reconciled and nothing left to do (phase alone lags on an error)."""
    reconciling = [c.get("status") for c in status.get("conditions") or [] if c.get("type") == "Reconciling"]
    return (status.get("phase") == "Healthy" and status.get("observedGeneration") == generation
            and reconciling == ["False"])
