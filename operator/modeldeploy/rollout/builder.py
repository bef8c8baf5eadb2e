"""Shared plan-building steps of the rollout strategies. Pure."""

from __future__ import annotations

from datetime import datetime

from ..api.spec import ModelDeploymentSpec
from ..api.status import (
    MAX_RECENT_EVENTS,
    MAX_REJECTED_REVISIONS,
    FailureReason,
    ModelDeploymentStatus,
    Phase,
    RecordedEvent,
    RejectedRevision,
    RetiringRevision,
    RevisionState,
    RevisionStatus,
    RolloutProgress,
)
from ..formatting import count
from .conditions import for_phase
from .failures import revision_failure
from .model import EventRecord, Failure, Observed, Plan, RevisionPlan, Role

MAX_KEPT_REVISIONS = 10


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


class Builder:
    """Accumulates one plan: the next status, the children, the events."""

    def __init__(self, observed: Observed) -> None:
        self.observed = observed
        self.now = iso(observed.now)
        self.status: ModelDeploymentStatus = observed.status.model_copy(deep=True)
        self.status.observed_generation = observed.generation
        self.plan = Plan(status=self.status)

    def seconds_since(self, text: str) -> float:
        return (self.observed.now - parse_time(text)).total_seconds()

    def event(self, warning: bool, reason: str, message: str) -> None:
        record = EventRecord("Warning" if warning else "Normal", reason, message[:1024], self.now)
        self.plan.events.append(record)
        self.status.recent_events = [*self.status.recent_events, RecordedEvent(
            type=record.type, reason=reason, message=record.message, at=self.now)][-MAX_RECENT_EVENTS:]

    def set_revision_state(self, name: str, hash_: str, state: RevisionState, digest: str | None = None,
                           model_version: int | None = None) -> None:
        for entry in self.status.revisions:
            if entry.name == name:
                entry.state = state
                if entry.model_version is None:  # an entry written before versions were recorded
                    entry.model_version = model_version
                return
        self.status.revisions.append(RevisionStatus(name=name, spec_hash=hash_, model_digest=digest,
                                                    model_version=model_version, created_at=self.now, state=state))
        self.status.revisions = self.status.revisions[-MAX_KEPT_REVISIONS:]

    def retire(self, revision: str) -> None:
        """Traffic has left `revision`: it keeps running for the scale-down delay, then is deleted."""
        if revision in self.observed.deployments and all(r.revision != revision for r in self.status.retiring):
            self.status.retiring.append(RetiringRevision(revision=revision, since=self.now))

    def mark_superseded(self, revision: str) -> None:
        for entry in self.status.revisions:
            if entry.name == revision and entry.state in ("Pending", "Canary"):
                entry.state = "Superseded"

    def serve_stable(self, stable: str, hash_: str, render: bool, role: Role = "stable",
                     born_serving: bool = False) -> None:
        self.plan.revisions.append(RevisionPlan(stable, hash_, role, None, render, born_serving))
        self.plan.hpa_target = stable
        self.plan.weights[stable] = 100

    def progress(self, candidate: str) -> RolloutProgress:
        progress = self.status.rollout
        if progress is None or progress.revision != candidate:
            progress = RolloutProgress(revision=candidate, started_at=self.now, progressed_at=self.now)
            self.status.rollout = progress
            self.status.analysis = None
            if self.status.stable_revision is not None:  # a first deploy is announced once, by Promoted
                self.event(False, "RevisionCreated", f"rolling out revision {candidate}")
        return progress

    def failure_of(self, revision: str, spec: ModelDeploymentSpec) -> Failure | None:
        """Why `revision` is not ready (see failures.revision_failure), timed from its rollout's start."""
        progress = self.status.rollout
        waited = self.seconds_since(progress.started_at) if progress is not None else 0.0
        return revision_failure(self.observed, revision, waited, spec.rollout.image_pull_grace_seconds)

    def progressed(self) -> None:
        """The rollout moved on (a stage, a step, gates passed, more pods ready): the deadline restarts."""
        if self.status.rollout is not None:
            self.status.rollout.progressed_at = self.now

    def note_ready(self, revision: str) -> None:
        """More ready pods of the rolling-out revision count as progress, as in a Deployment."""
        progress = self.status.rollout
        state = self.observed.deployments.get(revision)
        if progress is not None and state is not None and state.ready_replicas > progress.ready_replicas:
            progress.ready_replicas = state.ready_replicas
            self.progressed()

    def reject(self, candidate: str, hash_: str, failure: Failure) -> None:
        """Record the rejection and drop the candidate; traffic goes (or stays) on the stable."""
        status = self.status
        status.rejected_revisions = [entry for entry in status.rejected_revisions if entry.spec_hash != hash_]
        status.rejected_revisions.append(RejectedRevision(revision=candidate, spec_hash=hash_, reason=failure.reason,
                                                          message=failure.message, at=self.now))
        status.rejected_revisions = status.rejected_revisions[-MAX_REJECTED_REVISIONS:]
        self.set_revision_state(candidate, hash_, "RolledBack")
        self.retire(candidate)
        self.plan.revisions = [plan for plan in self.plan.revisions if plan.revision != candidate]
        self.plan.weights.pop(candidate, None)
        status.canary_revision = None
        status.canary_weight = 0
        status.rollout = None

    def promote(self, stable: str | None, stable_hash: str | None, candidate: str, hash_: str) -> Plan:
        """Traffic and the HPA move to the candidate's Deployment; nothing is re-deployed."""
        self.plan.revisions = [RevisionPlan(candidate, hash_, "stable", None, True)]
        self.plan.hpa_target = candidate
        self.plan.weights = {candidate: 100}
        if stable and stable_hash:
            self.retire(stable)
            self.set_revision_state(stable, stable_hash, "Superseded")
        self.set_revision_state(candidate, hash_, "Stable")
        status = self.status
        status.stable_revision = candidate
        status.canary_revision = None
        status.canary_weight = 0
        status.rollout = None
        replaced = f", {stable} removed" if stable else ""
        self.event(False, "Promoted", f"revision {candidate} promoted{replaced}")
        return self.finish("Healthy", "Serving", f"revision {candidate} is serving")

    def finish(self, phase: Phase, reason: str, message: str, rollout_reason: str | None = None) -> Plan:
        previous = self.observed.status
        status = self.status
        if phase != previous.phase and phase in ("RolledBack", "Failed"):
            self.event(True, reason, message)
        status.phase = phase
        status.message = message
        stable = status.stable_revision
        state = self.observed.deployments.get(stable) if stable else None
        status.replicas = (state.replicas or 0) if state else 0
        status.ready_replicas = state.ready_replicas if state else 0
        status.conditions = for_phase(
            status.conditions, phase=phase, reason=reason, message=message,
            available=status.ready_replicas > 0, generation=self.observed.generation, now=self.now,
            rollout_reason=rollout_reason)
        return self.plan


def deadline_passed(builder: Builder, progress: RolloutProgress, spec: ModelDeploymentSpec) -> bool:
    """No progress for progressDeadlineSeconds (as a Deployment's deadline, not a total budget)."""
    if progress.paused_at is not None:
        return False  # a paused rollout waits for its user, not for the clock
    since = progress.progressed_at or progress.started_at
    return builder.seconds_since(since) >= spec.rollout.progress_deadline_seconds


def until_deadline(builder: Builder, progress: RolloutProgress, spec: ModelDeploymentSpec) -> float:
    """The timer of a rollout that waits on the cluster: its progress deadline, or the end of the image
    pull grace if sooner. Everything else (pods ready, failing, gone) arrives as a watch event."""
    since = progress.progressed_at or progress.started_at
    due = [spec.rollout.progress_deadline_seconds - builder.seconds_since(since)]
    grace = spec.rollout.image_pull_grace_seconds - builder.seconds_since(progress.started_at)
    if grace > 0:
        due.append(grace)
    return max(0.2, min(due) + 0.1)  # just past it: the deadline has passed when the timer fires


def deadline_failure(failure: Failure | None, spec: ModelDeploymentSpec) -> Failure:
    deadline = spec.rollout.progress_deadline_seconds
    reason: FailureReason = failure.reason if failure else "ProgressDeadline"
    detail = f": {failure.message}" if failure else ""
    return Failure(reason, f"no progress for progressDeadlineSeconds ({deadline}s){detail}", True)


def labelled_stable(observed: Observed) -> str | None:
    """The newest owned Deployment labelled role=stable: the stable revision when status lost it."""
    labelled = [state for state in observed.deployments.values() if state.role == "stable"]
    if not labelled:
        return None
    return max(labelled, key=lambda state: (state.created_at, state.revision)).revision


def ready(observed: Observed, revision: str, wanted: int) -> bool:
    state = observed.deployments.get(revision)
    return state is not None and state.ready_replicas >= max(wanted, 1)


def stable_replicas(observed: Observed, stable: str, spec: ModelDeploymentSpec) -> int:
    state = observed.deployments.get(stable)
    current = state.replicas if state and state.replicas is not None else None
    return max(observed.hpa_replicas or current or spec.autoscaling.min_replicas, 1)


def waiting_message(observed: Observed, revision: str, failure: Failure | None, wanted: int | None = None) -> str:
    state = observed.deployments.get(revision)
    ready_count = state.ready_replicas if state else 0
    target = wanted if wanted is not None else (state.replicas if state and state.replicas is not None else "?")
    pods = count(target, "pod") if isinstance(target, int) else f"{target} pods"
    text = f"waiting for revision {revision}: {ready_count}/{pods} ready"
    return f"{text} ({failure.reason}: {failure.message})" if failure else text
