"""Bad input is refused with a message naming the field: by the CRD schema, its CEL rules, or the operator.

Schema and CEL cases are asserted by running the generated CRD's own rules (defaults, OpenAPI
validation, then each x-kubernetes-validations rule through cel-python), as the API server would.
Operator cases are accepted by the CRD and must be caught by `spec_problems` (Stalled/InvalidSpec).
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from modeldeploy.api.admission import admit
from modeldeploy.api.semantics import spec_problems

DIGEST = "sha256:" + "ab" * 32
VALID: dict[str, Any] = {
    "model": {"uri": "https://models.example/resnet/3/model.onnx", "digest": DIGEST},
    "resources": {"requests": {"cpu": "1", "memory": "2Gi"}},
    "autoscaling": {"minReplicas": 1, "maxReplicas": 4, "metrics": [{"type": "cpu", "targetUtilization": 70}]},
    "rollout": {"steps": [{"weight": 10, "pause": "30s"}, {"weight": 50, "pause": "30s"}]},
}


def with_change(path: str, value: Any) -> dict[str, Any]:
    spec = copy.deepcopy(VALID)
    node = spec
    parts = path.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    if value is DELETE:
        node.pop(parts[-1], None)
    else:
        node[parts[-1]] = value
    return spec


DELETE = object()

# (case id, spec, expected message fragment naming the field)
CRD_CASES = [
    ("no-digest", with_change("model.digest", DELETE), "spec.model.digest: digest is required"),
    ("bad-digest", with_change("model.digest", "md5:abc"), "spec.model.digest"),
    ("bad-uri-scheme", with_change("model.uri", "ftp://host/m.onnx"), "spec.model.uri"),
    ("oci-without-digest", with_change("model.uri", "oci://registry/model:latest"),
     "spec.model.uri: oci:// URIs must pin a digest"),
    ("unknown-format", with_change("model.format", "pickle"), "spec.model.format"),
    ("plan-on-onnx-runtime", with_change("model.format", "tensorrt_plan"),
     "spec.runtime.kind: model.format tensorrt_plan and torchscript need runtime.kind triton"),
    ("preferred-batch-above-max", with_change("runtime.batching", {"maxBatchSize": 4, "preferredBatchSizes": [8]}),
     "spec.runtime.batching.preferredBatchSizes: preferredBatchSizes must not exceed maxBatchSize"),
    ("zero-gpus", with_change("resources.gpu", {"count": 0}), "spec.resources.gpu.count"),
    ("bad-gpu-resource", with_change("resources.gpu", {"resourceName": "amd.com/gpu"}),
     "spec.resources.gpu.resourceName"),
    ("bad-quantity", with_change("resources.requests", {"cpu": "lots"}), "spec.resources.requests.cpu"),
    ("max-below-min", with_change("autoscaling.minReplicas", 9),
     "spec.autoscaling.maxReplicas: maxReplicas must be >= minReplicas"),
    ("duplicate-metric", with_change("autoscaling.metrics", [{"type": "cpu", "targetUtilization": 50},
                                                             {"type": "cpu", "targetUtilization": 60}]),
     "spec.autoscaling.metrics: each metric type may appear only once"),
    ("queue-time-without-target", with_change("autoscaling.metrics", [{"type": "queueTime"}]),
     "spec.autoscaling.metrics[0]: cpu and memory metrics need targetUtilization; queueTime needs"),
    ("utilization-over-100", with_change("autoscaling.metrics", [{"type": "cpu", "targetUtilization": 150}]),
     "spec.autoscaling.metrics[0].targetUtilization"),
    ("canary-without-steps", with_change("rollout.steps", []),
     "spec.rollout.steps: a canary rollout needs at least one step"),
    ("weight-over-100", with_change("rollout.steps", [{"weight": 120}]), "spec.rollout.steps[0].weight"),
    ("bad-pause", with_change("rollout.steps", [{"weight": 10, "pause": "soon"}]), "spec.rollout.steps[0].pause"),
    ("unknown-strategy", with_change("rollout.strategy", "bluegreen"), "spec.rollout.strategy"),
    ("gateway-router-without-gateway", with_change("rollout.traffic", {"router": "gatewayAPI"}),
     "spec.rollout.traffic.gateway: router gatewayAPI needs gateway.parentRefs"),
    ("prometheus-without-address", with_change("rollout.analysis", {"provider": {"type": "prometheus"}}),
     "spec.rollout.analysis.provider.address: provider type prometheus needs address"),
    ("check-metric-and-query", with_change("rollout.analysis", {"checks": [
        {"metric": "successRate", "query": "up", "name": "x", "min": 0.9}]}),
     "spec.rollout.analysis.checks[0]: set exactly one of metric or query"),
    ("query-without-name", with_change("rollout.analysis", {"checks": [{"query": "up", "max": 1}]}),
     "spec.rollout.analysis.checks[0].name: a check with a query needs a name"),
    ("check-without-bound", with_change("rollout.analysis", {"checks": [{"metric": "latencyP99"}]}),
     "spec.rollout.analysis.checks[0]: a check needs at least one bound"),
    ("max-drop-on-latency", with_change("rollout.analysis", {"checks": [{"metric": "latencyP99", "maxDrop": 0.1}]}),
     "spec.rollout.analysis.checks[0].maxDrop: maxDrop applies to metric successRate only"),
    ("failure-limit-zero", with_change("rollout.analysis", {"failureLimit": 0}),
     "spec.rollout.analysis.failureLimit"),
    ("deadline-too-short", with_change("rollout.progressDeadlineSeconds", 5), "spec.rollout.progressDeadlineSeconds"),
]

OPERATOR_CASES = [
    ("weights-not-increasing", "resnet", with_change("rollout.steps", [{"weight": 50}, {"weight": 20}]),
     "spec.rollout.steps[1].weight: weights must increase"),
    ("deadline-shorter-than-steps", "resnet", with_change("rollout.progressDeadlineSeconds", 45),
     "spec.rollout.progressDeadlineSeconds: 45s is shorter than the steps need"),
    ("limit-below-request", "resnet", with_change("resources.limits", {"cpu": "500m"}),
     "spec.resources.limits.cpu: 500m is below the request 1"),
    ("gpu-in-limits", "resnet", with_change("resources.limits", {"nvidia.com/gpu": 1}),
     "spec.resources.limits.nvidia.com/gpu: request GPUs with spec.resources.gpu"),
    ("utilization-without-request", "resnet",
     with_change("autoscaling.metrics", [{"type": "cpu", "targetUtilization": 80},
                                         {"type": "memory", "targetUtilization": 80}]) | {"resources": {}},
     "spec.autoscaling.metrics[0]: cpu utilization needs spec.resources.requests.cpu"),
    ("latency-bound-not-duration", "resnet", with_change("rollout.analysis", {"checks": [
        {"metric": "latencyP99", "max": 3}]}),
     "spec.rollout.analysis.checks[0].max: latencyP99 bounds are durations"),
    ("success-rate-above-one", "resnet", with_change("rollout.analysis", {"checks": [
        {"metric": "successRate", "min": 99}]}),
     "spec.rollout.analysis.checks[0].min: successRate is a fraction between 0 and 1"),
    ("query-on-direct-provider", "resnet", with_change("rollout.analysis", {"checks": [
        {"name": "errors", "query": "sum(up)", "max": 1}]}),
     "spec.rollout.analysis.checks[0].query: custom queries need rollout.analysis.provider.type prometheus"),
    ("min-above-max", "resnet", with_change("rollout.analysis", {"checks": [
        {"name": "score", "metric": "successRate", "min": 0.9, "max": "0.5"}]}),
     "spec.rollout.analysis.checks[0].min: 0.9 is above max 0.5"),
    ("duplicate-env", "resnet", with_change("runtime.env", [{"name": "A", "value": "1"}, {"name": "A"}]),
     "spec.runtime.env[1].name: duplicate variable A"),
    ("name-too-long", "m" * 60, VALID, "metadata.name: at most 57 characters"),
    ("name-starts-with-digit", "3d-unet", VALID, "metadata.name: must start with a letter"),
]


def test_the_valid_spec_passes_every_layer() -> None:
    assert admit({"spec": VALID})[1] == []
    assert spec_problems("resnet", VALID)[1] == []


@pytest.mark.parametrize("case,spec,fragment", CRD_CASES, ids=[case[0] for case in CRD_CASES])
def test_the_crd_refuses(case: str, spec: dict[str, Any], fragment: str) -> None:
    _, errors = admit({"spec": spec})
    assert any(fragment in error for error in errors), errors


@pytest.mark.parametrize("case,name,spec,fragment", OPERATOR_CASES, ids=[case[0] for case in OPERATOR_CASES])
def test_the_operator_refuses_what_the_crd_admits(case: str, name: str, spec: dict[str, Any], fragment: str) -> None:
    assert admit({"spec": spec})[1] == [], "this case belongs to the CRD layer"
    _, problems = spec_problems(name, spec)
    assert any(fragment in problem for problem in problems), problems


def test_there_are_at_least_fifteen_distinct_invalid_specs() -> None:
    assert len({case[0] for case in CRD_CASES} | {case[0] for case in OPERATOR_CASES}) >= 15
