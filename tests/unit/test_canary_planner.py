"""The canary strategy on plain data: gates, steps, analysis, promotion, rollback, intents, invariants."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from modeldeploy.api.status import Intent
from modeldeploy.rollout import AnalysisSamples, GateResult, needs, plan

from .canary_world import (
    BAD,
    FEW,
    GOOD,
    NEW,
    NEW_NAME,
    OLD,
    OLD_NAME,
    STEPS,
    World,
    canary_spec,
    retiring,
    to_first_step,
)
from .planner_fixtures import deployment, observed, revision_of


def test_canary_starts_with_one_pod_and_no_traffic() -> None:
    world = World()
    result = world.step(1)
    assert result.status.phase == "Progressing" and result.status.rollout is not None
    assert result.status.rollout.stage == "Starting"
    assert result.weights == {OLD_NAME: 100, NEW_NAME: 0}
    assert world.canary_replicas == 1
    assert needs(world.observe()).gates is False  # not ready yet
    world.canary_ready = 1
    assert needs(world.observe()).gates is True


def test_a_failed_gate_rolls_back_before_any_traffic() -> None:
    world = World()
    world.step(1)
    world.canary_ready = 1
    waiting = world.step(1)
    assert "checking gates" in waiting.status.message and waiting.weights[NEW_NAME] == 0
    result = world.step(1, gates=GateResult(False, "signature: input 'input' dtype FP16 != FP32"))
    assert result.status.phase == "RolledBack"
    assert result.weights == {OLD_NAME: 100} and retiring(result) == {NEW_NAME}
    assert result.status.rejected_revisions[-1].reason == "GateFailed"
    assert "FP16" in result.status.rejected_revisions[-1].message


def test_steps_analysis_and_promotion() -> None:
    world = World()
    entered = to_first_step(world)
    assert entered.status.rollout is not None and entered.status.rollout.stage == "Steps"
    assert entered.weights == {OLD_NAME: 90, NEW_NAME: 10} and world.canary_replicas == 1  # ceil(4 x 10%)
    assert entered.prime_metrics is True
    assert "StepStarted" in [e.reason for e in entered.events]
    assert needs(world.observe()).analysis is False
    world.clock += 10
    assert needs(world.observe()).analysis is True
    first = world.step(0, samples=AnalysisSamples(GOOD, GOOD))
    assert first.status.analysis is not None and first.status.analysis.verdict == "Pass"
    assert first.status.rollout is not None and first.status.rollout.step == 0  # pause (20s) not over yet
    second = world.step(10, samples=AnalysisSamples(GOOD, GOOD))
    assert second.status.rollout is not None and second.status.rollout.step == 1
    assert second.weights == {OLD_NAME: 50, NEW_NAME: 50} and world.canary_replicas == 2
    world.canary_ready = 2
    world.step(10, samples=AnalysisSamples(GOOD, GOOD))
    promoting = world.step(10, samples=AnalysisSamples(GOOD, GOOD))
    assert promoting.status.rollout is not None and promoting.status.rollout.stage == "Promoting"
    assert world.canary_replicas == 4 and promoting.weights == {OLD_NAME: 50, NEW_NAME: 50}
    assert [event.reason for event in promoting.events] == ["Promoting"]  # it waits for 2 more pods
    world.canary_ready = 4
    done = world.step(1)
    assert done.status.phase == "Healthy" and done.status.stable_revision == NEW_NAME
    assert [event.reason for event in done.events] == ["Promoted"]
    assert done.weights == {NEW_NAME: 100} and done.hpa_target == NEW_NAME and retiring(done) == {OLD_NAME}


def test_a_canary_already_at_full_size_is_promoted_in_one_round_with_one_event() -> None:
    world = World()
    to_first_step(world)
    world.step(10, samples=AnalysisSamples(GOOD, GOOD))
    world.step(10, samples=AnalysisSamples(GOOD, GOOD))  # step 2/2
    world.canary_ready = 4
    world.step(10, samples=AnalysisSamples(GOOD, GOOD))
    world.canary_replicas = 4  # every pod already there (e.g. the last weight needed them all)
    done = world.step(10, samples=AnalysisSamples(GOOD, GOOD))
    assert done.status.phase == "Healthy" and done.status.stable_revision == NEW_NAME
    # No "Promoting" Event for a stage that began and ended in the same round.
    assert [event.reason for event in done.events] == ["Promoted"]


def test_failure_limit_consecutive_failed_intervals_roll_back_with_the_values() -> None:
    world = World()
    to_first_step(world)
    once = world.step(10, samples=AnalysisSamples(BAD, GOOD))
    assert once.status.phase == "Progressing" and once.status.analysis is not None
    assert once.status.analysis.consecutive_failures == 1
    twice = world.step(10, samples=AnalysisSamples(BAD, GOOD))
    assert twice.status.phase == "RolledBack"
    assert twice.weights == {OLD_NAME: 100} and retiring(twice) == {NEW_NAME}
    rejected = twice.status.rejected_revisions[-1]
    assert rejected.reason == "AnalysisFailed" and "successRate" in rejected.message
    assert "Fail" in twice.verdicts


def test_low_traffic_is_inconclusive_and_neither_promotes_nor_rolls_back() -> None:
    world = World()
    to_first_step(world)
    for _ in range(2):  # below inconclusiveLimit (3)
        result = world.step(10, samples=AnalysisSamples(FEW, FEW))
        assert result.status.phase == "Progressing"
        assert result.status.analysis is not None and result.status.analysis.verdict == "Inconclusive"
        assert result.status.rollout is not None and result.status.rollout.step == 0
    paused = world.step(10, samples=AnalysisSamples(FEW, FEW))
    assert paused.status.phase == "Paused" and paused.weights == {OLD_NAME: 90, NEW_NAME: 10}
    assert [event.reason for event in paused.events] == ["AnalysisInconclusive"]
    assert paused.status.rollout is not None and paused.status.rollout.paused_reason == "AnalysisInconclusive"
    still = world.step(1000)  # a paused rollout never runs into its deadline
    assert still.status.phase == "Paused" and not still.events


def test_pause_resume_abort_and_promote_intents() -> None:
    world = World()
    to_first_step(world)
    world.status = world.status.model_copy(update={"intent": Intent(action="pause")})
    paused = world.step(1)
    assert paused.status.phase == "Paused" and paused.status.intent is None
    assert needs(world.observe()).analysis is False
    still = world.step(700)  # past the deadline: paused rollouts wait for their user
    assert still.status.phase == "Paused" and still.weights == {OLD_NAME: 90, NEW_NAME: 10}
    world.status = world.status.model_copy(update={"intent": Intent(action="resume")})
    resumed = world.step(1)
    assert resumed.status.phase == "Progressing"
    world.status = world.status.model_copy(update={"intent": Intent(action="promote")})
    promoted = world.step(1)
    assert promoted.status.rollout is not None and promoted.status.rollout.stage == "Promoting"
    world.canary_ready = 4
    assert world.step(1).status.stable_revision == NEW_NAME


def test_abort_rolls_back_as_aborted() -> None:
    world = World()
    to_first_step(world)
    world.status = world.status.model_copy(update={"intent": Intent(action="abort")})
    result = world.step(1)
    assert result.status.phase == "RolledBack" and result.weights == {OLD_NAME: 100}
    assert result.status.rejected_revisions[-1].reason == "Aborted"


ACTIONS = st.sampled_from(["tick", "ready", "unready", "gate_ok", "gate_bad", "pass", "fail", "few", "none",
                           "pause", "resume", "promote", "abort"])


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(ACTIONS, st.integers(min_value=0, max_value=40)), max_size=40))
def test_invariants_hold_for_any_sequence_of_events(events: list[tuple[str, int]]) -> None:
    world = World()
    passed_steps: set[int] = set()
    promote_requested = False
    for action, seconds in events:
        inputs: dict[str, Any] = {}
        if action == "ready":
            world.canary_ready = 8
        elif action == "unready":
            world.canary_ready = 0
        elif action in ("gate_ok", "gate_bad"):
            inputs["gates"] = GateResult(action == "gate_ok", action)
        elif action in ("pass", "fail", "few", "none"):
            sample = {"pass": GOOD, "fail": BAD, "few": FEW, "none": None}[action]
            inputs["samples"] = AnalysisSamples(sample, GOOD)
        elif action in ("pause", "resume", "promote", "abort"):
            promote_requested |= action == "promote"
            world.status = world.status.model_copy(update={"intent": Intent(action=action)})  # type: ignore[arg-type]
        step_before = world.status.rollout.step if world.status.rollout else None
        canary_existed = world.canary_replicas is not None
        result = world.step(seconds, **inputs)
        if result.weights:
            assert sum(result.weights.values()) == 100
        analysis = result.status.analysis
        if step_before is not None and analysis is not None and analysis.verdict == "Pass" and "samples" in inputs:
            passed_steps.add(step_before)
        if result.status.stable_revision == NEW_NAME:
            assert promote_requested or passed_steps >= set(range(len(STEPS))), "promoted without passing steps"
            break
        if result.status.phase == "RolledBack":
            assert result.weights == {OLD_NAME: 100}
            assert NEW_NAME in retiring(result) | set(result.delete_revisions) or not canary_existed
            break


def test_a_canary_superseded_mid_rollout_retires_instead_of_vanishing() -> None:
    world = World()
    to_first_step(world)
    newer = canary_spec("https://models.example/resnet/3/model.onnx")
    newer_name, _ = revision_of(newer)
    children = [deployment(OLD, replicas=4, ready=4), deployment(NEW, replicas=1, ready=1)]
    result = plan(observed(newer, world.status, children, seconds=world.clock + 1))
    assert retiring(result) == {NEW_NAME} and result.delete_revisions == []
    assert result.weights == {OLD_NAME: 100, newer_name: 0}
    assert {entry.name: entry.state for entry in result.status.revisions}[NEW_NAME] == "Superseded"
    later = plan(observed(newer, result.status, children, seconds=world.clock + 10))
    assert later.delete_revisions == [NEW_NAME]
