"""The rollout planner: observed state in, next status and actions out. Pure and deterministic.

One call decides one reconcile: which revisions exist with how many replicas, where the HPA
and the traffic point, which revisions are deleted, the next status and the events. Every
clock it needs comes from `Observed.now` and from status, so a restarted operator resumes.
`needs()` tells the reconciler which slow inputs (gates, metric samples) this round wants.
"""

from __future__ import annotations

from ..api.spec import ModelDeploymentSpec
from ..render.revision import revision_name, spec_hash
from .builder import Builder, labelled_stable, ready
from .canary import analysis_due_in, canary
from .downgrade import downgrade_refusal, refuse_downgrade
from .immediate import first_deploy, replace, steady
from .model import Needs, Observed, Plan


def _invalid(builder: Builder) -> Plan:
    builder.plan.touch_children = False  # keep serving what serves; never retry hot
    message = "; ".join(builder.observed.problems) or "spec does not parse"
    previous = builder.observed.status
    if previous.phase == "Failed" and previous.message != message:
        builder.event(True, "InvalidSpec", message)  # still invalid, but differently
    return builder.finish("Failed", "InvalidSpec", message)


def _rejected(builder: Builder, hash_: str) -> Plan | None:
    status = builder.status
    rejected = next((entry for entry in status.rejected_revisions if entry.spec_hash == hash_), None)
    if rejected is None:
        return None
    observed = builder.observed
    stable = status.stable_revision
    if stable and stable in observed.deployments:
        builder.serve_stable(stable, observed.deployments[stable].spec_hash, render=False)
    retiring = {entry.revision for entry in status.retiring}
    builder.plan.delete_revisions += [name for name in observed.deployments
                                      if name != stable and name not in retiring]
    status.canary_revision, status.canary_weight, status.rollout = None, 0, None
    message = (f"revision {rejected.revision} was rejected ({rejected.reason}): {rejected.message}; "
               "change the spec or run `kubectl modeldeploy retry` to try again")
    return builder.finish("RolledBack" if builder.plan.weights else "Failed", rejected.reason, message)


def _candidate(observed: Observed) -> tuple[str, str] | None:
    if observed.spec is None or observed.problems:
        return None
    hash_ = spec_hash(observed.spec, observed.template)
    return revision_name(observed.name, hash_), hash_


def _retire_due(builder: Builder, delay: float, candidate: str) -> float | None:
    """Delete retiring revisions whose delay has passed; seconds until the next one is due."""
    keep, next_due = [], None
    rejected = {entry.revision for entry in builder.status.rejected_revisions}
    for entry in builder.status.retiring:
        reused = entry.revision == candidate and candidate not in rejected  # a retry brings it back
        if reused or entry.revision not in builder.observed.deployments:
            continue
        remaining = delay - builder.seconds_since(entry.since)
        if remaining <= 0:
            builder.plan.delete_revisions.append(entry.revision)
            continue
        keep.append(entry)
        next_due = remaining if next_due is None else min(next_due, remaining)
    builder.status.retiring = keep
    return next_due


def plan(observed: Observed) -> Plan:
    """Decide the next step of one ModelDeployment."""
    builder = Builder(observed)
    spec = observed.spec
    found = _candidate(observed)
    if spec is None or found is None:
        return _invalid(builder)
    candidate, hash_ = found
    result = _decide(builder, spec, candidate, hash_)
    # Revisions that lose traffic in this round start retiring now; older ones may be due.
    due = _retire_due(builder, spec.rollout.scale_down_delay_seconds, candidate)
    if due is not None:
        result.requeue_after = min(result.requeue_after or due, due)
    return result


def _decide(builder: Builder, spec: ModelDeploymentSpec, candidate: str, hash_: str) -> Plan:
    observed = builder.observed
    status = builder.status
    if status.intent is not None and status.intent.action == "retry":
        status.rejected_revisions = [entry for entry in status.rejected_revisions if entry.spec_hash != hash_]
        status.intent = None
        builder.event(False, "Retry", f"retrying revision {candidate}")
    rejected = _rejected(builder, hash_)
    if rejected is not None:
        return rejected
    stable = status.stable_revision
    if stable not in observed.deployments:
        # Status lost it (never written, or unreadable): the children still say what serves. A first
        # deploy is never planned while an owned Deployment labelled stable exists.
        labelled = labelled_stable(observed)
        first = status.rollout.revision if status.rollout is not None else None
        if labelled is not None and labelled != first:  # a first deploy's Deployment is labelled stable too
            if labelled != stable:
                builder.event(False, "StableRecovered", f"stable revision {labelled} recovered from its Deployment")
            stable = labelled
        elif stable != candidate:
            stable = None  # its Deployment is gone and its spec with it: start over from the current spec
        status.stable_revision = stable
    for name in observed.deployments:
        if name not in (stable, candidate):
            # e.g. a canary superseded by a newer spec mid-rollout: traffic leaves it now, pods later.
            builder.retire(name)
            builder.mark_superseded(name)
    if stable == candidate and candidate in observed.deployments:
        status.intent = None  # nothing is rolling out: an intent has nothing to act on
        return steady(builder, candidate, hash_)
    if stable is None or stable == candidate:
        return first_deploy(builder, spec, candidate, hash_)
    refusal = downgrade_refusal(spec, status, stable)
    if refusal is not None:
        return refuse_downgrade(builder, stable, candidate, refusal)
    if spec.rollout.strategy == "immediate":
        return replace(builder, spec, stable, candidate, hash_)
    return canary(builder, spec, stable, candidate, hash_)


def needs(observed: Observed) -> Needs:
    """Which slow inputs the next `plan(observed)` will use: gate results, analysis samples."""
    found = _candidate(observed)
    spec, progress = observed.spec, observed.status.rollout
    if spec is None or found is None or progress is None or spec.rollout.strategy != "canary":
        return Needs()
    candidate, _ = found
    if progress.revision != candidate or progress.paused_at is not None:
        return Needs()
    gates = progress.stage == "Starting" and not progress.gates_passed and ready(observed, candidate, 1)
    due = analysis_due_in(observed, spec)
    return Needs(gates=gates, analysis=due is not None and due <= 0)
