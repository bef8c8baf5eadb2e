"""Plain data in and out of the rollout planner: what was observed, and what should happen next."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Literal

from ..api.spec import ModelDeploymentSpec
from ..api.status import FailureReason, ModelDeploymentStatus

if TYPE_CHECKING:
    from .analysis import RevisionSample

Role = Literal["stable", "canary"]


@dataclass(frozen=True)
class ContainerState:
    """The part of a container status the failure classifier reads."""

    name: str
    init: bool = False
    ready: bool = False
    restart_count: int = 0
    waiting_reason: str | None = None
    waiting_message: str | None = None
    terminated_reason: str | None = None
    terminated_exit_code: int | None = None
    terminated_message: str | None = None
    last_terminated_reason: str | None = None
    last_terminated_exit_code: int | None = None
    last_terminated_message: str | None = None


@dataclass(frozen=True)
class PodState:
    name: str
    revision: str
    phase: str = "Pending"
    ready: bool = False
    unschedulable_message: str | None = None
    containers: tuple[ContainerState, ...] = ()
    address: str | None = None
    requests_gpu: bool = False


@dataclass(frozen=True)
class DeploymentState:
    """A revision's Deployment as observed."""

    revision: str
    spec_hash: str
    role: str | None
    replicas: int | None
    ready_replicas: int = 0
    available_replicas: int = 0
    updated_replicas: int = 0
    # The Deployment controller's ReplicaFailure condition (reason FailedCreate): why its ReplicaSet
    # cannot create pods, in the API server's words. None while pods can be created.
    replica_failure: str | None = None
    created_at: str = ""  # metadata.creationTimestamp (RFC 3339 sorts as text)
    # Its pod template carries the traffic label (a first deploy's): its pods are born routable.
    born_serving: bool = False


@dataclass(frozen=True)
class GateResult:
    """Outcome of the pre-traffic gates (signature, smoke test) for one canary."""

    passed: bool
    message: str


@dataclass(frozen=True)
class AnalysisSamples:
    """One interval's metrics of both revisions; None where the provider had nothing (inconclusive)."""

    canary: RevisionSample | None
    stable: RevisionSample | None
    unavailable: str | None = None  # the provider does not answer (why): hold, neither pass nor fail
    canary_missing: str | None = None  # why `canary` is None (the provider's word), for the checks' messages
    # revision -> endpoint -> counters the next interval starts from (kept in status across restarts)
    baselines: dict[str, dict[str, list[float]]] = field(default_factory=dict)


@dataclass(frozen=True)
class Needs:
    """Inputs the planner will want this round, fetched by the reconciler before it plans."""

    gates: bool = False
    analysis: bool = False


@dataclass(frozen=True)
class Observed:
    name: str
    namespace: str
    generation: int
    spec: ModelDeploymentSpec | None
    problems: tuple[str, ...]
    status: ModelDeploymentStatus
    deployments: dict[str, DeploymentState]
    pods: tuple[PodState, ...]
    now: datetime
    hpa_replicas: int | None = None  # the HPA's current desired replicas of the stable revision
    gates: GateResult | None = None
    samples: AnalysisSamples | None = None
    # What the router routes now (revision -> percent), read from the routing objects: the truth
    # about weights, as Flagger's GetRoutes. Empty: nothing routed yet (or not read).
    routes: dict[str, int] = field(default_factory=dict)
    # The operator's part of the pods (render.containers.template_identity): part of a revision's hash.
    template: str = ""

    def pods_of(self, revision: str) -> list[PodState]:
        return [pod for pod in self.pods if pod.revision == revision]


@dataclass(frozen=True)
class RevisionPlan:
    """A Deployment (+ its Service) the operator keeps.

    `render` is True only for the revision of the current spec: older revisions are never
    re-rendered (their spec is gone), only scaled and relabelled.
    """

    revision: str
    spec_hash: str
    role: Role
    replicas: int | None  # None: the HPA owns the replica count
    render: bool
    # A new Deployment's pods carry the traffic label from birth (no label patch per pod). Only a
    # first deploy's: nothing else can route to them before they serve. Fixed at creation (see
    # reconciler._revision): adding a template label later would re-create every pod.
    born_serving: bool = False


@dataclass(frozen=True)
class EventRecord:
    type: Literal["Normal", "Warning"]
    reason: str
    message: str
    at: str = ""  # the transition's time (RFC 3339): with the object's uid, the Event's identity


@dataclass(frozen=True)
class Failure:
    reason: FailureReason
    message: str
    fatal: bool  # fatal: reject now; otherwise only reported until the deadline


@dataclass
class Plan:
    status: ModelDeploymentStatus
    revisions: list[RevisionPlan] = field(default_factory=list)
    delete_revisions: list[str] = field(default_factory=list)
    hpa_target: str | None = None
    weights: dict[str, int] = field(default_factory=dict)  # revision -> percent of traffic
    events: list[EventRecord] = field(default_factory=list)
    requeue_after: float | None = None
    touch_children: bool = True  # False: leave every child as it is (invalid spec)
    prime_metrics: bool = False  # a step began: reset the metric baselines of both revisions
    verdicts: list[str] = field(default_factory=list)  # analysis verdicts of this round (for metrics)
