"""What a user (kubectl) and an auditor (the apiserver's audit log) see of a ModelDeployment."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from modeldeploy.kubeapi import KubeClient
from modeldeploy_sandbox.cluster import LocalCluster
from modeldeploy_sandbox.sandbox import Sandbox

TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io"
WRITE_VERBS = {"create", "update", "patch", "delete", "deletecollection"}


def condition(status: dict[str, Any], kind: str) -> dict[str, Any]:
    return next((c for c in status.get("conditions") or [] if c.get("type") == kind), {})


def stalled_with(reason: str) -> Any:
    """A wait_for predicate: Stalled=True with `reason`."""
    return lambda status: condition(status, "Stalled").get("status") == "True" and (
        condition(status, "Stalled").get("reason") == reason)


def printed_row(kube: KubeClient, namespace: str, name: str) -> dict[str, Any]:
    """The row `kubectl get mdep NAME` prints, as the apiserver serves it (printer columns)."""
    table = kube.request("GET", f"/apis/serving.modeldeploy.dev/v1alpha1/namespaces/{namespace}/modeldeployments",
                         accept=TABLE)
    columns = [column["name"] for column in table["columnDefinitions"]]
    for row in table["rows"]:
        if row["cells"][0] == name:
            return dict(zip(columns, row["cells"], strict=True))
    raise AssertionError(f"no row for {name} in {table['rows']}")


def warnings(sb: Sandbox, name: str, reason: str) -> list[str]:
    """Messages of the Warning Events about ModelDeployment `name` with `reason`."""
    return [event.get("message", "") for event in sb.events(name)
            if event.get("type") == "Warning" and event.get("reason") == reason
            and event.get("involvedObject", {}).get("kind") == "ModelDeployment"]


def operator_requests(cluster: LocalCluster, namespace: str) -> list[dict[str, Any]]:
    """The operator's requests into `namespace`, from the apiserver's audit log, oldest first."""
    return [event for event in cluster.control_plane.audit_events()
            if f"/namespaces/{namespace}/" in event.get("requestURI", "")]


def writes(events: list[dict[str, Any]], resource: str | None = None) -> list[dict[str, Any]]:
    """Write requests (optionally of one resource, e.g. "deployments"), Events excluded."""
    return [event for event in events if event.get("verb") in WRITE_VERBS
            and (event.get("objectRef") or {}).get("resource") != "events"
            and (resource is None or (event.get("objectRef") or {}).get("resource") == resource)]


def received_at(event: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(event["requestReceivedTimestamp"].replace("Z", "+00:00"))


def metric(text: str, name: str, **labels: str) -> float:
    """The sum of the samples `name` with `labels` in the operator's /metrics text (0 when absent)."""
    return sum(sample.value for family in text_string_to_metric_families(text) for sample in family.samples
               if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()))
