"""Rollout defects of issue 9 on plain data: each test failed before its fix."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from modeldeploy.api import ModelDeploymentSpec
from modeldeploy.api.status import MAX_REJECTED_REVISIONS
from modeldeploy.observe import parse_status
from modeldeploy.rollout import AnalysisSamples, GateResult, plan

from .canary_world import GOOD, NEW, NEW_NAME, OLD, OLD_NAME, World, canary_spec, to_first_step
from .planner_fixtures import deployment, observed


def _in_step_two(world: World) -> None:
    to_first_step(world)
    world.step(10, samples=AnalysisSamples(GOOD, GOOD))
    world.step(10, samples=AnalysisSamples(GOOD, GOOD))
    assert world.status.rollout is not None and world.status.rollout.step == 1


# ----- 2: an unreadable status never promotes the candidate -----

def test_a_status_with_values_this_operator_does_not_know_keeps_everything_else() -> None:
    world = World()
    _in_step_two(world)
    raw = world.status.to_dict()
    raw["phase"] = "Hibernating"  # a newer operator's phase
    raw["rejectedRevisions"] = [{"revision": "resnet-x", "specHash": "h", "reason": "QuotaExceeded"}]
    raw["rollout"]["stage"] = "Steps"
    raw["canaryWeight"] = "a lot"  # garbage in one field
    status = parse_status(raw)
    assert status.stable_revision == OLD_NAME and status.phase == "Hibernating"
    assert status.rejected_revisions[0].reason == "QuotaExceeded"  # kept, not dropped
    assert status.canary_weight == 0 and status.rollout is not None and status.rollout.step == 1
    world.status = status
    result = world.step(1)
    assert result.status.stable_revision == OLD_NAME and result.weights == {OLD_NAME: 50, NEW_NAME: 50}


def test_a_lost_status_recovers_the_stable_from_its_deployment_and_canaries_again() -> None:
    children = [deployment(OLD, replicas=4, ready=4, role="stable"),
                deployment(NEW, replicas=2, ready=2, role="canary")]
    result = plan(observed(NEW, None, children))
    assert result.status.stable_revision == OLD_NAME
    assert result.weights == {OLD_NAME: 100, NEW_NAME: 0}  # the canary starts over: no traffic yet
    assert result.status.rollout is not None and result.status.rollout.stage == "Starting"
    assert "StableRecovered" in [event.reason for event in result.events]
    assert "Promoted" not in [event.reason for event in result.events]


def test_the_newest_deployment_labelled_stable_wins() -> None:
    older = replace(deployment(OLD, replicas=4, ready=4, role="stable"), created_at="2026-01-01T00:00:00Z")
    newer = replace(deployment(NEW, replicas=4, ready=4, role="stable"), created_at="2026-02-01T00:00:00Z")
    result = plan(observed(NEW, None, [newer, older]))
    assert result.status.stable_revision == NEW_NAME and result.status.phase == "Healthy"


# ----- 3: editing the steps mid-canary -----

def test_editing_the_steps_mid_canary_restarts_them_instead_of_crashing() -> None:
    world = World()
    _in_step_two(world)
    one_step = canary_spec(steps=[{"weight": 30, "pause": "20s"}])
    result = plan(replace(world.observe(), spec=one_step))  # steps[1] no longer exists
    assert result.status.rollout is not None and result.status.rollout.step == 0
    assert result.weights == {OLD_NAME: 70, NEW_NAME: 30}
    assert [event.reason for event in result.events] == ["StepsChanged", "StepStarted"]
    assert result.prime_metrics is True


def test_an_unchanged_step_list_does_not_restart() -> None:
    world = World()
    _in_step_two(world)
    result = world.step(1)
    assert result.status.rollout is not None and result.status.rollout.step == 1 and not result.events


# ----- 9: metrics unavailable, inconclusive, and the deadline as time without progress -----

def test_metrics_unavailable_holds_the_step_and_the_deadline_then_resumes() -> None:
    world = World()
    to_first_step(world)
    down = AnalysisSamples(None, None, unavailable="Prometheus at http://p:9090: connection refused")
    first = world.step(10, samples=down)
    assert first.status.phase == "Progressing"
    assert [event.reason for event in first.events] == ["MetricsUnavailable"]
    ready = next(c for c in first.status.conditions if c.type == "Ready")
    assert ready.reason == "MetricsUnavailable"
    for _ in range(100):  # 1000 s > progressDeadlineSeconds (600): missing data is not a failure
        held = world.step(10, samples=down)
        assert held.status.phase == "Progressing" and held.status.rollout is not None
        assert held.status.rollout.step == 0 and not held.events and not held.verdicts
    back = world.step(10, samples=AnalysisSamples(GOOD, GOOD))
    assert "MetricsAvailable" in [event.reason for event in back.events] and back.verdicts == ["Pass"]
    assert back.status.analysis is not None and back.status.analysis.metrics_unavailable_since is None


def test_inconclusive_intervals_roll_back_when_asked() -> None:
    few = GOOD.__class__(requests=5, failures=0, latency_p99=0.05, latency_mean=0.02, queue_time_mean=0.001)
    world = World()
    rollback_spec = canary_spec(analysis={"interval": "10s", "inconclusiveLimit": 2, "onInconclusive": "rollback"})
    to_first_step(world)
    results = [plan(replace(world.observe(), spec=rollback_spec, samples=AnalysisSamples(few, few),
                            now=world.observe().now))]
    world.status = results[0].status
    world.clock += 10
    second = plan(replace(world.observe(), spec=rollback_spec, samples=AnalysisSamples(few, few)))
    assert second.status.phase == "RolledBack"
    assert second.status.rejected_revisions[-1].reason == "AnalysisInconclusive"


def test_the_deadline_counts_time_without_progress_not_the_whole_rollout() -> None:
    long_steps = [{"weight": 10, "pause": "400s"}, {"weight": 50, "pause": "400s"}]
    world = World()
    spec = canary_spec(steps=long_steps, progressDeadlineSeconds=600)

    def step(seconds: float, **inputs: Any) -> Any:
        world.clock += seconds
        result = plan(replace(world.observe(**inputs), spec=spec))
        world.status = result.status
        wanted = {r.revision: r.replicas for r in result.revisions}
        world.canary_replicas = wanted.get(NEW_NAME, world.canary_replicas)
        return result

    step(1)
    world.canary_ready = 1
    step(1, gates=GateResult(True, "ok"))
    for _ in range(80):  # 800 s of passing intervals: step 1 ends at 400 s, step 2 at 800 s
        result = step(10, samples=AnalysisSamples(GOOD, GOOD))
        assert result.status.phase != "RolledBack", result.status.message
    world.canary_ready = 4
    done = step(1)
    assert done.status.stable_revision == NEW_NAME


def test_progress_deadline_still_rolls_back_a_rollout_that_makes_none() -> None:
    world = World()
    world.step(1)  # canary pod never becomes ready
    stuck = world.step(600)
    assert stuck.status.phase == "RolledBack"
    assert stuck.status.rejected_revisions[-1].reason == "ProgressDeadline"
    assert "no progress for progressDeadlineSeconds (600s)" in stuck.status.message


# ----- 10: bounded state -----

def test_rejected_revisions_are_capped() -> None:
    status = None
    for version in range(MAX_REJECTED_REVISIONS + 5):
        spec: ModelDeploymentSpec = canary_spec(f"https://models.example/resnet/{version + 2}/model.onnx")
        stable = [deployment(OLD, replicas=4, ready=4, role="stable")]
        world_status = status or World().status
        started = plan(observed(spec, world_status, stable))
        rejected = plan(observed(spec, started.status, stable, seconds=1000))  # no progress: deadline
        status = rejected.status
    assert status is not None and len(status.rejected_revisions) == MAX_REJECTED_REVISIONS
    assert status.rejected_revisions[-1].revision.startswith("resnet-")


# ----- 11: a failing image pull gets a grace (registries rate-limit) -----

def test_an_image_pull_back_off_rejects_only_after_the_grace() -> None:
    from modeldeploy.rollout import ContainerState, PodState

    world = World()
    world.step(1)
    pulling = PodState(name=f"{NEW_NAME}-a", revision=NEW_NAME, containers=(ContainerState(
        name="server", waiting_reason="ImagePullBackOff", waiting_message="429 Too Many Requests"),))
    waiting = world.step(30, pods=(pulling,))
    assert waiting.status.phase == "Progressing" and "ImagePullBackOff" in waiting.status.message
    rejected = world.step(31, pods=(pulling,))  # 62 s since the rollout began > 60 s default grace
    assert rejected.status.phase == "RolledBack"
    assert rejected.status.rejected_revisions[-1].reason == "ImagePull"
    assert "imagePullGraceSeconds" in rejected.status.rejected_revisions[-1].message
    invalid = World()
    invalid.step(1)
    bad_name = PodState(name=f"{NEW_NAME}-a", revision=NEW_NAME, containers=(ContainerState(
        name="server", waiting_reason="InvalidImageName", waiting_message="bad"),))
    assert invalid.step(1, pods=(bad_name,)).status.phase == "RolledBack"  # never heals: at once


# ----- 4: an operator upgrade's template goes through a canary, the stable is never re-rendered -----

def test_a_new_operator_template_makes_a_canary_not_a_re_render_of_the_stable() -> None:
    world = World()
    steady = plan(replace(observed(OLD, world.status, [deployment(OLD, replicas=4, ready=4)]), template=""))
    assert steady.status.phase == "Healthy" and steady.status.rollout is None
    upgraded = plan(replace(observed(OLD, world.status, [deployment(OLD, replicas=4, ready=4)]),
                            template="v1|fetch=modelserver:0.2.0|server=modelserver:0.2.0"))
    candidate = upgraded.status.rollout
    assert candidate is not None and candidate.revision != OLD_NAME and candidate.stage == "Starting"
    stable_plans = [r for r in upgraded.revisions if r.revision == OLD_NAME]
    assert [(r.role, r.render) for r in stable_plans] == [("stable", False)]  # only scaled, never re-rendered
    assert upgraded.weights == {OLD_NAME: 100, candidate.revision: 0}


def test_a_deadline_shorter_than_all_pauses_together_but_longer_than_each_step_is_valid() -> None:
    from modeldeploy.api.semantics import spec_problems

    from .planner_fixtures import spec_dict

    body = spec_dict()
    body["rollout"] = {"strategy": "canary", "progressDeadlineSeconds": 600, "analysis": {"interval": "30s"},
                       "steps": [{"weight": 10, "pause": "400s"}, {"weight": 50, "pause": "400s"}]}
    assert spec_problems("resnet", body)[1] == []  # 800 s of pauses, but each step makes progress
    body["rollout"]["steps"][1]["pause"] = "580s"  # 580 s + a 30 s interval of margin > 600 s
    assert spec_problems("resnet", body)[1] == [
        "spec.rollout.progressDeadlineSeconds: 600s is shorter than the longest step needs "
        "(610s: its pause and an analysis interval of margin)"]


def test_a_canary_the_operator_reaches_late_is_not_rolled_back_for_its_own_lateness() -> None:
    """Issue 12: a busy operator saw a ready canary 700 s late. The cluster progressed in time: no
    ProgressDeadline, whether the canary was starting or in a step whose pause and analysis came due."""
    world = World()
    world.step(1)
    world.canary_ready = 1
    late = world.step(700, gates=GateResult(True, "ok"))  # pods were ready long ago; the queue was slow
    assert late.status.phase == "Progressing", late.status.message
    assert late.status.rollout is not None and late.status.rollout.stage == "Steps"
    world.canary_ready = 4
    for _ in range(2):  # each step's pause and interval came due 700 s before the operator ran
        result = world.step(700, samples=AnalysisSamples(GOOD, GOOD))
        assert result.status.phase in ("Progressing", "Healthy"), result.status.message
    assert world.step(1).status.stable_revision == NEW_NAME


def test_a_waiting_rollout_is_timed_by_its_deadline_not_polled() -> None:
    """Pods getting ready are watch events; the only timer while waiting on them is the deadline (or
    the end of the image pull grace)."""
    world = World()
    waiting = world.step(1)
    spec = NEW.rollout
    # The rollout started in this round: the grace ends first.
    assert waiting.requeue_after == pytest.approx(spec.image_pull_grace_seconds + 0.1, abs=0.01)
    later = world.step(spec.image_pull_grace_seconds)  # the grace is over: only the deadline remains
    assert later.requeue_after == pytest.approx(spec.progress_deadline_seconds - spec.image_pull_grace_seconds
                                                + 0.1, abs=0.01)


def test_a_step_wakes_at_its_next_interval_or_the_end_of_its_pause() -> None:
    world = World()
    world.step(1)
    world.canary_ready = 1
    stepping = world.step(1, gates=GateResult(True, "ok"))
    assert stepping.status.rollout is not None and stepping.status.rollout.stage == "Steps"
    assert stepping.requeue_after == pytest.approx(10.0, abs=0.01)  # the analysis interval (10 s < 20 s pause)
