"""The downgrade guard: a revision whose model version is lower than the stable's is refused. Pure.

spec.model.version is the model's monotonic version. The stable's version is read from status: the
planner records each revision's spec.model.version in `status.revisions[].modelVersion` when it first
creates the revision, from the very spec that created it. Status is the planner's own memory (written by
the operator only, read back on every reconcile and after a restart), so no extra read is needed and the
check stays pure. A stable revision with no recorded version (created by an older operator, or status
lost and rebuilt from the Deployments) cannot be compared: the next revision is let through and records
its own version, which the guard uses from then on.

Refusing creates nothing of the new revision: the stable keeps serving, the phase is Failed with reason
DowngradeRefused (condition and Event). `spec.model.allowDowngrade: true` lets a deliberate revert
through; it changes no pod, so it does not make the reverted spec another revision.
"""

from __future__ import annotations

from ..api.spec import ModelDeploymentSpec
from ..api.status import ModelDeploymentStatus
from .builder import Builder
from .model import Plan

REASON = "DowngradeRefused"


def stable_model_version(status: ModelDeploymentStatus, stable: str) -> int | None:
    """The model version the stable revision was created with; None when not recorded."""
    entry = next((entry for entry in status.revisions if entry.name == stable), None)
    return entry.model_version if entry is not None else None


def downgrade_refusal(spec: ModelDeploymentSpec, status: ModelDeploymentStatus, stable: str) -> str | None:
    """Why the current spec may not replace `stable`; None when it may."""
    if spec.model.allow_downgrade:
        return None
    current = stable_model_version(status, stable)
    wanted = spec.model.version
    if current is None or wanted >= current:
        return None
    return (f"spec.model.version {wanted} is lower than version {current} of the stable revision {stable}, "
            "which keeps serving; to roll back on purpose set spec.model.allowDowngrade: true")


def refuse_downgrade(builder: Builder, stable: str, candidate: str, message: str) -> Plan:
    """Keep the stable as it is; the candidate gets no Deployment (one left from before is retired)."""
    observed = builder.observed
    status = builder.status
    if stable in observed.deployments:
        builder.serve_stable(stable, observed.deployments[stable].spec_hash, render=False)
    if candidate in observed.deployments:
        builder.retire(candidate)
        builder.mark_superseded(candidate)
    status.canary_revision, status.canary_weight, status.rollout = None, 0, None
    text = f"revision {candidate} refused: {message}"
    previous = observed.status
    if previous.phase == "Failed" and previous.message != text:
        builder.event(True, REASON, text)  # finish() only announces a change of phase
    return builder.finish("Failed", REASON, text)
