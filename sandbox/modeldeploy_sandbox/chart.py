"""The Helm chart, rendered by a real Helm engine (``helm_python``), as the sandbox installs it.

The sandbox runs the operator outside the cluster, but with what the chart gives it in a cluster:
the chart's ServiceAccount and RBAC (applied to the control plane, then a TokenRequest token for
that account), and the operator container's arguments and environment.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from typing import Any

import yaml

from modeldeploy_sandbox.binaries import REPO

CHART = REPO / "charts" / "modeldeploy"
RELEASE = "modeldeploy"
RELEASE_NAMESPACE = "modeldeploy-system"
RBAC_KINDS = ("ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding")
# The pod label of a shard's operator Deployment (values `shards`).
SHARD_POD_LABEL = "modeldeploy.dev/operator-shard"


@functools.cache
def _render(values_json: str) -> tuple[dict[str, Any], ...]:
    import helm_python  # a dev dependency: the sandbox is test and demo infrastructure

    with helm_python.Chart.load(CHART) as chart:
        rendered = chart.render(values=json.loads(values_json), name=RELEASE, namespace=RELEASE_NAMESPACE)
    objects: list[dict[str, Any]] = []
    for path, text in sorted(rendered.items()):
        if path.endswith((".yaml", ".yml")):
            objects += [document for document in yaml.safe_load_all(text) if document]
    return tuple(objects)


def render(values: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """Every object the chart's templates render with ``values`` (a fresh copy each call)."""
    return json.loads(json.dumps(list(_render(json.dumps(values or {}, sort_keys=True)))))


def rbac_objects(values: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """The ServiceAccount and the (Cluster)Roles and bindings, with their namespaces filled in."""
    objects = [obj for obj in render(values) if obj["kind"] in RBAC_KINDS]
    for obj in objects:
        if obj["kind"] in ("ServiceAccount", "Role", "RoleBinding"):
            obj["metadata"].setdefault("namespace", RELEASE_NAMESPACE)
    return objects


def operator_deployment(values: Mapping[str, Any] | None = None, shard: str | None = None) -> dict[str, Any]:
    """The operator Deployment; with the chart's ``shards``, the one of shard ``shard`` (by name)."""
    deployments = [obj for obj in render(values) if obj["kind"] == "Deployment"]
    if shard is None and len(deployments) == 1:
        return deployments[0]
    for deployment in deployments:
        if deployment["metadata"]["labels"].get(SHARD_POD_LABEL) == shard:
            return deployment
    names = [d["metadata"]["labels"].get(SHARD_POD_LABEL) for d in deployments]
    raise LookupError(f"the chart renders no operator Deployment of shard {shard!r}; its shards: {names}")


def service_account(values: Mapping[str, Any] | None = None, shard: str | None = None) -> str:
    """The operator's ServiceAccount (with ``shards``: shard ``shard``'s own)."""
    return str(operator_deployment(values, shard)["spec"]["template"]["spec"]["serviceAccountName"])


def operator_container(values: Mapping[str, Any] | None = None, shard: str | None = None) -> dict[str, Any]:
    containers: list[dict[str, Any]] = operator_deployment(values, shard)["spec"]["template"]["spec"]["containers"]
    return containers[0]
