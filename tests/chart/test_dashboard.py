"""The Grafana dashboard: valid JSON, the promised panels, and only metric names that exist."""

from __future__ import annotations

import json
import re
from typing import Any

from modeldeploy.telemetry import OperatorMetrics
from modelserver.metrics import COUNTERS, HISTOGRAM, PENDING

from .rendering import CHART

DASHBOARD = CHART / "dashboards" / "modeldeploy.json"
PROMQL_WORDS = {"sum", "by", "rate", "increase", "histogram_quantile", "max", "or", "le", "without", "on"}


def known_metric_names() -> set[str]:
    """Every series name modelserver (Triton's names) and the operator expose."""
    names = set(COUNTERS) | {PENDING} | {f"{HISTOGRAM}_{suffix}" for suffix in ("bucket", "sum", "count")}
    for family in OperatorMetrics().registry.collect():
        suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}
        names |= {family.name + suffix for suffix in suffixes[family.type]}
    return names


def metric_names(expr: str) -> set[str]:
    """Metric names of a PromQL expression: label matchers and grouping clauses removed first."""
    stripped = re.sub(r"\{[^}]*\}", "", expr)
    stripped = re.sub(r"\b(by|without|on|ignoring)\s*\([^)]*\)", "", stripped)
    stripped = re.sub(r"\[[^\]]*\]", "", stripped)
    words = set(re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", stripped))
    return {word for word in words if word not in PROMQL_WORDS and not word.startswith("__")}


def load() -> dict[str, Any]:
    dashboard: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return dashboard


def test_dashboard_is_valid_and_has_the_panels() -> None:
    dashboard = load()
    assert dashboard["uid"] and dashboard["title"] and dashboard["schemaVersion"] >= 36
    titles = [panel["title"] for panel in dashboard["panels"]]
    for wanted in ("Request rate", "Success rate", "Latency p99", "Queue time per request", "Canary weight",
                   "Rollout outcomes", "Operator work queue", "Reconcile latency p50 / p99", "Operator API requests",
                   "Watch cache objects"):
        assert wanted in titles
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        assert panel["targets"] and all(target["expr"] for target in panel["targets"])


def test_dashboard_queries_only_existing_metrics() -> None:
    known = known_metric_names()
    dashboard = load()
    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":  # label_values(<series selector>, <label>)
            match = re.fullmatch(r"label_values\((.*),\s*(\w+)\)", variable["query"]["query"])
            assert match, variable
            exprs.append(match.group(1))
    used: set[str] = set()
    for expr in exprs:
        names = metric_names(expr)
        assert names, expr
        assert names <= known, f"unknown metrics {names - known} in {expr}"
        used |= names
    for needed in ("nv_inference_request_success", "nv_inference_request_failure",
                   "nv_inference_request_duration_seconds_bucket", "nv_inference_queue_duration_us",
                   "modeldeploy_canary_weight", "modeldeploy_rollouts_total",
                   # the operator at scale (issue 12): queue, latency, requests, cache
                   "modeldeploy_workqueue_depth", "modeldeploy_reconcile_duration_seconds_bucket",
                   "modeldeploy_api_requests_total", "modeldeploy_cache_objects"):
        assert needed in used


def test_metric_name_extraction_ignores_labels() -> None:
    expr = 'sum by (modeldeploy_name, revision) (rate(nv_inference_count{modeldeploy_name=~"$name"}[5m]))'
    assert metric_names(expr) == {"nv_inference_count"}


def test_dashboard_groups_by_the_pod_monitor_labels() -> None:
    text = DASHBOARD.read_text()
    assert "modeldeploy_name" in text and "revision" in text  # set by the PodMonitor's relabelings
