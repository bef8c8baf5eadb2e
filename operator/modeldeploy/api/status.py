"""`ModelDeployment.status`: written only by the operator (and intents by the CLI)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import ConfigDict, Field

from .base import ApiModel

# The values this operator writes. Status fields themselves are open strings (`Known`): an older or
# newer operator may have written a value this one does not know, and reading it must not fail.
Phase = Literal["Pending", "Progressing", "Healthy", "Paused", "RolledBack", "Failed"]
FailureReason = Literal[
    "InvalidSpec", "InsufficientGPU", "Unschedulable", "ImagePull", "ArtifactIntegrity", "ArtifactNotFound",
    "ArtifactAccessDenied", "ArtifactTooLarge", "ArtifactFetchFailed", "ModelLoadFailed",
    "CrashLoop", "OOMKilled", "ProgressDeadline", "AnalysisFailed", "AnalysisInconclusive", "GateFailed",
    "Aborted", "FailedCreate", "DecryptionFailed", "SignatureInvalid", "DowngradeRefused",
]
RevisionState = Literal["Pending", "Canary", "Stable", "Superseded", "RolledBack"]
Verdict = Literal["Pass", "Fail", "Inconclusive"]
IntentAction = Literal["promote", "abort", "retry", "pause", "resume"]
Stage = Literal["Starting", "Steps", "Promoting"]
# Condition reasons that are not failures: the rollout holds until the cause goes away.
HoldReason = Literal["MetricsUnavailable"]
Known = Annotated[str, Field(max_length=64)]
MAX_REJECTED_REVISIONS = 10
MAX_RECENT_EVENTS = 10


class StatusModel(ApiModel):
    # Status is written by older and newer operators alike: tolerate fields this one doesn't know.
    model_config = ConfigDict(extra="ignore", frozen=False)


class Condition(StatusModel):
    """A kstatus-style condition."""

    type: str
    """Ready, Reconciling, Stalled, Available or RolloutProgressing."""
    status: Literal["True", "False", "Unknown"]
    """Condition status."""
    reason: str = ""
    """CamelCase reason."""
    message: str = ""
    """Human-readable detail."""
    last_transition_time: str | None = None
    """When status last changed (RFC 3339)."""
    observed_generation: int | None = None
    """metadata.generation this condition was computed for."""


class RevisionStatus(StatusModel):
    """A revision: one set of pods, identified by the hash of everything that changes them."""

    name: str
    """Revision name, also the Deployment's name: <name>-<hash>."""
    spec_hash: str
    """Hash of the pod-changing part of the spec."""
    model_digest: str | None = None
    """The model digest this revision serves."""
    model_version: int | None = None
    """Its spec.model.version, recorded when the revision was created: the downgrade guard compares the next
revision's version with the stable revision's."""
    created_at: str | None = None
    """When the revision was first seen (RFC 3339)."""
    state: Known = "Pending"
    """Pending, Canary, Stable, Superseded or RolledBack."""


class RejectedRevision(StatusModel):
    """A revision that failed; it is not retried until the spec changes or retry is requested."""

    revision: str
    """Revision name."""
    spec_hash: str
    """Hash of the rejected pod spec."""
    reason: Known
    """Why it was rejected (a FailureReason)."""
    message: str = ""
    """Detail, e.g. the failed check with canary and stable values."""
    at: str | None = None
    """When (RFC 3339)."""


class RetiringRevision(StatusModel):
    """A revision traffic has left; it is deleted after rollout.scaleDownDelaySeconds."""

    revision: str
    """Revision name."""
    since: str
    """When traffic left it (RFC 3339)."""


class CheckResult(StatusModel):
    """The last analysis result of one check."""

    name: str
    """Check name."""
    canary: float | None = None
    """Canary value in the interval."""
    stable: float | None = None
    """Stable value in the interval."""
    canary_samples: int = 0
    """Canary requests in the interval."""
    stable_samples: int = 0
    """Stable requests in the interval."""
    verdict: Known = "Inconclusive"
    """Pass, Fail or Inconclusive."""
    message: str = ""
    """Why this verdict."""


class AnalysisStatus(StatusModel):
    """Progress of the canary analysis."""

    passed_intervals: int = 0
    """Passed intervals in the current step, as last written: a pass after the step's first is written with
the step's end or the next status write, not on its own."""
    consecutive_failures: int = 0
    """Failed intervals in a row."""
    last_run: str | None = None
    """When the last written interval was analysed (RFC 3339)."""
    verdict: Known | None = None
    """Verdict of the last interval."""
    consecutive_inconclusive: int = 0
    """Inconclusive intervals in a row (metrics available, too little to judge)."""
    metrics_unavailable_since: str | None = None
    """Since when the metric provider does not answer (RFC 3339); analysis holds meanwhile."""
    checks: list[CheckResult] = Field(default_factory=list)
    """Per-check results of the last interval."""
    baselines: dict[str, dict[str, list[float]]] = Field(default_factory=dict)
    """direct provider: per revision and pod endpoint, the counters the next interval is measured from,
so that a restarted operator measures from the last written interval."""


class RecordedEvent(StatusModel):
    """An Event of a transition, kept in status so that it is sent at least once, even across a crash."""

    type: Known
    """Normal or Warning."""
    reason: Known
    """Event reason."""
    message: Annotated[str, Field(max_length=1024)] = ""
    """Event message."""
    at: str
    """When the transition happened (RFC 3339)."""


class Intent(StatusModel):
    """A manual request written through the status subresource (kubectl modeldeploy ...)."""

    action: Known
    """promote, abort, retry, pause or resume."""
    requested_at: str | None = None
    """When it was requested (RFC 3339)."""


class RolloutProgress(StatusModel):
    """Clock state of the current rollout, so a restarted operator resumes where it was."""

    revision: str
    """The revision being rolled out."""
    started_at: str
    """When the revision's rollout started; the progress deadline counts from here."""
    stage: Known = "Starting"
    """Starting: canary pods and gates. Steps: traffic steps with analysis. Promoting: canary scaled to
the stable's size before traffic moves to it."""
    gates_passed: bool = False
    """The signature and smoke-test gates passed."""
    step: int = 0
    """Index of the current step."""
    step_started_at: str | None = None
    """When the current step's weight was set."""
    paused_at: str | None = None
    """When a pause intent froze the rollout (the deadline does not run while paused)."""
    paused_reason: Known | None = None
    """Why the rollout is paused: Paused (a user's intent) or AnalysisInconclusive."""
    ready_replicas: int = 0
    """Most ready pods of the revision seen so far in this rollout (more counts as progress)."""
    progressed_at: str | None = None
    """When the rollout last made progress (started, pods became ready, gates passed, a step began);
progressDeadlineSeconds counts from here."""
    steps_hash: Known | None = None
    """Hash of spec.rollout.steps when this rollout started its steps; an edit restarts the steps."""


class ModelDeploymentStatus(StatusModel):
    """Observed state."""

    observed_generation: int | None = None
    """metadata.generation last reconciled."""
    phase: Known = "Pending"
    """Pending, Progressing, Healthy, Paused, RolledBack or Failed."""
    message: str = ""
    """What is happening, in one line."""
    stable_revision: str | None = None
    """Revision that serves traffic."""
    canary_revision: str | None = None
    """Revision being rolled out."""
    canary_weight: Annotated[int, Field(ge=0, le=100)] = 0
    """Percent of traffic the canary receives (effective, as realised by the router)."""
    replicas: int = 0
    """Pods of the stable revision."""
    ready_replicas: int = 0
    """Ready pods of the stable revision."""
    revisions: list[RevisionStatus] = Field(default_factory=list)
    """Known revisions."""
    rejected_revisions: list[RejectedRevision] = Field(default_factory=list)
    """Revisions that failed and are not retried until the spec changes (the newest 10)."""
    retiring: list[RetiringRevision] = Field(default_factory=list)
    """Revisions without traffic that are deleted once the scale-down delay has passed."""
    rollout: RolloutProgress | None = None
    """Clock state of the rollout in progress."""
    analysis: AnalysisStatus | None = None
    """Canary analysis progress."""
    intent: Intent | None = None
    """Pending manual intent."""
    conditions: list[Condition] = Field(default_factory=list)
    """Ready, Reconciling, Stalled (kstatus), Available, RolloutProgressing."""
    recent_events: list[RecordedEvent] = Field(default_factory=list)
    """The last 10 transition Events; written with the status that made them, sent after it."""
