"""First deployments, steady state, and the immediate strategy: ready the new revision, then switch."""

from __future__ import annotations

from ..api.spec import ModelDeploymentSpec
from .builder import (
    Builder,
    deadline_failure,
    deadline_passed,
    ready,
    stable_replicas,
    until_deadline,
    waiting_message,
)
from .failures import revision_failure
from .model import Plan, RevisionPlan


def steady(builder: Builder, candidate: str, hash_: str) -> Plan:
    """The spec's revision is the stable one: keep it as it is."""
    builder.serve_stable(candidate, hash_, render=True)
    status = builder.status
    status.canary_revision = None
    status.canary_weight = 0
    status.rollout = None
    if ready(builder.observed, candidate, 1):
        return builder.finish("Healthy", "Serving", f"revision {candidate} is serving")
    failure = revision_failure(builder.observed, candidate)  # its pods' watch events wake the next round
    return builder.finish("Progressing", "StableNotReady", waiting_message(builder.observed, candidate, failure))


def first_deploy(builder: Builder, spec: ModelDeploymentSpec, candidate: str, hash_: str) -> Plan:
    """Nothing serves yet: there is nothing to compare a canary with, so it goes straight in."""
    observed = builder.observed
    progress = builder.progress(candidate)
    builder.set_revision_state(candidate, hash_, "Pending", spec.model.digest, spec.model.version)
    # Labelled canary until promoted: a Deployment labelled stable always is one that served (that is
    # how a lost status is rebuilt), and a first deploy is never planned while one exists.
    builder.serve_stable(candidate, hash_, render=True, role="canary", born_serving=True)
    state = observed.deployments.get(candidate)
    wanted = state.replicas if state and state.replicas is not None else spec.autoscaling.min_replicas
    if ready(observed, candidate, wanted):  # Healthy means every wanted pod serves, as kstatus reads it
        return builder.promote(None, None, candidate, hash_)
    builder.note_ready(candidate)
    failure = builder.failure_of(candidate, spec)
    if (failure and failure.fatal) or deadline_passed(builder, progress, spec):
        failure = failure if failure and failure.fatal else deadline_failure(failure, spec)
        builder.reject(candidate, hash_, failure)
        builder.plan.hpa_target = None
        return builder.finish("Failed", failure.reason, f"revision {candidate} failed: {failure.message}")
    builder.plan.requeue_after = until_deadline(builder, progress, spec)
    # The count it is created with, not "?": the Deployment's appearance then changes no status (a write saved).
    return builder.finish("Progressing", "RolloutInProgress", waiting_message(observed, candidate, failure, wanted))


def replace(builder: Builder, spec: ModelDeploymentSpec, stable: str, candidate: str, hash_: str) -> Plan:
    """immediate: the new revision is readied at the stable's size beside it, then takes all traffic."""
    observed = builder.observed
    progress = builder.progress(candidate)
    builder.set_revision_state(candidate, hash_, "Canary", spec.model.digest, spec.model.version)
    stable_hash = observed.deployments[stable].spec_hash
    replicas = stable_replicas(observed, stable, spec)
    builder.status.canary_revision = candidate
    if ready(observed, candidate, replicas):
        return builder.promote(stable, stable_hash, candidate, hash_)
    builder.serve_stable(stable, stable_hash, render=False)
    builder.note_ready(candidate)
    failure = builder.failure_of(candidate, spec)
    if (failure and failure.fatal) or deadline_passed(builder, progress, spec):
        failure = failure if failure and failure.fatal else deadline_failure(failure, spec)
        builder.reject(candidate, hash_, failure)
        return builder.finish("RolledBack", failure.reason, f"revision {candidate} rolled back: {failure.message}")
    builder.plan.revisions.append(RevisionPlan(candidate, hash_, "canary", replicas, True))
    builder.plan.weights[candidate] = 0
    builder.plan.requeue_after = until_deadline(builder, progress, spec)
    message = waiting_message(observed, candidate, failure, replicas)
    return builder.finish("Progressing", "RolloutInProgress", message, "Immediate")
