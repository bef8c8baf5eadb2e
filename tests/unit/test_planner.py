"""The rollout planner on plain data: first deploy, steady state, replacement, rejection, deadline."""

from __future__ import annotations

from modeldeploy.api.status import Intent
from modeldeploy.rollout import ContainerState, PodState, plan

from .planner_fixtures import deployment, observed, revision_of, spec


def condition(plan_status, kind: str) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    found = next(c for c in plan_status.conditions if c.type == kind)
    return found.status, found.reason


def test_invalid_spec_stalls_without_touching_children_or_requeueing() -> None:
    result = plan(observed(None, problems=("spec.rollout.steps[1].weight: weights must increase",)))
    assert result.status.phase == "Failed"
    assert condition(result.status, "Stalled") == ("True", "InvalidSpec")
    assert condition(result.status, "Ready") == ("False", "InvalidSpec")
    assert "spec.rollout.steps[1].weight" in result.status.message
    assert result.touch_children is False and result.requeue_after is None
    assert [event.reason for event in result.events] == ["InvalidSpec"]


def test_first_deploy_creates_the_revision_and_points_everything_at_it() -> None:
    model = spec()
    name, hash_ = revision_of(model)
    result = plan(observed(model))
    assert result.status.phase == "Progressing"
    assert [(r.revision, r.role, r.replicas, r.render) for r in result.revisions] == [(name, "canary", None, True)]
    assert result.revisions[0].born_serving  # nothing else serves: its pods are born routable
    assert result.hpa_target == name and result.weights == {name: 100}
    assert result.status.rollout is not None and result.status.rollout.started_at == "2026-01-01T00:00:00Z"
    assert condition(result.status, "Reconciling") == ("True", "RolloutInProgress")
    assert result.events == []  # a first deploy is announced once, by Promoted, when it serves
    assert result.status.revisions[0].spec_hash == hash_
    # The Deployment it creates appearing (no pod ready yet) is no news: the same status, no write.
    created = plan(observed(model, result.status, [deployment(model, replicas=2, ready=0)], seconds=1))
    assert result.status.message.endswith(": 0/2 pods ready")  # minReplicas: 2
    assert created.status == result.status


def test_first_deploy_becomes_healthy_when_every_wanted_pod_is_ready() -> None:
    model = spec()
    first = plan(observed(model))
    half = plan(observed(model, first.status, [deployment(model, replicas=2, ready=1)], seconds=5))
    assert half.status.phase == "Progressing"
    result = plan(observed(model, half.status, [deployment(model, replicas=2, ready=2)], seconds=10))
    name, _ = revision_of(model)
    assert result.status.phase == "Healthy" and result.status.stable_revision == name
    assert condition(result.status, "Ready") == ("True", "Serving")
    assert condition(result.status, "Available")[0] == "True"
    assert result.status.rollout is None


def test_steady_state_is_a_fixed_point() -> None:
    model = spec()
    ready = [deployment(model, ready=2)]
    status = plan(observed(model, plan(observed(model)).status, ready, seconds=5)).status
    again = plan(observed(model, status, ready, seconds=500))
    assert again.status == status
    assert again.events == []


def test_a_new_revision_is_readied_beside_the_stable_then_promoted() -> None:
    old, new = spec(), spec(uri="https://models.example/resnet/2/model.onnx")
    old_name, _ = revision_of(old)
    new_name, _ = revision_of(new)
    healthy = plan(observed(old, None, [deployment(old, replicas=3, ready=3)])).status
    assert healthy.stable_revision == old_name
    waiting = plan(observed(new, healthy, [deployment(old, replicas=3, ready=3)], seconds=1))
    assert waiting.status.phase == "Progressing" and waiting.status.canary_revision == new_name
    by_name = {r.revision: r for r in waiting.revisions}
    assert by_name[new_name].replicas == 3 and by_name[new_name].role == "canary"
    # A canary's pods are not born routable: a Service over several revisions must not reach them
    # before they serve (the router labels them once they do).
    assert not by_name[new_name].born_serving
    assert by_name[old_name].render is False and waiting.hpa_target == old_name
    assert waiting.weights == {old_name: 100, new_name: 0}
    promoted = plan(observed(new, waiting.status,
                             [deployment(old, replicas=3, ready=3), deployment(new, replicas=3, ready=3)], seconds=30))
    assert promoted.status.phase == "Healthy" and promoted.status.stable_revision == new_name
    assert promoted.weights == {new_name: 100} and promoted.hpa_target == new_name
    assert [entry.revision for entry in promoted.status.retiring] == [old_name]
    assert promoted.delete_revisions == [] and promoted.requeue_after == 5  # the scale-down delay
    later = plan(observed(new, promoted.status,
                          [deployment(old, replicas=3, ready=3), deployment(new, replicas=3, ready=3)], seconds=36))
    assert later.delete_revisions == [old_name] and later.status.retiring == []
    states = {entry.name: entry.state for entry in promoted.status.revisions}
    assert states == {old_name: "Superseded", new_name: "Stable"}


def test_an_autoscaling_edit_makes_no_new_revision() -> None:
    model = spec()
    scaled = model.model_copy(update={"autoscaling": model.autoscaling.model_copy(update={"max_replicas": 9})})
    assert revision_of(model) == revision_of(scaled)
    status = plan(observed(model, None, [deployment(model, ready=2)])).status
    result = plan(observed(scaled, status, [deployment(model, ready=2)], seconds=3))
    assert result.status.phase == "Healthy" and result.delete_revisions == []


def _digest_mismatch_pod(revision: str) -> PodState:
    fetch = ContainerState(name="fetch", init=True, terminated_reason="Error", terminated_exit_code=3,
                           terminated_message="digest mismatch: expected sha256:ab.. got sha256:cd..")
    return PodState(name=f"{revision}-x", revision=revision, containers=(fetch,))


def test_a_fatal_failure_rolls_back_and_is_not_retried_until_asked() -> None:
    old, new = spec(), spec(uri="https://models.example/resnet/2/model.onnx")
    old_name, _ = revision_of(old)
    new_name, new_hash = revision_of(new)
    healthy = plan(observed(old, None, [deployment(old, ready=2)])).status
    children = [deployment(old, ready=2), deployment(new, ready=0, role="canary")]
    rolled = plan(observed(new, healthy, children, [_digest_mismatch_pod(new_name)], seconds=5))
    assert rolled.status.phase == "RolledBack"
    assert rolled.weights == {old_name: 100} and [e.revision for e in rolled.status.retiring] == [new_name]
    assert rolled.status.rejected_revisions[0].reason == "ArtifactIntegrity"
    assert rolled.status.rejected_revisions[0].spec_hash == new_hash
    assert condition(rolled.status, "Stalled") == ("True", "ArtifactIntegrity")
    assert condition(rolled.status, "Available")[0] == "True"
    assert any(event.type == "Warning" and event.reason == "ArtifactIntegrity" for event in rolled.events)
    # The same spec again: nothing is re-created.
    again = plan(observed(new, rolled.status, [deployment(old, ready=2)], seconds=60))
    assert again.status.phase == "RolledBack"
    assert [r.revision for r in again.revisions] == [old_name] and again.weights == {old_name: 100}
    # retry: the rejection is forgotten and the revision rolls out again.
    retry_status = again.status.model_copy(update={"intent": Intent(action="retry")})
    retried = plan(observed(new, retry_status, [deployment(old, ready=2)], seconds=70))
    assert retried.status.phase == "Progressing" and retried.status.rejected_revisions == []
    assert retried.status.intent is None
    assert new_name in [r.revision for r in retried.revisions]


def test_the_progress_deadline_counts_time_without_progress_and_flapping_cannot_reset_it() -> None:
    old, new = spec(), spec(uri="https://models.example/resnet/2/model.onnx")
    new_name, _ = revision_of(new)
    status = plan(observed(old, None, [deployment(old, ready=2)])).status
    flapping = [0, 1, 0, 1, 0]  # ready pods seen over time, never enough (2 wanted)
    for step, ready in enumerate(flapping):
        result = plan(observed(new, status, [deployment(old, ready=2), deployment(new, ready=ready)],
                               seconds=step * 25))
        status = result.status
        assert status.phase == "Progressing" and status.rollout is not None
        assert status.rollout.started_at == "2026-01-01T00:00:00Z"
    # The only progress was the first ready pod (at 25 s): a pod going and coming back is none.
    assert status.rollout is not None and status.rollout.progressed_at == "2026-01-01T00:00:25Z"
    expired = plan(observed(new, status, [deployment(old, ready=2), deployment(new, ready=1)], seconds=145))
    assert expired.status.phase == "RolledBack"
    assert expired.status.rejected_revisions[-1].reason == "ProgressDeadline"
    assert [entry.revision for entry in expired.status.retiring] == [new_name]


def test_insufficient_gpu_is_reported_while_waiting_and_names_the_deadline_failure() -> None:
    old, new = spec(), spec(uri="https://models.example/resnet/2/model.onnx")
    new_name, _ = revision_of(new)
    pending = PodState(name=f"{new_name}-a", revision=new_name,
                       unschedulable_message="0/3 nodes are available: 3 Insufficient nvidia.com/gpu.")
    status = plan(observed(old, None, [deployment(old, ready=2)])).status
    waiting = plan(observed(new, status, [deployment(old, ready=2), deployment(new)], [pending], seconds=1))
    assert waiting.status.phase == "Progressing" and "InsufficientGPU" in waiting.status.message
    expired = plan(observed(new, waiting.status, [deployment(old, ready=2), deployment(new)], [pending],
                            seconds=200))
    assert expired.status.rejected_revisions[-1].reason == "InsufficientGPU"


def test_crash_loop_and_model_load_and_oom_are_told_apart() -> None:
    from modeldeploy.rollout.failures import classify

    def pod(**container: object) -> PodState:
        return PodState(name="p", revision="r", containers=(ContainerState(name="server", **container),))  # type: ignore[arg-type]

    load = classify([pod(terminated_exit_code=4, terminated_message="model resnet: failed to load")])
    oom = classify([pod(last_terminated_reason="OOMKilled", last_terminated_exit_code=137, restart_count=1)])
    crash = classify([pod(waiting_reason="CrashLoopBackOff", restart_count=5, last_terminated_exit_code=1)])
    pull = classify([pod(waiting_reason="ImagePullBackOff", waiting_message="not found")])
    assert load and load.reason == "ModelLoadFailed" and load.fatal
    assert oom and oom.reason == "OOMKilled"
    assert crash and crash.reason == "CrashLoop" and crash.fatal
    assert pull and pull.reason == "ImagePull" and not pull.fatal  # fatal after imagePullGraceSeconds
    assert classify([pod(ready=True)]) is None


def test_unschedulable_on_a_gpu_product_selector_is_insufficient_gpu() -> None:
    from modeldeploy.rollout.failures import classify

    message = "0/3 nodes are available: 3 node(s) didn't match Pod's node affinity/selector."
    gpu_pod = PodState(name="p", revision="r", unschedulable_message=message, requests_gpu=True)
    cpu_pod = PodState(name="p", revision="r", unschedulable_message=message, requests_gpu=False)
    assert (failure := classify([gpu_pod])) is not None and failure.reason == "InsufficientGPU"
    assert (failure := classify([cpu_pod])) is not None and failure.reason == "Unschedulable"


def test_modelserver_and_onnxruntime_load_errors_are_model_load_failures() -> None:
    from modeldeploy.rollout.failures import classify

    for text in ("modelserver: error: model m version 1: load failed (MODELSERVER_FAULT_LOAD_FAIL)",
                 "[ONNXRuntimeError] : 7 : INVALID_PROTOBUF : Load model from /models/m/1/model.onnx failed"):
        server = ContainerState(name="server", terminated_exit_code=1, terminated_message=text)
        failure = classify([PodState(name="p", revision="r", containers=(server,))])
        assert failure is not None and failure.reason == "ModelLoadFailed" and failure.fatal
