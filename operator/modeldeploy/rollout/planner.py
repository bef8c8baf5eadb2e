"""The rollout planner: observed state in, next status and actions out. Pure and deterministic.

One call decides one reconcile: which revisions exist with how many replicas, where the HPA
and the traffic point, which revisions are deleted, the next status and the events. Every
clock it needs comes from `Observed.now` and from status, so a restarted operator resumes.
"""

from __future__ import annotations

from datetime import datetime

from ..api.spec import ModelDeploymentSpec
from ..api.status import (
    FailureReason,
    ModelDeploymentStatus,
    Phase,
    RejectedRevision,
    RevisionState,
    RevisionStatus,
    RolloutProgress,
)
from ..render.revision import revision_name, spec_hash
from .conditions import for_phase
from .failures import classify
from .model import EventRecord, Failure, Observed, Plan, RevisionPlan

PROGRESS_REQUEUE_SECONDS = 5.0
MAX_KEPT_REVISIONS = 10
CANARY_NOT_YET = ("canary steps are not implemented in this operator version: "
                  "the revision is rolled out as immediate")


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _parse(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


class _Builder:
    """Accumulates the plan; keeps the decision functions below short."""

    def __init__(self, observed: Observed) -> None:
        self.observed = observed
        self.now = _iso(observed.now)
        self.status: ModelDeploymentStatus = observed.status.model_copy(deep=True)
        self.status.observed_generation = observed.generation
        self.plan = Plan(status=self.status)

    def event(self, warning: bool, reason: str, message: str) -> None:
        self.plan.events.append(EventRecord("Warning" if warning else "Normal", reason, message))

    def set_revision_state(self, name: str, hash_: str, state: RevisionState, digest: str | None = None) -> None:
        for entry in self.status.revisions:
            if entry.name == name:
                entry.state = state
                return
        self.status.revisions.append(RevisionStatus(name=name, spec_hash=hash_, model_digest=digest,
                                                    created_at=self.now, state=state))
        self.status.revisions = self.status.revisions[-MAX_KEPT_REVISIONS:]

    def finish(self, phase: Phase, reason: str, message: str, rollout_reason: str | None = None) -> Plan:
        previous = self.observed.status
        status = self.status
        if phase != previous.phase:
            warning = phase in ("RolledBack", "Failed")
            self.event(warning, reason if warning else phase, message or phase)
        status.phase = phase
        status.message = message
        stable = status.stable_revision
        state = self.observed.deployments.get(stable) if stable else None
        status.replicas = state.replicas or 0 if state else 0
        status.ready_replicas = state.ready_replicas if state else 0
        status.conditions = for_phase(
            status.conditions, phase=phase, reason=reason, message=message,
            available=status.ready_replicas > 0, generation=self.observed.generation, now=self.now,
            rollout_reason=rollout_reason)
        return self.plan


def _deadline_passed(observed: Observed, progress: RolloutProgress, spec: ModelDeploymentSpec) -> bool:
    elapsed = (observed.now - _parse(progress.started_at)).total_seconds()
    return elapsed >= spec.rollout.progress_deadline_seconds


def _ready(observed: Observed, revision: str, wanted: int) -> bool:
    state = observed.deployments.get(revision)
    return state is not None and state.ready_replicas >= max(wanted, 1)


def _stable_replicas(observed: Observed, stable: str, spec: ModelDeploymentSpec) -> int:
    state = observed.deployments.get(stable)
    current = state.replicas if state and state.replicas is not None else None
    return max(observed.hpa_replicas or current or spec.autoscaling.min_replicas, 1)


def _reject(builder: _Builder, candidate: str, hash_: str, failure: Failure) -> None:
    status = builder.status
    status.rejected_revisions = [entry for entry in status.rejected_revisions if entry.spec_hash != hash_]
    status.rejected_revisions.append(RejectedRevision(revision=candidate, spec_hash=hash_, reason=failure.reason,
                                                      message=failure.message, at=builder.now))
    builder.set_revision_state(candidate, hash_, "RolledBack")
    builder.plan.delete_revisions.append(candidate)
    status.canary_revision = None
    status.canary_weight = 0
    status.rollout = None


def _invalid(builder: _Builder) -> Plan:
    builder.plan.touch_children = False  # keep serving what serves; never retry hot
    message = "; ".join(builder.observed.problems) or "spec does not parse"
    previous = builder.observed.status
    if previous.phase == "Failed" and previous.message != message:
        builder.event(True, "InvalidSpec", message)  # still invalid, but differently
    return builder.finish("Failed", "InvalidSpec", message)


def _serve_stable(builder: _Builder, stable: str, hash_: str, render: bool) -> None:
    builder.plan.revisions.append(RevisionPlan(stable, hash_, "stable", None, render))
    builder.plan.hpa_target = stable
    builder.plan.weights[stable] = 100


def _rejected(builder: _Builder, spec: ModelDeploymentSpec, hash_: str, rejected: RejectedRevision) -> Plan:
    observed = builder.observed
    stable = builder.status.stable_revision
    if stable and stable in observed.deployments:
        _serve_stable(builder, stable, observed.deployments[stable].spec_hash, render=False)
    builder.plan.delete_revisions += [name for name in observed.deployments if name != stable]
    message = (f"revision {rejected.revision} was rejected ({rejected.reason}): {rejected.message}; "
               "change the spec or run `kubectl modeldeploy retry` to try again")
    phase: Phase = "RolledBack" if stable and stable in observed.deployments else "Failed"
    return builder.finish(phase, rejected.reason, message)


def _progress(builder: _Builder, candidate: str) -> RolloutProgress:
    progress = builder.status.rollout
    if progress is None or progress.revision != candidate:
        progress = RolloutProgress(revision=candidate, started_at=builder.now)
        builder.status.rollout = progress
        builder.event(False, "RevisionCreated", f"rolling out revision {candidate}")
    return progress


def _first_deploy(builder: _Builder, spec: ModelDeploymentSpec, candidate: str, hash_: str) -> Plan:
    observed = builder.observed
    progress = _progress(builder, candidate)
    builder.set_revision_state(candidate, hash_, "Pending", spec.model.digest)
    _serve_stable(builder, candidate, hash_, render=True)
    status = builder.status
    if _ready(observed, candidate, 1):
        status.stable_revision = candidate
        status.rollout = None
        builder.set_revision_state(candidate, hash_, "Stable")
        builder.event(False, "Promoted", f"revision {candidate} is serving")
        return builder.finish("Healthy", "Serving", f"revision {candidate} is serving")
    failure = classify(observed.pods_of(candidate))
    if (failure and failure.fatal) or _deadline_passed(observed, progress, spec):
        failure = _deadline_failure(failure, spec) if not (failure and failure.fatal) else failure
        _reject(builder, candidate, hash_, failure)
        builder.plan.revisions.clear()
        builder.plan.hpa_target = None
        builder.plan.weights.clear()
        return builder.finish("Failed", failure.reason, f"revision {candidate} failed: {failure.message}")
    builder.plan.requeue_after = PROGRESS_REQUEUE_SECONDS
    return builder.finish("Progressing", "RolloutInProgress", _waiting_message(observed, candidate, failure))


def _deadline_failure(failure: Failure | None, spec: ModelDeploymentSpec) -> Failure:
    deadline = spec.rollout.progress_deadline_seconds
    reason: FailureReason = failure.reason if failure else "ProgressDeadline"
    detail = f": {failure.message}" if failure else ""
    return Failure(reason, f"not ready within progressDeadlineSeconds ({deadline}s){detail}", True)


def _waiting_message(observed: Observed, revision: str, failure: Failure | None) -> str:
    state = observed.deployments.get(revision)
    ready = state.ready_replicas if state else 0
    wanted = state.replicas if state and state.replicas is not None else "?"
    text = f"waiting for revision {revision}: {ready}/{wanted} pods ready"
    return f"{text} ({failure.reason}: {failure.message})" if failure else text


def _replace(builder: _Builder, spec: ModelDeploymentSpec, stable: str, candidate: str, hash_: str) -> Plan:
    """A new revision next to a serving stable one: ready it, switch traffic, delete the old one."""
    observed = builder.observed
    status = builder.status
    progress = _progress(builder, candidate)
    builder.set_revision_state(candidate, hash_, "Canary", spec.model.digest)
    stable_hash = observed.deployments[stable].spec_hash
    replicas = _stable_replicas(observed, stable, spec)
    status.canary_revision = candidate
    rollout_reason = "CanaryAsImmediate" if spec.rollout.strategy == "canary" else "Immediate"
    if _ready(observed, candidate, replicas):
        # Promotion: traffic and the HPA move to the new Deployment; nothing is re-deployed.
        builder.plan.revisions.append(RevisionPlan(candidate, hash_, "stable", None, True))
        builder.plan.hpa_target = candidate
        builder.plan.weights[candidate] = 100
        builder.plan.delete_revisions.append(stable)
        builder.set_revision_state(stable, stable_hash, "Superseded")
        builder.set_revision_state(candidate, hash_, "Stable")
        status.stable_revision = candidate
        status.canary_revision = None
        status.canary_weight = 0
        status.rollout = None
        builder.event(False, "Promoted", f"revision {candidate} promoted, {stable} removed")
        return builder.finish("Healthy", "Serving", f"revision {candidate} is serving")
    _serve_stable(builder, stable, stable_hash, render=False)
    failure = classify(observed.pods_of(candidate))
    if (failure and failure.fatal) or _deadline_passed(observed, progress, spec):
        failure = failure if failure and failure.fatal else _deadline_failure(failure, spec)
        _reject(builder, candidate, hash_, failure)
        return builder.finish("RolledBack", failure.reason,
                              f"revision {candidate} rolled back: {failure.message}")
    builder.plan.revisions.append(RevisionPlan(candidate, hash_, "canary", replicas, True))
    builder.plan.weights[candidate] = 0
    builder.plan.requeue_after = PROGRESS_REQUEUE_SECONDS
    message = _waiting_message(observed, candidate, failure)
    if spec.rollout.strategy == "canary":
        message += f"; {CANARY_NOT_YET}"
    return builder.finish("Progressing", "RolloutInProgress", message, rollout_reason)


def plan(observed: Observed) -> Plan:
    """Decide the next step of one ModelDeployment."""
    builder = _Builder(observed)
    spec = observed.spec
    if spec is None or observed.problems:
        return _invalid(builder)
    status = builder.status
    hash_ = spec_hash(spec)
    candidate = revision_name(observed.name, hash_)
    if status.intent is not None and status.intent.action == "retry":
        status.rejected_revisions = [entry for entry in status.rejected_revisions if entry.spec_hash != hash_]
        status.intent = None
        builder.event(False, "Retry", f"retrying revision {candidate}")
    rejected = next((entry for entry in status.rejected_revisions if entry.spec_hash == hash_), None)
    if rejected is not None:
        return _rejected(builder, spec, hash_, rejected)
    stable = status.stable_revision
    if stable is not None and stable not in observed.deployments and stable != candidate:
        stable = None  # its Deployment is gone and its spec with it: start over from the current spec
        status.stable_revision = None
    leftovers = [name for name in observed.deployments if name not in (stable, candidate)]
    builder.plan.delete_revisions += leftovers
    if stable is None or stable == candidate:
        if stable == candidate and candidate in observed.deployments:
            _serve_stable(builder, candidate, hash_, render=True)
            status.canary_revision = None
            status.canary_weight = 0
            status.rollout = None
            if _ready(observed, candidate, 1):
                return builder.finish("Healthy", "Serving", f"revision {candidate} is serving")
            failure = classify(observed.pods_of(candidate))
            return builder.finish("Progressing", "StableNotReady", _waiting_message(observed, candidate, failure))
        return _first_deploy(builder, spec, candidate, hash_)
    return _replace(builder, spec, stable, candidate, hash_)
