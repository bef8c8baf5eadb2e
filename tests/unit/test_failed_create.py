"""A Deployment whose pods cannot be created (ReplicaFailure/FailedCreate), on plain data."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from modeldeploy.observe import deployment_state
from modeldeploy.rollout import plan
from modeldeploy.rollout.failures import replica_failure
from modeldeploy.wakeups import WakeFilter, deployment_fingerprint

from .planner_fixtures import deployment, observed, revision_of, spec

RUNTIME_CLASS = 'pods "resnet-abcde-7d9f" is forbidden: pod rejected: RuntimeClass "missing" not found'
QUOTA = 'pods "resnet-abcde-7d9f-x" is forbidden: exceeded quota: gpu, requested: nvidia.com/gpu=1, used: 4, limited: 4'


def _deployment_object(conditions: list[dict[str, str]]) -> dict[str, Any]:
    return {"metadata": {"name": "resnet-abcde", "labels": {"modeldeploy.dev/revision": "resnet-abcde"}},
            "spec": {"replicas": 1}, "status": {"replicas": 0, "conditions": conditions}}


def test_observe_reads_the_replica_failure_condition_only_while_it_is_true() -> None:
    failing = _deployment_object([
        {"type": "Progressing", "status": "True", "reason": "NewReplicaSetCreated", "message": "Created"},
        {"type": "ReplicaFailure", "status": "True", "reason": "FailedCreate", "message": RUNTIME_CLASS}])
    assert deployment_state(failing).replica_failure == RUNTIME_CLASS
    healed = _deployment_object([{"type": "ReplicaFailure", "status": "False", "reason": "FailedCreate"}])
    assert deployment_state(healed).replica_failure is None
    assert deployment_state(_deployment_object([])).replica_failure is None


def test_a_replica_failure_wakes_the_operator() -> None:
    wake = WakeFilter()
    quiet = _deployment_object([])
    failing = _deployment_object([{"type": "ReplicaFailure", "status": "True", "message": RUNTIME_CLASS}])
    assert wake.changed("Deployment", None, quiet, deployment_fingerprint(quiet)) is True
    assert wake.changed("Deployment", "MODIFIED", failing, deployment_fingerprint(failing)) is True
    assert wake.changed("Deployment", "MODIFIED", failing, deployment_fingerprint(failing)) is False


def test_a_refused_pod_is_fatal_but_a_full_quota_waits() -> None:
    state = replace(deployment(spec()), replica_failure=RUNTIME_CLASS)
    failure = replica_failure(state)
    assert failure is not None and failure.fatal and failure.reason == "FailedCreate"
    assert failure.message == f"Deployment {state.revision} cannot create pods (FailedCreate): {RUNTIME_CLASS}"
    quota = replica_failure(replace(state, replica_failure=QUOTA))
    assert quota is not None and not quota.fatal and quota.reason == "Unschedulable"
    assert replica_failure(replace(state, replica_failure=None)) is None


def test_a_first_deploy_that_cannot_create_pods_fails_at_once_with_the_refusal() -> None:
    model = spec()
    name, _ = revision_of(model)
    first = plan(observed(model))
    failing = replace(deployment(model, replicas=2), replica_failure=RUNTIME_CLASS)
    result = plan(observed(model, first.status, [failing], seconds=2))  # long before the 120 s deadline
    assert result.status.phase == "Failed"
    rejected = result.status.rejected_revisions[-1]
    assert (rejected.revision, rejected.reason) == (name, "FailedCreate")
    assert RUNTIME_CLASS in rejected.message and "(FailedCreate)" in rejected.message
    stalled = next(c for c in result.status.conditions if c.type == "Stalled")
    assert (stalled.status, stalled.reason) == ("True", "FailedCreate")
    assert stalled.message == f"revision {name} failed: {rejected.message}"
    assert [(e.type, e.reason) for e in result.events] == [("Warning", "FailedCreate")]


def test_a_replacement_that_cannot_create_pods_rolls_back_to_the_stable() -> None:
    old, new = spec(), spec("https://models.example/resnet/2/model.onnx")
    old_name, _ = revision_of(old)
    new_name, _ = revision_of(new)
    healthy = plan(observed(old, None, [deployment(old, ready=2)])).status
    starting = plan(observed(new, healthy, [deployment(old, ready=2)], seconds=1))
    assert starting.status.canary_revision == new_name
    children = [deployment(old, ready=2), replace(deployment(new, role="canary"), replica_failure=RUNTIME_CLASS)]
    result = plan(observed(new, starting.status, children, seconds=2))
    assert result.status.phase == "RolledBack" and result.status.stable_revision == old_name
    assert result.weights == {old_name: 100}
    assert result.status.rejected_revisions[-1].reason == "FailedCreate"


def test_a_full_quota_is_reported_while_waiting_and_named_at_the_deadline() -> None:
    model = spec()
    first = plan(observed(model))
    waiting = replace(deployment(model, replicas=2), replica_failure=QUOTA)
    result = plan(observed(model, first.status, [waiting], seconds=2))
    assert result.status.phase == "Progressing" and "exceeded quota" in result.status.message
    late = plan(observed(model, result.status, [waiting], seconds=121))
    assert late.status.phase == "Failed" and late.status.rejected_revisions[-1].reason == "Unschedulable"
    assert "progressDeadlineSeconds (120s)" in late.status.rejected_revisions[-1].message
