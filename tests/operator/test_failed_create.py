"""A Deployment whose ReplicaSet cannot create pods (FailedCreate) is named at once, not at the deadline.

The real RuntimeClass admission plugin refuses pods whose RuntimeClass does not exist, and pod
validation refuses an image name with surrounding spaces, though both Deployments were accepted.
The Deployment controller copies the ReplicaSet's refusal into the Deployment's ReplicaFailure
condition; the operator reads it there.
"""

from __future__ import annotations

from typing import Any

from modeldeploy.kubeapi import Invalid
from modeldeploy_sandbox.sandbox import Sandbox, model_deployment
from modeldeploy_sandbox.waiting import wait_until

from .reading import condition, printed_row, warnings

NAME = "resnet"
CANARY = {"strategy": "canary", "steps": [{"weight": 50, "pause": "1s"}], "progressDeadlineSeconds": 600}


def _rejected(sb: Sandbox, name: str) -> dict[str, Any]:
    status = sb.wait_for(name, lambda s: bool(s.get("rejectedRevisions")), 30, f"{name}: a rejected revision")
    return dict(status["rejectedRevisions"][-1])


def test_a_first_deploy_with_a_missing_runtime_class_fails_with_the_admission_message(sandbox: Sandbox) -> None:
    sandbox.apply(model_deployment(NAME, sandbox.artifacts.linear(), resources={"runtimeClassName": "missing"}))
    rejected = _rejected(sandbox, NAME)  # the default deadline is 600 s: this is the ReplicaFailure, not the clock

    assert rejected["reason"] == "FailedCreate", rejected
    assert rejected["message"].startswith(f"Deployment {rejected['revision']} cannot create pods (FailedCreate): ")
    assert 'is forbidden: pod rejected: RuntimeClass "missing" not found' in rejected["message"], rejected
    status = sandbox.status(NAME)
    stalled = condition(status, "Stalled")
    assert status["phase"] == "Failed" and stalled["status"] == "True" and stalled["reason"] == "FailedCreate"
    # The round that rejects says "failed" (and sends the one Warning); later rounds say it stays rejected.
    assert rejected["message"] in stalled["message"], stalled
    # The Event is sent right after the status write that records it: wait for it, then compare.
    sent = wait_until(lambda: warnings(sandbox, NAME, "FailedCreate"), timeout=30, message="the FailedCreate Warning")
    assert sent == [f"revision {rejected['revision']} failed: {rejected['message']}"]
    row = printed_row(sandbox.kube, sandbox.namespace, NAME)
    assert row["Phase"] == "Failed" and row["Ready"] == "False", row
    # Nothing serves: no endpoint, no HPA pointing at a deleted Deployment, no PDB of nothing.
    wait_until(lambda: [kind for api, kind in (("v1", "Service"), ("autoscaling/v2", "HorizontalPodAutoscaler"),
                                               ("policy/v1", "PodDisruptionBudget"))
                        if sandbox.kube.get(api, kind, sandbox.namespace, NAME) is not None] == [],
               timeout=30, message="the endpoint Service, HPA and PDB removed")


def test_an_image_name_with_a_trailing_space_is_refused_by_pod_validation(sandbox: Sandbox) -> None:
    try:
        sandbox.apply(model_deployment(NAME, sandbox.artifacts.linear(),
                                       runtime={"kind": "onnx", "image": "ghcr.io/modeldeploy/modelserver:1 "}))
    except Invalid as refused:  # our CRD may refuse it itself: as good, with the field named
        assert "spec.runtime.image" in refused.message, refused.message
        return
    rejected = _rejected(sandbox, NAME)
    assert rejected["reason"] == "FailedCreate", rejected
    assert "(FailedCreate): " in rejected["message"]
    assert ('spec.containers[0].image: Invalid value: "ghcr.io/modeldeploy/modelserver:1 ": '
            "must not have leading or trailing whitespace") in rejected["message"], rejected


def test_a_canary_whose_pods_cannot_be_created_is_rolled_back_and_the_stable_keeps_serving(sandbox: Sandbox) -> None:
    model = sandbox.artifacts.linear()
    sandbox.apply(model_deployment(NAME, model, rollout=CANARY))
    stable = sandbox.wait_for_phase(NAME, "Healthy", timeout=60)["stableRevision"]

    sandbox.apply(model_deployment(NAME, model, rollout=CANARY, resources={"runtimeClassName": "missing"}))
    rejected = _rejected(sandbox, NAME)

    assert rejected["reason"] == "FailedCreate" and "(FailedCreate)" in rejected["message"], rejected
    assert 'RuntimeClass "missing" not found' in rejected["message"]
    status = sandbox.wait_for_phase(NAME, "RolledBack", timeout=10)
    assert status["stableRevision"] == stable and status.get("canaryWeight", 0) == 0
    assert condition(status, "Stalled")["reason"] == "FailedCreate"
    assert condition(status, "Available")["status"] == "True"
    # The Warning is sent after the status write that records the rollback.
    wait_until(lambda: [event for event in warnings(sandbox, NAME, "FailedCreate") if "FailedCreate" in event],
               timeout=15, message="the rollback's FailedCreate Warning")
    assert sandbox.operator is not None
    operator, counted = sandbox.operator, 'modeldeploy_rollouts_total{outcome="rolled_back",reason="FailedCreate"} 1.0'
    wait_until(lambda: counted in operator.metrics(), timeout=10, message="the rollback counted (after its status)")
