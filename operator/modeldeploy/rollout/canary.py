"""The canary strategy: start the canary, pass the gates, walk the steps with analysis, promote.

Stages (kept in status.rollout.stage, so a restarted operator resumes mid-canary):
  Starting  — one canary pod, no traffic; when it is ready the gates run (signature, smoke test).
  Steps     — step i routes steps[i].weight percent to the canary (service router: the canary runs
              ceil(stable replicas x weight) pods); every interval the analysis compares canary and
              stable; a step ends after its pause and at least one passed interval.
  Promoting — the canary is scaled to the stable's size, then takes all traffic and the HPA.
Any fatal pod failure, a failed gate, `failureLimit` failed intervals in a row, an abort or the
progress deadline rolls back: traffic returns to the stable, the canary is removed.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import replace
from datetime import timedelta

from ..api.spec import ModelDeploymentSpec
from ..api.status import AnalysisStatus
from ..api.types import parse_duration
from ..formatting import count, timestamp
from .analysis import analyse
from .builder import (
    Builder,
    deadline_failure,
    deadline_passed,
    iso,
    parse_time,
    ready,
    stable_replicas,
    until_deadline,
    waiting_message,
)
from .model import Failure, Observed, Plan, RevisionPlan

GATE_RETRY_SECONDS = 1.0


def canary_replicas(stable: int, weight: int) -> int:
    """ceil(stable x weight), at least 1 and at most the stable's size."""
    return max(1, min(stable, math.ceil(stable * weight / 100)))


def steps_hash(spec: ModelDeploymentSpec) -> str:
    """Identity of the step list, as Argo's currentStepHash: an edit mid-rollout restarts the steps."""
    steps = [step.to_dict() for step in spec.rollout.steps]
    return hashlib.sha256(json.dumps(steps, sort_keys=True).encode()).hexdigest()[:16]


def analysis_run(observed: Observed) -> str:
    """Names the interval being measured (revision, step, its start): one sample per run."""
    progress = observed.status.rollout
    if progress is None:
        return ""
    analysis = observed.status.analysis
    start = (analysis.last_run if analysis and analysis.last_run else None) or progress.step_started_at or ""
    return f"{progress.revision}/{progress.step}/{start}"


def analysis_due_in(observed: Observed, spec: ModelDeploymentSpec) -> float | None:
    """Seconds until the next analysis interval is due (<= 0: now); None outside the Steps stage."""
    progress = observed.status.rollout
    if progress is None or progress.stage != "Steps" or progress.paused_at or progress.step_started_at is None:
        return None
    interval = parse_duration(spec.rollout.analysis.interval)
    analysis = observed.status.analysis
    since = parse_time(progress.step_started_at)
    if analysis is not None and analysis.last_run is not None:
        since = max(since, parse_time(analysis.last_run))
    return interval - (observed.now - since).total_seconds()


def _apply_intent(builder: Builder, candidate: str, hash_: str) -> Plan | None:
    status = builder.status
    intent = status.intent
    progress = status.rollout
    if intent is None or progress is None:
        return None
    status.intent = None
    if intent.action == "abort":
        builder.reject(candidate, hash_, Failure("Aborted", "aborted by kubectl modeldeploy abort", True))
        return builder.finish("RolledBack", "Aborted", f"revision {candidate} aborted by request")
    if intent.action == "pause" and progress.paused_at is None:
        progress.paused_at = builder.now
        progress.paused_reason = "Paused"
        builder.event(False, "Paused", f"rollout of {candidate} paused")
    elif intent.action == "resume" and progress.paused_at is not None:
        paused_for = builder.seconds_since(progress.paused_at)
        progress.started_at = _shift(progress.started_at, paused_for)
        if progress.step_started_at:
            progress.step_started_at = _shift(progress.step_started_at, paused_for)
        progress.paused_at = progress.paused_reason = None
        builder.progressed()
        if builder.status.analysis is not None:
            builder.status.analysis.consecutive_inconclusive = 0
        builder.event(False, "Resumed", f"rollout of {candidate} resumed")
    elif intent.action == "promote":
        progress.stage = "Promoting"
        progress.paused_at = None
        builder.event(False, "PromoteRequested", f"promoting {candidate} without further analysis")
    return None


def _shift(text: str, seconds: float) -> str:
    return iso(parse_time(text) + timedelta(seconds=seconds))


def _rollback(builder: Builder, candidate: str, hash_: str, failure: Failure) -> Plan:
    builder.reject(candidate, hash_, failure)
    return builder.finish("RolledBack", failure.reason, f"revision {candidate} rolled back: {failure.message}")


def _metrics_unavailable(builder: Builder, candidate: str, why: str) -> None:
    """No data is not a verdict: hold the step and the deadline until the provider answers again."""
    previous = builder.status.analysis or AnalysisStatus()
    if previous.metrics_unavailable_since is None:
        builder.event(True, "MetricsUnavailable", f"analysis of {candidate} holds: {why}")
    builder.status.analysis = previous.model_copy(update={
        "last_run": builder.now, "metrics_unavailable_since": previous.metrics_unavailable_since or builder.now})
    builder.progressed()


def _analyse(builder: Builder, spec: ModelDeploymentSpec, candidate: str, hash_: str) -> Plan | None:
    """Fold this round's samples (if the reconciler fetched any) into status.analysis."""
    samples = builder.observed.samples
    if samples is None:
        return None
    if samples.unavailable is not None:
        _metrics_unavailable(builder, candidate, samples.unavailable)
        return None
    result = analyse(spec.rollout.analysis, samples.canary, samples.stable, samples.canary_missing)
    builder.plan.verdicts.append(result.verdict)
    previous = builder.status.analysis or AnalysisStatus()
    if previous.metrics_unavailable_since is not None:
        builder.event(False, "MetricsAvailable", f"analysis of {candidate} resumed: metrics are available again")
    analysis = AnalysisStatus(
        passed_intervals=previous.passed_intervals + (result.verdict == "Pass"),
        # Inconclusive intervals (too little traffic) neither break nor extend a failure streak.
        consecutive_failures={"Fail": previous.consecutive_failures + 1, "Pass": 0}.get(
            result.verdict, previous.consecutive_failures),
        consecutive_inconclusive=previous.consecutive_inconclusive + 1 if result.verdict == "Inconclusive" else 0,
        last_run=builder.now, verdict=result.verdict, checks=list(result.checks),
        baselines=samples.baselines or previous.baselines)
    builder.status.analysis = analysis
    if result.verdict == "Fail" and analysis.consecutive_failures >= spec.rollout.analysis.failure_limit:
        failed = result.failed
        detail = failed.message if failed else "analysis failed"
        return _rollback(builder, candidate, hash_, Failure(
            "AnalysisFailed", f"{analysis.consecutive_failures} failed intervals in a row: {detail}", True))
    if analysis.consecutive_inconclusive >= spec.rollout.analysis.inconclusive_limit:
        return _inconclusive(builder, spec, candidate, hash_, analysis)
    return None


def _inconclusive(builder: Builder, spec: ModelDeploymentSpec, candidate: str, hash_: str,
                  analysis: AnalysisStatus) -> Plan | None:
    """Too many intervals in a row without a verdict: pause for a person, or roll back (onInconclusive)."""
    detail = next((check.message for check in analysis.checks if check.verdict == "Inconclusive"), "no verdict")
    message = f"{analysis.consecutive_inconclusive} inconclusive intervals in a row: {detail}"
    if spec.rollout.analysis.on_inconclusive == "rollback":
        return _rollback(builder, candidate, hash_, Failure("AnalysisInconclusive", message, True))
    progress = builder.status.rollout
    assert progress is not None
    progress.paused_at, progress.paused_reason = builder.now, "AnalysisInconclusive"
    builder.event(True, "AnalysisInconclusive", f"rollout of {candidate} paused: {message}")
    return None


def _enter_step(builder: Builder, index: int, spec: ModelDeploymentSpec) -> None:
    progress = builder.status.rollout
    assert progress is not None
    progress.stage = "Steps"
    progress.step = index
    progress.step_started_at = builder.now
    progress.steps_hash = steps_hash(spec)
    builder.progressed()
    previous = builder.status.analysis
    builder.status.analysis = AnalysisStatus(
        consecutive_failures=previous.consecutive_failures if previous else 0,
        consecutive_inconclusive=previous.consecutive_inconclusive if previous else 0,
        metrics_unavailable_since=previous.metrics_unavailable_since if previous else None,
        last_run=previous.last_run if previous else None,
        verdict=previous.verdict if previous else None,
        checks=previous.checks if previous else [])
    builder.plan.prime_metrics = True
    weight = spec.rollout.steps[index].weight
    builder.event(False, "StepStarted", f"step {index + 1}/{len(spec.rollout.steps)}: {weight}% to the canary")


def _step_done(builder: Builder, spec: ModelDeploymentSpec) -> bool:
    progress = builder.status.rollout
    assert progress is not None and progress.step_started_at is not None
    step = spec.rollout.steps[progress.step]
    passed = builder.status.analysis.passed_intervals if builder.status.analysis else 0
    return builder.seconds_since(progress.step_started_at) >= parse_duration(step.pause) and passed >= 1


def waiting_on_cluster(builder: Builder, spec: ModelDeploymentSpec, candidate: str, full_size: int) -> bool:
    """Whether the candidate has fewer ready pods than its stage needs."""
    progress = builder.status.rollout
    assert progress is not None
    if progress.stage == "Steps":
        wanted = canary_replicas(full_size, spec.rollout.steps[min(progress.step, len(spec.rollout.steps) - 1)].weight)
    elif progress.stage == "Promoting":
        wanted = full_size
    else:
        wanted = 1
    return not ready(builder.observed, candidate, wanted)


def canary(builder: Builder, spec: ModelDeploymentSpec, stable: str, candidate: str, hash_: str) -> Plan:
    observed = builder.observed
    status = builder.status
    progress = builder.progress(candidate)
    builder.set_revision_state(candidate, hash_, "Canary", spec.model.digest, spec.model.version)
    status.canary_revision = candidate
    stable_hash = observed.deployments[stable].spec_hash
    full_size = stable_replicas(observed, stable, spec)
    builder.serve_stable(stable, stable_hash, render=False)

    stopped = _apply_intent(builder, candidate, hash_)
    if stopped is not None:
        return stopped
    failure = builder.failure_of(candidate, spec)
    if failure and failure.fatal:
        return _rollback(builder, candidate, hash_, failure)
    builder.note_ready(candidate)  # first: pods that got ready while this round waited in the queue count
    # The deadline runs only while the rollout waits on the cluster (pods to get ready), never while
    # it waits on this operator (a step's pause, an analysis, a busy work queue): what the cluster did.
    if waiting_on_cluster(builder, spec, candidate, full_size) and deadline_passed(builder, progress, spec):
        return _rollback(builder, candidate, hash_, deadline_failure(failure, spec))

    if progress.stage == "Steps" and progress.steps_hash != steps_hash(spec):
        _steps_changed(builder, spec, candidate)
        return _steps(builder, spec, stable, candidate, hash_, full_size, entered=True)
    if progress.stage == "Steps":
        return _steps(builder, spec, stable, candidate, hash_, full_size)
    if progress.stage == "Promoting":
        return _promoting(builder, spec, stable, stable_hash, candidate, hash_, full_size)
    progress.stage = "Starting"  # a stage this operator does not know (a newer one wrote it): start over
    return _starting(builder, spec, stable, candidate, hash_, failure)


def _steps_changed(builder: Builder, spec: ModelDeploymentSpec, candidate: str) -> None:
    """spec.rollout.steps was edited mid-rollout: the old index means nothing now, start them over."""
    progress = builder.status.rollout
    assert progress is not None
    if progress.steps_hash is not None or progress.step >= len(spec.rollout.steps):
        builder.event(False, "StepsChanged", f"the steps of {candidate}'s rollout changed: restarting them")
        _enter_step(builder, 0, spec)
    else:  # written by an operator that did not record the hash, and still in range: keep the step
        progress.steps_hash = steps_hash(spec)


def _route(builder: Builder, spec: ModelDeploymentSpec, stable: str, candidate: str, hash_: str,
           weight: int, replicas: int) -> None:
    plan = builder.plan
    plan.revisions.append(RevisionPlan(candidate, hash_, "canary", replicas, True))
    plan.weights = {stable: 100 - weight, candidate: weight}
    # What the router routes, not the wish: a Service realises a weight only through ready pods.
    builder.status.canary_weight = builder.observed.routes.get(candidate, 0)


def _starting(builder: Builder, spec: ModelDeploymentSpec, stable: str, candidate: str, hash_: str,
              failure: Failure | None) -> Plan:
    observed = builder.observed
    progress = builder.status.rollout
    assert progress is not None
    _route(builder, spec, stable, candidate, hash_, 0, 1)
    if progress.paused_at is not None:
        return builder.finish("Paused", "Paused", f"rollout of {candidate} is paused (kubectl modeldeploy resume)")
    if not ready(observed, candidate, 1):
        builder.plan.requeue_after = until_deadline(builder, progress, spec)
        return builder.finish("Progressing", "RolloutInProgress", waiting_message(observed, candidate, failure, 1),
                              "CanaryStarting")
    if not progress.gates_passed:
        gates = observed.gates
        if gates is None:
            builder.plan.requeue_after = GATE_RETRY_SECONDS
            return builder.finish("Progressing", "RolloutInProgress", f"checking gates of {candidate}", "Gates")
        if not gates.passed:
            return _rollback(builder, candidate, hash_, Failure("GateFailed", gates.message, True))
        progress.gates_passed = True
        builder.event(False, "GatesPassed", gates.message or f"gates of {candidate} passed")
    _enter_step(builder, 0, spec)
    return _steps(builder, spec, stable, candidate, hash_, stable_replicas(observed, stable, spec), entered=True)


def _steps(builder: Builder, spec: ModelDeploymentSpec, stable: str, candidate: str, hash_: str,
           full_size: int, entered: bool = False) -> Plan:
    progress = builder.status.rollout
    assert progress is not None
    if not entered:
        stopped = _analyse(builder, spec, candidate, hash_)
        if stopped is not None:
            return stopped
        if progress.paused_at is None and _step_done(builder, spec):
            if progress.step + 1 < len(spec.rollout.steps):
                _enter_step(builder, progress.step + 1, spec)
            else:
                progress.stage = "Promoting"
                builder.progressed()
                if not ready(builder.observed, candidate, full_size):  # else Promoted follows in this round
                    builder.event(False, "Promoting",
                                  f"all steps passed: scaling {candidate} to {count(full_size, 'pod')}")
                return _promoting(builder, spec, stable, None, candidate, hash_, full_size)
    weight = spec.rollout.steps[progress.step].weight
    _route(builder, spec, stable, candidate, hash_, weight, canary_replicas(full_size, weight))
    if progress.paused_at is not None:
        reason = progress.paused_reason or "Paused"
        return builder.finish("Paused", reason, f"rollout of {candidate} is paused at step {progress.step + 1}"
                              f"{' (analysis inconclusive)' if reason == 'AnalysisInconclusive' else ''}: "
                              "kubectl modeldeploy resume")
    builder.plan.requeue_after = _steps_timer(builder, spec, candidate, full_size)
    analysis = builder.status.analysis
    verdict = analysis.verdict if analysis else None
    message = (f"step {progress.step + 1}/{len(spec.rollout.steps)}: {weight}% to {candidate}"
               f"{f', last analysis {verdict}' if verdict else ''}")
    if analysis is not None and analysis.metrics_unavailable_since is not None:
        since = analysis.metrics_unavailable_since
        return builder.finish("Progressing", "MetricsUnavailable",
                              f"{message}; analysis holds: metrics unavailable since {timestamp(since)}",
                              "MetricsUnavailable")
    return builder.finish("Progressing", "RolloutInProgress", message, "CanarySteps")


def _steps_timer(builder: Builder, spec: ModelDeploymentSpec, candidate: str, full_size: int) -> float:
    """The next due time of a step: its analysis interval, the end of its pause, and its deadline while
    the canary's pods are not all ready; no polling (pod changes are watch events)."""
    progress = builder.status.rollout
    assert progress is not None and progress.step_started_at is not None
    due = [analysis_due_in(_observed_with(builder), spec) or 0.0]
    pause_left = parse_duration(spec.rollout.steps[progress.step].pause) - builder.seconds_since(
        progress.step_started_at)
    if pause_left > 0:
        due.append(pause_left)
    if waiting_on_cluster(builder, spec, candidate, full_size):
        due.append(until_deadline(builder, progress, spec))
    return max(0.2, min(due))


def _observed_with(builder: Builder) -> Observed:
    """The observation as the next round will see it (this round's status), for due-time math."""
    return replace(builder.observed, status=builder.status)


def _promoting(builder: Builder, spec: ModelDeploymentSpec, stable: str, stable_hash: str | None,
               candidate: str, hash_: str, full_size: int) -> Plan:
    observed = builder.observed
    stable_hash = stable_hash or observed.deployments[stable].spec_hash
    progress = builder.status.rollout
    assert progress is not None
    if ready(observed, candidate, full_size):
        return builder.promote(stable, stable_hash, candidate, hash_)
    weight = spec.rollout.steps[progress.step].weight if progress.gates_passed else 0
    _route(builder, spec, stable, candidate, hash_, weight, full_size)
    builder.plan.requeue_after = until_deadline(builder, progress, spec)
    message = f"promoting {candidate}: " + waiting_message(observed, candidate, None, full_size)
    return builder.finish("Progressing", "RolloutInProgress", message, "Promoting")
