"""The chart lints, renders with default and non-default values, and every object is schema-valid."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import helm_python
import kubernetes_validate
import pytest
import yaml

from .rendering import (
    CHART,
    FULL_VALUES,
    MONITORING_KINDS,
    NAMESPACE,
    ROOT,
    by_kind,
    one,
    operator_container,
    render,
    render_files,
)

VALUE_SETS = {"default": None, "full": FULL_VALUES}


def test_lint_has_no_warnings_or_errors() -> None:
    for values in (None, FULL_VALUES):
        report = helm_python.lint(CHART, values, strict=True, kube_version="v1.30.0")
        problems = [m for m in report["messages"] if m["severity"] >= 2]
        assert problems == [] and report["errors"] == [], report


def test_chart_metadata() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["apiVersion"] == "v2"
    assert chart["appVersion"] == "0.1.0"
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert f'version = "{chart["appVersion"]}"' in pyproject, "appVersion must be the package version"


def _validate_monitor(obj: dict[str, Any]) -> None:
    assert obj["apiVersion"] == "monitoring.coreos.com/v1"
    assert set(obj) == {"apiVersion", "kind", "metadata", "spec"}
    spec = obj["spec"]
    assert spec["selector"]["matchLabels"]
    endpoints = spec["endpoints" if obj["kind"] == "ServiceMonitor" else "podMetricsEndpoints"]
    assert endpoints and all(e["port"] == "metrics" and e["path"] == "/metrics" for e in endpoints)
    for endpoint in endpoints:
        for relabel in endpoint.get("relabelings", []):
            assert set(relabel) <= {"sourceLabels", "targetLabel", "action", "regex", "replacement"}


@pytest.mark.parametrize("values", VALUE_SETS.values(), ids=VALUE_SETS.keys())
def test_every_object_validates_against_kubernetes_1_30(values: dict[str, Any] | None) -> None:
    objects = render(values)
    assert objects
    for obj in objects:
        if obj["kind"] in MONITORING_KINDS:
            _validate_monitor(obj)
        elif obj["apiVersion"] == "kopf.dev/v1":
            assert obj["kind"] in ("ClusterKopfPeering", "KopfPeering") and set(obj) == {"apiVersion", "kind",
                                                                                         "metadata"}
        else:
            kubernetes_validate.validate(obj, "1.30", strict=True)
        assert obj["metadata"]["labels"]["app.kubernetes.io/part-of"] == "modeldeploy"


def test_default_render_has_exactly_the_core_objects() -> None:
    kinds = sorted(obj["kind"] for obj in render())
    assert kinds == sorted(["ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Deployment", "Service",
                            "ClusterKopfPeering", "NetworkPolicy",
                            "Role", "RoleBinding"])  # the operator's own token for token-checked models


def test_full_render_has_every_optional_object() -> None:
    objects = render(FULL_VALUES)
    kinds = sorted(obj["kind"] for obj in objects)
    assert kinds == sorted(["ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "Role", "RoleBinding",
                            "RoleBinding", "Role", "RoleBinding", "Deployment", "Service", "KopfPeering",
                            "KopfPeering", "ServiceMonitor",
                            "PodMonitor", "ConfigMap", "NetworkPolicy", "NetworkPolicy", "NetworkPolicy"])
    assert {obj["metadata"]["namespace"] for obj in by_kind(objects, "KopfPeering")} == {"ml", "risk"}


def test_crds_are_the_generated_ones_byte_for_byte() -> None:
    name = "serving.modeldeploy.dev_modeldeployments.yaml"
    assert (CHART / "crds" / name).read_bytes() == (ROOT / "crds" / name).read_bytes(), (
        "charts/modeldeploy/crds/ is stale: copy crds/" + name)
    assert sorted(path.name for path in (CHART / "crds").iterdir()) == ["kopf-peerings.yaml", name]


def test_kopf_peering_crds_are_valid_and_scoped() -> None:
    documents = [doc for doc in yaml.safe_load_all((CHART / "crds" / "kopf-peerings.yaml").read_text()) if doc]
    scopes = {doc["metadata"]["name"]: doc["spec"]["scope"] for doc in documents}
    assert scopes == {"clusterkopfpeerings.kopf.dev": "Cluster", "kopfpeerings.kopf.dev": "Namespaced"}
    for doc in documents:
        kubernetes_validate.validate(doc, "1.30", strict=True)
        version = doc["spec"]["versions"][0]
        assert version["name"] == "v1" and version["served"] and version["storage"]
        # kopf merge-patches the peers into .status of the object itself (no status subresource).
        assert "subresources" not in version
        status = version["schema"]["openAPIV3Schema"]["properties"]["status"]
        assert status["x-kubernetes-preserve-unknown-fields"] is True


def test_chart_loads_both_crd_files() -> None:
    with helm_python.Chart.load(CHART) as chart:
        assert sorted(Path(crd["filename"]).name for crd in chart.crds) == [
            "kopf-peerings.yaml", "serving.modeldeploy.dev_modeldeployments.yaml"]


@pytest.mark.parametrize("bad", [
    {"replicaCount": 2},
    {"image": {"repository": "x", "digest": "sha256:00"}},
    {"networkPolicy": {"enabled": True, "egress": []}},
    {"watchNamespaces": ["Not_A_Namespace"]},
    {"replicas": 0},
    {"operator": {"extraArgs": ["--all-namespaces"]}},
    {"operator": {"metricsPort": 8081}},
    {"serviceMonitor": {"enabled": "yes"}},
])
def test_schema_refuses_unknown_or_invalid_values(bad: dict[str, Any]) -> None:
    with helm_python.Chart.load(CHART) as chart, pytest.raises(helm_python.HelmError):
        chart.render(values=bad, name="modeldeploy", namespace=NAMESPACE)


def test_schema_is_strict_everywhere() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    loose = ("global", "affinity", "tolerations", "extraEnv", "extraEgress", "matchExpressions")

    def walk(node: dict[str, Any], path: str) -> list[str]:
        found = []
        if node.get("type") == "object" and "properties" in node and node.get("additionalProperties") is not False:
            found.append(path)
        for name, child in node.get("properties", {}).items():
            if not name.endswith(loose):
                found += walk(child, f"{path}.{name}")
        return found

    assert walk(schema, "") == []
    defaults = yaml.safe_load((CHART / "values.yaml").read_text())
    assert set(defaults) <= set(schema["properties"])


def test_notes_name_the_scope() -> None:
    assert "every namespace" in render_files()["modeldeploy/templates/NOTES.txt"]
    assert "ml, risk" in render_files(FULL_VALUES)["modeldeploy/templates/NOTES.txt"]


def test_dashboard_configmap_carries_the_committed_json() -> None:
    configmap = one(render(FULL_VALUES), "ConfigMap")
    assert configmap["metadata"]["namespace"] == "grafana"
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
    committed = json.loads((CHART / "dashboards" / "modeldeploy.json").read_text())
    assert json.loads(configmap["data"]["modeldeploy.json"]) == committed


def test_operator_container_args_default_and_namespaced() -> None:
    assert operator_container(render())["args"] == ["--all-namespaces", "--log-format=json"]
    assert operator_container(render(FULL_VALUES))["args"] == [
        "--namespace=ml", "--namespace=risk", "--verbose", "--log-format=plain"]
