"""A driver of the canary planner, as the reconciler drives it, with the cluster's answers from the test."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from modeldeploy.api import ModelDeploymentSpec, ModelDeploymentStatus
from modeldeploy.rollout import GateResult, Observed, Plan, plan
from modeldeploy.rollout.analysis import RevisionSample

from .planner_fixtures import deployment, observed, revision_of, spec_dict

GOOD = RevisionSample(requests=500, failures=0, latency_p99=0.05, latency_mean=0.02, queue_time_mean=0.001)
BAD = RevisionSample(requests=500, failures=60, latency_p99=0.05, latency_mean=0.02, queue_time_mean=0.001)
FEW = RevisionSample(requests=20, failures=0, latency_p99=0.05, latency_mean=0.02, queue_time_mean=0.001)
STEPS = [{"weight": 10, "pause": "20s"}, {"weight": 50, "pause": "20s"}]


def retiring(result: Plan) -> set[str]:
    return {entry.revision for entry in result.status.retiring}


def canary_spec(uri: str = "https://models.example/resnet/2/model.onnx", **rollout: Any) -> ModelDeploymentSpec:
    settings_: dict[str, Any] = {"strategy": "canary", "steps": STEPS, "progressDeadlineSeconds": 600,
                                 "analysis": {"interval": "10s", "failureLimit": 2, "minSamples": 200}}
    settings_.update(rollout)
    body = spec_dict(uri)
    body["rollout"] = settings_
    body["autoscaling"] = {"minReplicas": 4, "maxReplicas": 8}
    return ModelDeploymentSpec.model_validate(body)


OLD = canary_spec("https://models.example/resnet/1/model.onnx")
NEW = canary_spec()
OLD_NAME, _ = revision_of(OLD)
NEW_NAME, _ = revision_of(NEW)


class World:
    """Drives the planner like the reconciler would, with the cluster's answers supplied by the test."""

    def __init__(self) -> None:
        first = plan(observed(OLD, None, [deployment(OLD, replicas=4, ready=4)]))
        assert first.status.stable_revision == OLD_NAME
        self.status: ModelDeploymentStatus = first.status
        self.clock = 0.0
        self.canary_ready = 0
        self.canary_replicas: int | None = None
        self.last: Plan = first

    def observe(self, **inputs: Any) -> Observed:
        children = [deployment(OLD, replicas=4, ready=4)]
        if self.canary_replicas is not None:
            children.append(deployment(NEW, replicas=self.canary_replicas, ready=min(self.canary_ready,
                                                                                     self.canary_replicas)))
        return replace(observed(NEW, self.status, children, seconds=self.clock), **inputs)

    def step(self, seconds: float = 0.0, **inputs: Any) -> Plan:
        self.clock += seconds
        result = plan(self.observe(**inputs))
        assert plan(self.observe(**inputs)) == result  # deterministic
        self.status = result.status
        wanted = {r.revision: r.replicas for r in result.revisions}
        self.canary_replicas = wanted.get(NEW_NAME) if NEW_NAME in wanted else (
            None if NEW_NAME in result.delete_revisions else self.canary_replicas)
        self.last = result
        return result


def to_first_step(world: World) -> Plan:
    world.step(1)
    world.canary_ready = 1
    return world.step(1, gates=GateResult(True, "signature matches"))
