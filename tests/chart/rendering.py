"""Render the Helm chart offline (helm_python: a real Helm engine, no cluster) into objects."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import helm_python
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "modeldeploy"
RELEASE = "modeldeploy"
NAMESPACE = "modeldeploy-system"
MONITORING_KINDS = {"ServiceMonitor", "PodMonitor"}

# Everything optional switched on, namespaced mode.
FULL_VALUES: dict[str, Any] = {
    "watchNamespaces": ["ml", "risk"],
    "replicas": 3,
    "image": {"repository": "registry.example/modeldeploy-operator", "tag": "dev", "pullPolicy": "Never"},
    "runtimeImages": {"modelserver": "registry.example/modelserver:dev",
                      "modelserverGpu": "registry.example/modelserver:dev-gpu",
                      "triton": "nvcr.io/nvidia/tritonserver:24.10-py3"},
    "operator": {"verbose": True, "logFormat": "plain", "resyncSeconds": 120,
                 "extraEnv": [{"name": "TZ", "value": "UTC"}]},
    "serviceMonitor": {"enabled": True, "labels": {"release": "prometheus"}},
    "podMonitor": {"enabled": True, "labels": {"release": "prometheus"}},
    "dashboard": {"enabled": True, "namespace": "grafana"},
    "networkPolicy": {"enabled": True, "apiServer": {"cidrs": ["172.18.0.0/16"], "ports": [6443]}},
    "priorityClassName": "system-cluster-critical",
    "nodeSelector": {"kubernetes.io/os": "linux"},
}


def _values_key(values: dict[str, Any] | None) -> str:
    return yaml.safe_dump(values or {}, sort_keys=True)


@cache
def _render(key: str) -> tuple[tuple[str, str], ...]:
    values = yaml.safe_load(key) or {}
    with helm_python.Chart.load(CHART) as chart:
        rendered = chart.render(values=values, name=RELEASE, namespace=NAMESPACE)
    return tuple(sorted(rendered.items()))


def render_files(values: dict[str, Any] | None = None) -> dict[str, str]:
    """Template path -> rendered text."""
    return dict(_render(_values_key(values)))


def render(values: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Every object the chart renders (templates only: crds/ are not templated)."""
    objects: list[dict[str, Any]] = []
    for path, text in render_files(values).items():
        if not path.endswith((".yaml", ".yml")):
            continue
        objects += [doc for doc in yaml.safe_load_all(text) if doc]
    return objects


def by_kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [obj for obj in objects if obj["kind"] == kind]


def one(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = by_kind(objects, kind)
    assert len(found) == 1, f"expected one {kind}, got {len(found)}"
    return found[0]


def operator_container(objects: list[dict[str, Any]]) -> dict[str, Any]:
    deployment = one(objects, "Deployment")
    containers: list[dict[str, Any]] = deployment["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]
