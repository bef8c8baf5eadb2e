"""Builders of planner inputs for the unit tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from modeldeploy.api import ModelDeploymentSpec, ModelDeploymentStatus
from modeldeploy.render import revision_name, spec_hash
from modeldeploy.rollout import DeploymentState, Observed, PodState

T0 = datetime(2026, 1, 1, tzinfo=UTC)
NAME = "resnet"


def spec_dict(uri: str = "https://models.example/resnet/1/model.onnx", **rollout: Any) -> dict[str, Any]:
    return {
        "model": {"uri": uri, "digest": "sha256:" + "ab" * 32},
        "autoscaling": {"minReplicas": 2, "maxReplicas": 4},
        "rollout": {"strategy": "immediate", "progressDeadlineSeconds": 120, **rollout},
    }


def spec(uri: str = "https://models.example/resnet/1/model.onnx", **rollout: Any) -> ModelDeploymentSpec:
    return ModelDeploymentSpec.model_validate(spec_dict(uri, **rollout))


def revision_of(model_spec: ModelDeploymentSpec) -> tuple[str, str]:
    hash_ = spec_hash(model_spec)
    return revision_name(NAME, hash_), hash_


def deployment(model_spec: ModelDeploymentSpec, replicas: int | None = 2, ready: int = 0,
               role: str = "stable") -> DeploymentState:
    name, hash_ = revision_of(model_spec)
    return DeploymentState(revision=name, spec_hash=hash_, role=role, replicas=replicas, ready_replicas=ready)


def observed(model_spec: ModelDeploymentSpec | None, status: ModelDeploymentStatus | None = None,
             deployments: list[DeploymentState] = (), pods: list[PodState] = (),  # type: ignore[assignment]
             seconds: float = 0, problems: tuple[str, ...] = (), generation: int = 1) -> Observed:
    return Observed(
        name=NAME, namespace="ml", generation=generation, spec=model_spec, problems=problems,
        status=status or ModelDeploymentStatus(), deployments={d.revision: d for d in deployments},
        pods=tuple(pods), now=T0 + timedelta(seconds=seconds))
