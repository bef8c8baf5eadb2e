"""Children the real apiserver refuses (422): the ModelDeployment says so, in the apiserver's words.

Each spec passes our CRD (or is refused right there, which is as good) but renders a Deployment or
an HPA that Kubernetes' own validation refuses. The operator must show that in status (Stalled=True,
InvalidSpec, naming the child, its field and the spec field it came from) and in one Warning Event,
and retry with back-off rather than in a loop.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

from modeldeploy.kubeapi import Invalid
from modeldeploy_sandbox.cluster import LocalCluster
from modeldeploy_sandbox.sandbox import Sandbox, model_deployment
from modeldeploy_sandbox.waiting import wait_until

from .reading import (
    condition,
    metric,
    operator_requests,
    printed_row,
    received_at,
    stalled_with,
    warnings,
    writes,
)


@dataclass(frozen=True)
class Case:
    name: str
    spec: dict[str, Any]
    child: str  # the kind the apiserver refuses
    field: str  # the child's field, as the apiserver names it
    says: str  # the apiserver's words about it
    source: str  # the spec field the operator points at


REQUIRED_WITHOUT_VALUES = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
    "nodeSelectorTerms": [{"matchExpressions": [{"key": "zone", "operator": "In"}]}]}}}
CASES = (
    Case("cpu", {"resources": {"requests": {"cpu": "-1"}}}, "Deployment",
         "spec.template.spec.containers[0].resources.requests[cpu]", "must be greater than or equal to 0",
         "spec.resources"),
    Case("affinity", {"resources": {"affinity": REQUIRED_WITHOUT_VALUES}}, "Deployment",
         "spec.template.spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution"
         ".nodeSelectorTerms[0].matchExpressions[0].values",
         "Required value: must be specified when `operator` is 'In' or 'NotIn'", "spec.resources.affinity"),
    Case("behavior", {"autoscaling": {"minReplicas": 1, "maxReplicas": 2, "behavior": {
        "scaleUp": {"policies": [{"type": "Pods", "value": 0, "periodSeconds": 15}]}}}},
         "HorizontalPodAutoscaler", "spec.behavior.scaleUp.policies[0].value", "must be greater than zero",
         "spec.autoscaling.behavior"),
    Case("node-selector", {"resources": {"nodeSelector": {"bad key!": "x"}}}, "Deployment",
         "spec.template.spec.nodeSelector", "name part must consist of alphanumeric characters",
         "spec.resources.nodeSelector"),
    Case("runtime-class", {"resources": {"runtimeClassName": "Bad_Name"}}, "Deployment",
         "spec.template.spec.runtimeClassName", "a lowercase RFC 1123 subdomain must consist of",
         "spec.resources.runtimeClassName"),
    Case("toleration", {"resources": {"tolerations": [{"key": "a", "operator": "Exists", "value": "x"}]}},
         "Deployment", "spec.template.spec.tolerations[0].operator",
         "value must be empty when `operator` is 'Exists'", "spec.resources.tolerations"),
    Case("hostname", {"rollout": {"strategy": "immediate", "traffic": {"router": "gatewayAPI", "gateway": {
        "parentRefs": [{"name": "public"}], "hostnames": ["Bad_Host!"]}}}},
         "HTTPRoute", "spec.hostnames[0]", 'Invalid value: "Bad_Host!": spec.hostnames[0] in body should match',
         "spec.rollout.traffic.gateway.hostnames"),
)


def _apply(sb: Sandbox, case: Case) -> bool:
    """Apply the case; False when the CRD already refuses it (with the field named)."""
    try:
        sb.apply(model_deployment(case.name, sb.artifacts.linear(f"{case.name}/1/model.onnx"), **case.spec))
    except Invalid as refused:
        assert case.source.rsplit(".", 1)[-1] in refused.message, refused.message
        return False
    return True


def test_each_refused_child_stalls_with_the_apiservers_message_and_one_event(sandbox: Sandbox) -> None:
    reached = [case for case in CASES if _apply(sandbox, case)]
    # Our CRD may learn to refuse some of these itself; the operator's path must still be exercised.
    assert len(reached) >= 3, "the CRD refuses nearly every case: pick inputs that pass it but fail the child"
    for case in reached:
        status = sandbox.wait_for(case.name, stalled_with("InvalidSpec"), 60, f"{case.name} Stalled/InvalidSpec")
        message = condition(status, "Stalled")["message"]
        assert message.startswith(f"the API server refused {case.child} {case.name}"), message
        assert f"(check {case.source}" in message, message
        assert case.field in message and case.says in message, message
        assert status["phase"] == "Failed" and status["message"] == message
        assert condition(status, "Ready")["status"] == "False"
        assert condition(status, "Reconciling")["status"] == "False"
        wait_until(lambda c=case: warnings(sandbox, c.name, "InvalidSpec"), timeout=10,  # type: ignore[misc]
                   message=f"the InvalidSpec Event of {case.name}")
        assert warnings(sandbox, case.name, "InvalidSpec") == [message]
        row = printed_row(sandbox.kube, sandbox.namespace, case.name)
        assert row["Phase"] == "Failed" and row["Ready"] == "False", row


def test_a_refused_child_is_retried_with_growing_back_off_and_recovers_when_the_spec_is_fixed(
        sandbox: Sandbox, cluster: LocalCluster) -> None:
    case = CASES[1]  # affinity: the Deployment itself is refused, so no pod events wake the operator early
    assert _apply(sandbox, case), "the CRD refuses this affinity now: pick another that only Kubernetes refuses"

    def refused_creates() -> list[dict[str, Any]]:
        return [event for event in writes(operator_requests(cluster, sandbox.namespace), "deployments")
                if event["verb"] == "create" and event["responseStatus"]["code"] == 422]

    wait_until(lambda: len(refused_creates()) >= 3, timeout=40, message="three refused Deployment creates")
    at = [received_at(event) for event in refused_creates()[:3]]
    gaps = [(later - earlier).total_seconds() for earlier, later in itertools.pairwise(at)]
    # Back-off 1 s, then 2 s (the first retry may come at once: the watch event of the new object
    # can wake the operator during its first reconcile).
    assert gaps[1] >= 1.8 and gaps[1] >= gaps[0] + 0.5, f"no back-off between retries: {gaps}"
    assert sandbox.operator is not None
    errors = metric(sandbox.operator.metrics(), "modeldeploy_reconciles_total", result="error")
    assert errors >= 3
    # The same error again is neither a new Event nor a new status write.
    assert len(warnings(sandbox, case.name, "InvalidSpec")) == 1
    status_writes = [event for event in writes(operator_requests(cluster, sandbox.namespace), "modeldeployments")
                     if event["objectRef"].get("subresource") == "status"]
    assert len(status_writes) == 1, [event["requestURI"] for event in status_writes]

    sandbox.apply(model_deployment(case.name, sandbox.artifacts.linear(f"{case.name}/1/model.onnx")))
    status = sandbox.wait_for_phase(case.name, "Healthy", timeout=60)
    assert condition(status, "Stalled")["status"] == "False" and condition(status, "Ready")["status"] == "True"
