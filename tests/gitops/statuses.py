"""ModelDeployment objects in every phase, their status produced by the real rollout planner."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from modeldeploy.api import API_VERSION, KIND, ModelDeploymentStatus
from modeldeploy.rollout import ContainerState, PodState, plan
from modeldeploy.rollout.conditions import for_phase
from modeldeploy.rollout.errors import ReconcileError, failed_status

from ..unit.planner_fixtures import NAME, T0, deployment, observed, revision_of, spec


@dataclass(frozen=True)
class Case:
    name: str
    obj: dict[str, Any]
    argo: str  # Argo CD health status
    kstatus: str  # kstatus (Flux) result: Current, InProgress, Failed


def _obj(status: ModelDeploymentStatus | None, generation: int = 1) -> dict[str, Any]:
    obj: dict[str, Any] = {"apiVersion": API_VERSION, "kind": KIND,
                           "metadata": {"name": NAME, "namespace": "ml", "generation": generation},
                           "spec": {}}
    if status is not None:
        obj["status"] = status.to_dict()
    return obj


def _digest_mismatch(revision: str) -> PodState:
    fetch = ContainerState(name="fetch", init=True, terminated_reason="Error", terminated_exit_code=3,
                           terminated_message="digest mismatch")
    return PodState(name=f"{revision}-x", revision=revision, containers=(fetch,))


def statuses() -> dict[str, ModelDeploymentStatus]:
    old, new = spec(), spec(uri="https://models.example/resnet/2/model.onnx")
    progressing = plan(observed(old)).status
    healthy = plan(observed(old, progressing, [deployment(old, ready=2)], seconds=10)).status
    new_name, _ = revision_of(new)
    replacing = plan(observed(new, healthy, [deployment(old, ready=2)], seconds=20)).status
    rolled_back = plan(observed(new, replacing, [deployment(old, ready=2), deployment(new, role="canary")],
                                [_digest_mismatch(new_name)], seconds=30)).status
    failed = plan(observed(None, healthy, [deployment(old, ready=2)], seconds=40,
                           problems=("spec.rollout.steps[1].weight: weights must increase",))).status
    # A first deploy's Deployment is labelled canary until it is promoted.
    deadline = plan(observed(old, None, [deployment(old, ready=0, role="canary")], seconds=0)).status
    deadline = plan(observed(old, deadline, [deployment(old, ready=0, role="canary")], seconds=10_000)).status
    paused = replacing.model_copy(deep=True)
    paused.phase = "Paused"
    paused.conditions = for_phase(paused.conditions, phase="Paused", reason="Paused", message="paused by intent",
                                  available=True, generation=1, now="2026-01-01T00:01:00Z")
    # The planner never finishes in Pending (a first reconcile goes straight to Progressing), but the
    # phase exists in the API: build it the way the planner builds every phase.
    pending = ModelDeploymentStatus(observed_generation=1)
    pending.conditions = for_phase([], phase="Pending", reason="Waiting", message="waiting",
                                   available=False, generation=1, now="2026-01-01T00:00:00Z")
    # Errors a reconcile could not get past (rollout.errors): a child the API server refused, and a
    # transient API error while the stable serves.
    refused = ReconcileError("InvalidSpec", "the API server refused HorizontalPodAutoscaler resnet: ...", True)
    child_refused, _ = failed_status(ModelDeploymentStatus(), refused, generation=1, now=T0)
    transient = ReconcileError("TransientError", "an API request failed (500 InternalError): ...", False)
    api_error, _ = failed_status(healthy, transient, generation=1, now=T0 + timedelta(seconds=50))
    return {"Pending": pending, "Progressing": progressing,
            "Healthy": healthy, "Replacing": replacing, "RolledBack": rolled_back, "Failed": failed,
            "FailedFirstDeploy": deadline, "Paused": paused, "ChildRefused": child_refused,
            "TransientError": api_error}


def cases() -> list[Case]:
    by_phase = statuses()
    return [
        # kstatus calls an object without status Current (it cannot know better): see docs/gitops.md.
        Case("no-status", _obj(None), "Progressing", "Current"),
        Case("pending", _obj(by_phase["Pending"]), "Progressing", "InProgress"),
        Case("progressing", _obj(by_phase["Progressing"]), "Progressing", "InProgress"),
        Case("healthy", _obj(by_phase["Healthy"]), "Healthy", "Current"),
        Case("replacing", _obj(by_phase["Replacing"]), "Progressing", "InProgress"),
        Case("rolled-back", _obj(by_phase["RolledBack"]), "Degraded", "Failed"),
        Case("failed-invalid-spec", _obj(by_phase["Failed"]), "Degraded", "Failed"),
        Case("failed-first-deploy", _obj(by_phase["FailedFirstDeploy"]), "Degraded", "Failed"),
        Case("paused", _obj(by_phase["Paused"]), "Suspended", "InProgress"),
        Case("child-refused", _obj(by_phase["ChildRefused"]), "Degraded", "Failed"),
        Case("transient-api-error", _obj(by_phase["TransientError"]), "Progressing", "InProgress"),
        # The spec changed after the operator's last status: whatever status says is stale.
        Case("healthy-but-stale", _obj(by_phase["Healthy"], generation=2), "Progressing", "InProgress"),
        Case("rolled-back-but-stale", _obj(by_phase["RolledBack"], generation=2), "Progressing", "InProgress"),
    ]
