"""Passing intervals inside a step are held, not written; anything that changes the rollout's course is
written (rollout.held), and a held analysis stops applying once status moves past it."""

from __future__ import annotations

from modeldeploy.api import ModelDeploymentStatus
from modeldeploy.rollout import AnalysisSamples, Plan
from modeldeploy.rollout.held import HeldAnalysis, hold, overlay

from .canary_world import BAD, FEW, GOOD, World, to_first_step


def held_of(written: ModelDeploymentStatus, result: Plan) -> HeldAnalysis | None:
    return hold(written.to_dict(), result.status, result.verdicts, sends_events=bool(result.events))


def in_step_with_one_pass() -> tuple[World, ModelDeploymentStatus]:
    """A canary in its first step whose first pass was written (it changed the message)."""
    world = World()
    to_first_step(world)
    entered = world.status
    first = world.step(10, samples=AnalysisSamples(GOOD, GOOD))
    assert first.verdicts == ["Pass"]
    assert held_of(entered, first) is None, "the first pass changes the status message: written"
    return world, first.status


def test_a_further_pass_in_the_step_is_held_and_overlaid_on_the_written_status() -> None:
    world, written = in_step_with_one_pass()
    second = world.step(5, samples=AnalysisSamples(GOOD, GOOD))
    held = held_of(written, second)
    assert held is not None
    assert held.analysis.passed_intervals == 2 and held.analysis.last_run != written.analysis.last_run  # type: ignore[union-attr]
    shown = overlay(written, held)
    assert shown is not None and shown.analysis == second.status.analysis
    assert shown.model_copy(update={"analysis": written.analysis}) == written  # nothing else changes


def test_a_failed_or_inconclusive_interval_is_written() -> None:
    for sample in (BAD, FEW):
        world, written = in_step_with_one_pass()
        result = world.step(5, samples=AnalysisSamples(sample, GOOD))
        assert result.verdicts in (["Fail"], ["Inconclusive"])
        assert held_of(written, result) is None, result.verdicts


def test_a_pass_that_ends_a_failure_streak_is_written() -> None:
    world, _ = in_step_with_one_pass()
    failed = world.step(2, samples=AnalysisSamples(BAD, GOOD))
    assert failed.status.analysis is not None and failed.status.analysis.consecutive_failures == 1
    passed = world.step(2, samples=AnalysisSamples(GOOD, GOOD))
    assert passed.verdicts == ["Pass"]
    assert held_of(failed.status, passed) is None  # the streak 1 -> 0 would be lost on a restart


def test_the_end_of_a_step_is_written_with_what_was_held() -> None:
    world, written = in_step_with_one_pass()
    held = held_of(written, world.step(5, samples=AnalysisSamples(GOOD, GOOD)))
    assert held is not None
    world.status = overlay(written, held) or written  # the reconciler plans from the overlay
    ended = world.step(10, samples=AnalysisSamples(GOOD, GOOD))
    assert ended.status.rollout is not None and ended.status.rollout.step == 1
    assert held_of(written, ended) is None
    assert overlay(ended.status, held) is None  # the held analysis was of the step before


def test_a_round_that_analysed_nothing_keeps_holding() -> None:
    world, written = in_step_with_one_pass()
    held = held_of(written, world.step(5, samples=AnalysisSamples(GOOD, GOOD)))
    assert held is not None
    world.status = overlay(written, held) or written
    idle = world.step(1)  # woken by a pod event: no interval due
    assert idle.verdicts == []
    again = held_of(written, idle)
    assert again is not None and again.analysis == held.analysis


def test_a_held_analysis_stops_applying_when_a_newer_one_is_written() -> None:
    world, written = in_step_with_one_pass()
    held = held_of(written, world.step(5, samples=AnalysisSamples(GOOD, GOOD)))
    assert held is not None
    # Another write (more ready pods, say) carried the held analysis: status has it, no overlay.
    assert overlay(world.status, held) is None
    assert overlay(written, None) is None


def test_a_round_that_sends_an_event_writes() -> None:
    world, written = in_step_with_one_pass()
    result = world.step(5, samples=AnalysisSamples(GOOD, GOOD))
    assert hold(written.to_dict(), result.status, result.verdicts, sends_events=True) is None


def test_the_first_pass_of_every_step_is_written() -> None:
    world, _ = in_step_with_one_pass()
    ended = world.step(20, samples=AnalysisSamples(GOOD, GOOD))  # the pause is over: step 2/2
    assert ended.status.rollout is not None and ended.status.rollout.step == 1
    first = world.step(10, samples=AnalysisSamples(GOOD, GOOD))
    assert first.verdicts == ["Pass"] and first.status.message == ended.status.message  # only the analysis changed
    assert held_of(ended.status, first) is None  # passed 0 -> 1: the step can end on it after a restart
    second = world.step(5, samples=AnalysisSamples(GOOD, GOOD))
    assert held_of(first.status, second) is not None
