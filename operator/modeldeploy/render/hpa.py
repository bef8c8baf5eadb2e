"""The HorizontalPodAutoscaler (autoscaling/v2) of the stable revision.

`queueTime` is a Pods metric, `nv_inference_queue_duration_us_per_request`: the average time a
request waited in the server's queue, in microseconds. Triton and modelserver only export the
counters, so a metrics adapter must serve it. The prometheus-adapter rule::

    rules:
      - seriesQuery: 'nv_inference_queue_duration_us{namespace!="",pod!=""}'
        resources:
          overrides:
            namespace: {resource: namespace}
            pod: {resource: pod}
        name:
          matches: "^nv_inference_queue_duration_us$"
          as: "nv_inference_queue_duration_us_per_request"
        metricsQuery: |
          sum(rate(nv_inference_queue_duration_us{<<.LabelMatchers>>}[1m])) by (<<.GroupBy>>)
            / clamp_min(sum(rate(nv_inference_request_success{<<.LabelMatchers>>}[1m]))
                        by (<<.GroupBy>>), 1e-9)

(an idle pod gives 0/1e-9 = 0, not NaN). Without the adapter the HPA reports the metric as
unavailable and scales on its other metrics only.
"""

from __future__ import annotations

import copy
from typing import Any

from modeldeploy.api import ModelDeploymentSpec
from modeldeploy.api.spec import ScalingMetric

from .labels import Owner, child_labels, object_meta

QUEUE_TIME_METRIC = "nv_inference_queue_duration_us_per_request"
DEFAULT_CPU_UTILIZATION = 80


def _metric(metric: ScalingMetric) -> dict[str, Any]:
    if metric.type == "queueTime":
        return {"type": "Pods", "pods": {
            "metric": {"name": QUEUE_TIME_METRIC},
            "target": {"type": "AverageValue", "averageValue": str(metric.target_average_microseconds)},
        }}
    return {"type": "Resource", "resource": {
        "name": metric.type,
        "target": {"type": "Utilization", "averageUtilization": metric.target_utilization},
    }}


def render_hpa(spec: ModelDeploymentSpec, *, name: str, namespace: str, target_deployment: str,
               owner: Owner) -> dict[str, Any]:
    """autoscaling/v2 HPA `name` scaling `target_deployment` (the stable revision)."""
    autoscaling = spec.autoscaling
    metrics = [_metric(metric) for metric in autoscaling.metrics] or [
        _metric(ScalingMetric(type="cpu", target_utilization=DEFAULT_CPU_UTILIZATION))]
    hpa_spec: dict[str, Any] = {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": target_deployment},
        "minReplicas": autoscaling.min_replicas,
        "maxReplicas": autoscaling.max_replicas,
        "metrics": metrics,
    }
    if autoscaling.behavior:
        hpa_spec["behavior"] = copy.deepcopy(autoscaling.behavior)
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": object_meta(name, namespace, owner, child_labels(name, None, None)),
        "spec": hpa_spec,
    }
