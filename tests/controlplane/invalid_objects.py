"""Invalid ModelDeployments, as data: each case is a JSON merge patch (RFC 7386) to :data:`BASE`.

``APISERVER_CASES`` must be refused by the API server itself (422) with a message naming the field:
the CRD's schema, its CEL rules and its cross-field rules. ``OPERATOR_LEVEL_CASES`` are what the CRD
cannot express (``modeldeploy.api.semantics``): the API server accepts them, and the operator must
report them as ``Stalled=True`` with reason ``InvalidSpec`` and a message naming the field.
"""

from __future__ import annotations

import copy
from typing import Any, NamedTuple

from modeldeploy.api import API_VERSION, KIND

DIGEST = "sha256:" + "ab" * 32
BASE: dict[str, Any] = {
    "apiVersion": API_VERSION,
    "kind": KIND,
    "metadata": {"name": "resnet"},
    "spec": {
        "model": {"uri": "https://models.example/resnet/3/model.onnx", "digest": DIGEST},
        "resources": {"requests": {"cpu": "1", "memory": "2Gi"}},
        "autoscaling": {"minReplicas": 1, "maxReplicas": 4, "metrics": [{"type": "cpu", "targetUtilization": 70}]},
        "rollout": {"steps": [{"weight": 10, "pause": "30s"}, {"weight": 50, "pause": "30s"}]},
    },
}


class Case(NamedTuple):
    id: str
    patch: dict[str, Any]
    field: str
    """The field path the refusal must name, as `kubectl explain` spells it."""
    message: str = ""
    """A fragment the message must contain as well (empty: the field path is enough)."""


def at(path: str, value: Any) -> dict[str, Any]:
    """`at("spec.model.digest", None)` -> `{"spec": {"model": {"digest": None}}}` (None deletes)."""
    patch: Any = value
    for part in reversed(path.split(".")):
        patch = {part: patch}
    return dict(patch)


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: objects merge, null deletes, everything else (lists too) replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


def build(case: Case, namespace: str | None = None) -> dict[str, Any]:
    obj: dict[str, Any] = merge_patch(copy.deepcopy(BASE), case.patch)  # never share the base
    if namespace:
        obj["metadata"]["namespace"] = namespace
    return obj


def _check(**fields: Any) -> dict[str, Any]:
    return at("spec.rollout.analysis.checks", [fields])


CHECK = "spec.rollout.analysis.checks[0]"
SUCCESS = {"metric": "successRate", "min": 0.99}
PROMETHEUS = {"type": "prometheus", "address": "http://prometheus.monitoring:9090"}

APISERVER_CASES: list[Case] = [
    # spec.model
    Case("model-missing", at("spec.model", None), "spec.model", "Required value"),
    Case("uri-missing", at("spec.model.uri", None), "spec.model.uri", "Required value"),
    Case("uri-bad-scheme", at("spec.model.uri", "ftp://host/m.onnx"), "spec.model.uri", "should match"),
    Case("uri-too-long", at("spec.model.uri", "https://h/" + "m" * 2048), "spec.model.uri", "Too long"),
    Case("digest-not-sha256", at("spec.model.digest", "md5:abc"), "spec.model.digest", "should match"),
    Case("digest-uppercase", at("spec.model.digest", "sha256:" + "AB" * 32), "spec.model.digest", "should match"),
    Case("digest-missing", at("spec.model.digest", None), "spec.model.digest",
         "digest is required unless allowUnverified is true"),
    Case("oci-refused", at("spec.model.uri", "oci://registry/model:latest"), "spec.model.uri",
         "oci:// model sources are not supported"),
    Case("format-unknown", at("spec.model.format", "pickle"), "spec.model.format", "Unsupported value"),
    Case("version-zero", at("spec.model.version", 0), "spec.model.version", "greater than or equal to 1"),
    Case("version-a-string", at("spec.model.version", "3"), "spec.model.version", "must be of type integer"),
    Case("model-name-bad", at("spec.model.name", "-resnet"), "spec.model.name", "should match"),
    Case("allow-unverified-a-string", at("spec.model.allowUnverified", "yes"), "spec.model.allowUnverified",
         "must be of type boolean"),
    # spec.runtime
    Case("plan-on-onnx-runtime", at("spec.model.format", "tensorrt_plan"), "spec.runtime.kind",
         "model.format tensorrt_plan and torchscript need runtime.kind triton"),
    Case("runtime-unknown", at("spec.runtime.kind", "vllm"), "spec.runtime.kind", "Unsupported value"),
    Case("image-too-long", at("spec.runtime.image", "r/" + "i" * 511), "spec.runtime.image", "Too long"),
    Case("max-batch-zero", at("spec.runtime.batching", {"maxBatchSize": 0}), "spec.runtime.batching.maxBatchSize",
         "greater than or equal to 1"),
    Case("preferred-batch-above-max", at("spec.runtime.batching", {"maxBatchSize": 4, "preferredBatchSizes": [8]}),
         "spec.runtime.batching.preferredBatchSizes", "preferredBatchSizes must not exceed maxBatchSize"),
    Case("env-name-bad", at("spec.runtime.env", [{"name": "1X", "value": "v"}]), "spec.runtime.env[0].name",
         "should match"),
    Case("env-test-faults-flag", at("spec.runtime.env", [{"name": "MODELSERVER_TEST_FAULTS", "value": "1"}]),
         "spec.runtime.env[0].name", "MODELSERVER_TEST_FAULTS is reserved"),
    Case("env-too-many", at("spec.runtime.env", [{"name": f"V{i}"} for i in range(65)]), "spec.runtime.env",
         "Too many"),
    # spec.resources
    Case("gpu-count-zero", at("spec.resources.gpu", {"count": 0}), "spec.resources.gpu.count",
         "greater than or equal to 1"),
    Case("gpu-count-too-high", at("spec.resources.gpu", {"count": 17}), "spec.resources.gpu.count",
         "less than or equal to 16"),
    Case("gpu-resource-not-nvidia", at("spec.resources.gpu", {"resourceName": "amd.com/gpu"}),
         "spec.resources.gpu.resourceName", "should match"),
    Case("gpu-product-with-space", at("spec.resources.gpu", {"product": "A100 80GB"}), "spec.resources.gpu.product",
         "should match"),
    Case("quantity-bad", at("spec.resources.requests", {"cpu": "lots"}), "spec.resources.requests.cpu",
         "should match"),
    Case("node-selector-value-too-long", at("spec.resources.nodeSelector", {"zone": "z" * 64}),
         "spec.resources.nodeSelector.zone", "Too long"),
    Case("toleration-operator-unknown", at("spec.resources.tolerations", [{"key": "k", "operator": "In"}]),
         "spec.resources.tolerations[0].operator", "Unsupported value"),
    Case("toleration-effect-unknown", at("spec.resources.tolerations", [{"key": "k", "effect": "Evict"}]),
         "spec.resources.tolerations[0].effect", "Unsupported value"),
    Case("toleration-seconds-negative", at("spec.resources.tolerations", [{"key": "k", "tolerationSeconds": -1}]),
         "spec.resources.tolerations[0].tolerationSeconds", "greater than or equal to 0"),
    # spec.autoscaling
    Case("max-replicas-below-min", at("spec.autoscaling.minReplicas", 9), "spec.autoscaling.maxReplicas",
         "maxReplicas must be >= minReplicas"),
    Case("min-replicas-zero", at("spec.autoscaling.minReplicas", 0), "spec.autoscaling.minReplicas",
         "greater than or equal to 1"),
    Case("max-replicas-too-high", at("spec.autoscaling.maxReplicas", 1001), "spec.autoscaling.maxReplicas",
         "less than or equal to 1000"),
    Case("metric-duplicate", at("spec.autoscaling.metrics", [{"type": "cpu", "targetUtilization": 50},
                                                            {"type": "cpu", "targetUtilization": 60}]),
         "spec.autoscaling.metrics", "each metric type may appear only once"),
    Case("metric-type-unknown", at("spec.autoscaling.metrics", [{"type": "gpu", "targetUtilization": 50}]),
         "spec.autoscaling.metrics[0].type", "Unsupported value"),
    Case("queue-time-without-target", at("spec.autoscaling.metrics", [{"type": "queueTime"}]),
         "spec.autoscaling.metrics[0]", "queueTime needs targetAverageMicroseconds"),
    Case("cpu-without-utilization", at("spec.autoscaling.metrics", [{"type": "cpu", "targetAverageMicroseconds": 9}]),
         "spec.autoscaling.metrics[0]", "cpu and memory metrics need targetUtilization"),
    Case("utilization-over-100", at("spec.autoscaling.metrics", [{"type": "cpu", "targetUtilization": 150}]),
         "spec.autoscaling.metrics[0].targetUtilization", "less than or equal to 100"),
    Case("metrics-too-many", at("spec.autoscaling.metrics", [{"type": "cpu", "targetUtilization": 50}] * 9),
         "spec.autoscaling.metrics", "Too many"),
    # spec.rollout
    Case("strategy-unknown", at("spec.rollout.strategy", "bluegreen"), "spec.rollout.strategy", "Unsupported value"),
    Case("canary-without-steps", at("spec.rollout.steps", []), "spec.rollout.steps",
         "a canary rollout needs at least one step"),
    Case("steps-too-many", at("spec.rollout.steps", [{"weight": w} for w in range(1, 22)]), "spec.rollout.steps",
         "Too many"),
    Case("step-weight-over-100", at("spec.rollout.steps", [{"weight": 120}]), "spec.rollout.steps[0].weight",
         "less than or equal to 100"),
    Case("step-weight-zero", at("spec.rollout.steps", [{"weight": 0}]), "spec.rollout.steps[0].weight",
         "greater than or equal to 1"),
    Case("step-weight-missing", at("spec.rollout.steps", [{"pause": "1m"}]), "spec.rollout.steps[0].weight",
         "Required value"),
    Case("step-pause-bad", at("spec.rollout.steps", [{"weight": 10, "pause": "soon"}]),
         "spec.rollout.steps[0].pause", "should match"),
    Case("step-pause-a-number", at("spec.rollout.steps", [{"weight": 10, "pause": 30}]),
         "spec.rollout.steps[0].pause", "must be of type string"),
    Case("deadline-too-short", at("spec.rollout.progressDeadlineSeconds", 5), "spec.rollout.progressDeadlineSeconds",
         "greater than or equal to 30"),
    Case("scale-down-delay-too-long", at("spec.rollout.scaleDownDelaySeconds", 3601),
         "spec.rollout.scaleDownDelaySeconds", "less than or equal to 3600"),
    Case("router-unknown", at("spec.rollout.traffic", {"router": "istio"}), "spec.rollout.traffic.router",
         "Unsupported value"),
    Case("gateway-router-without-gateway", at("spec.rollout.traffic", {"router": "gatewayAPI"}),
         "spec.rollout.traffic.gateway", "router gatewayAPI needs gateway.parentRefs"),
    Case("gateway-without-parent-refs", at("spec.rollout.traffic", {"router": "gatewayAPI",
                                                                    "gateway": {"parentRefs": []}}),
         "spec.rollout.traffic.gateway.parentRefs", "should have at least 1 items"),
    Case("parent-ref-without-name", at("spec.rollout.traffic", {"router": "gatewayAPI",
                                                                "gateway": {"parentRefs": [{"namespace": "gw"}]}}),
         "spec.rollout.traffic.gateway.parentRefs[0].name", "Required value"),
    Case("prometheus-without-address", at("spec.rollout.analysis.provider", {"type": "prometheus"}),
         "spec.rollout.analysis.provider.address", "provider type prometheus needs address"),
    Case("prometheus-address-not-http", at("spec.rollout.analysis.provider",
                                           {"type": "prometheus", "address": "prometheus:9090"}),
         "spec.rollout.analysis.provider.address", "should match"),
    Case("provider-unknown", at("spec.rollout.analysis.provider", {"type": "datadog"}),
         "spec.rollout.analysis.provider.type", "Unsupported value"),
    Case("interval-bad", at("spec.rollout.analysis.interval", "30"), "spec.rollout.analysis.interval",
         "should match"),
    Case("failure-limit-zero", at("spec.rollout.analysis.failureLimit", 0), "spec.rollout.analysis.failureLimit",
         "greater than or equal to 1"),
    Case("min-samples-zero", at("spec.rollout.analysis.minSamples", 0), "spec.rollout.analysis.minSamples",
         "greater than or equal to 1"),
    Case("checks-too-many", at("spec.rollout.analysis.checks", [SUCCESS] * 17), "spec.rollout.analysis.checks",
         "Too many"),
    Case("check-metric-and-query", _check(metric="successRate", query="up", name="x", min=0.9), CHECK,
         "set exactly one of metric or query"),
    Case("check-neither-metric-nor-query", _check(name="x", min=0.9), CHECK, "set exactly one of metric or query"),
    Case("check-query-without-name", _check(query="up", max=1), f"{CHECK}.name", "a check with a query needs a name"),
    Case("check-without-bound", _check(metric="latencyP99"), CHECK, "must validate at least one schema (anyOf)"),
    Case("check-max-drop-on-latency", _check(metric="latencyP99", maxDrop=0.1), f"{CHECK}.maxDrop",
         "maxDrop applies to metric successRate only"),
    Case("check-max-drop-over-1", _check(metric="successRate", maxDrop=1.5), f"{CHECK}.maxDrop",
         "less than or equal to 1"),
    Case("check-max-ratio-zero", _check(metric="latencyP99", maxRatio=0), f"{CHECK}.maxRatio", "greater than 0"),
    Case("check-metric-unknown", _check(metric="throughput", min=1), f"{CHECK}.metric", "Unsupported value"),
    Case("check-name-bad", _check(name="1st", metric="successRate", min=0.9), f"{CHECK}.name", "should match"),
    Case("check-max-not-a-duration", _check(metric="latencyP99", max="soon"), f"{CHECK}.max", "should match"),
    Case("check-max-an-object", _check(metric="latencyP99", max={"value": 1}), f"{CHECK}.max"),
    Case("check-max-a-list", _check(metric="latencyP99", max=[1]), f"{CHECK}.max"),
    Case("check-max-a-boolean", _check(metric="latencyP99", max=True), f"{CHECK}.max"),
    Case("check-min-a-string", _check(metric="successRate", min="high"), f"{CHECK}.min", "must be of type number"),
    # spec.rollout.gates
    Case("smoke-test-without-config-map", at("spec.rollout.gates.smokeTest", {"tolerance": 0.1}),
         "spec.rollout.gates.smokeTest.configMapRef", "Required value"),
    Case("smoke-test-tolerance-negative", at("spec.rollout.gates.smokeTest", {"configMapRef": {"name": "golden"},
                                                                              "tolerance": -1}),
         "spec.rollout.gates.smokeTest.tolerance", "greater than or equal to 0"),
    Case("signature-gate-a-string", at("spec.rollout.gates.signature", "yes"), "spec.rollout.gates.signature",
         "must be of type boolean"),
]

OPERATOR_LEVEL_CASES: list[Case] = [
    Case("name-too-long", at("metadata.name", "m" * 60), "metadata.name", "at most 57 characters"),
    Case("name-starts-with-digit", at("metadata.name", "3d-unet"), "metadata.name", "must start with a letter"),
    Case("step-weights-not-increasing", at("spec.rollout.steps", [{"weight": 50}, {"weight": 20}]),
         "spec.rollout.steps[1].weight", "weights must increase"),
    Case("deadline-shorter-than-steps", at("spec.rollout.progressDeadlineSeconds", 45),
         "spec.rollout.progressDeadlineSeconds", "45s is shorter than the longest step needs"),
    Case("interval-below-1s", at("spec.rollout.analysis.interval", "500ms"), "spec.rollout.analysis.interval",
         "must be at least 1s"),
    Case("limit-below-request", at("spec.resources.limits", {"cpu": "500m"}), "spec.resources.limits.cpu",
         "500m is below the request 1"),
    Case("gpu-in-limits", at("spec.resources.limits", {"nvidia.com/gpu": 1}), "spec.resources.limits.nvidia.com/gpu",
         "request GPUs with spec.resources.gpu"),
    Case("gpu-in-requests", at("spec.resources.requests", {"nvidia.com/gpu": 1}),
         "spec.resources.requests.nvidia.com/gpu", "request GPUs with spec.resources.gpu"),
    Case("utilization-without-request", at("spec.resources.requests", None), "spec.autoscaling.metrics[0]",
         "cpu utilization needs spec.resources.requests.cpu"),
    Case("env-duplicate", at("spec.runtime.env", [{"name": "A", "value": "1"}, {"name": "A"}]),
         "spec.runtime.env[1].name", "duplicate variable A"),
    Case("latency-bound-not-a-duration", _check(metric="latencyP99", max=3), f"{CHECK}.max",
         "latencyP99 bounds are durations"),
    Case("success-rate-bound-a-duration", _check(metric="successRate", max="1s"), f"{CHECK}.max",
         "successRate bounds are fractions between 0 and 1"),
    Case("success-rate-above-one", _check(metric="successRate", min=99), f"{CHECK}.min",
         "successRate is a fraction between 0 and 1"),
    Case("query-on-direct-provider", _check(name="errors", query="sum(up)", max=1), f"{CHECK}.query",
         "custom queries need rollout.analysis.provider.type prometheus"),
    Case("check-min-above-max", _check(name="score", metric="successRate", min=0.9, max="0.5"), f"{CHECK}.min",
         "0.9 is above max 0.5"),
    # The operator's Prometheus access sees every namespace: a custom query may read its own only.
    Case("query-reads-another-namespace",
         at("spec.rollout.analysis", {"provider": PROMETHEUS, "checks": [
             {"name": "q", "query": 'sum(up{namespace="kube-system"})', "max": 1}]}),
         f"{CHECK}.query", 'must select namespace="{{namespace}}" exactly'),
]
