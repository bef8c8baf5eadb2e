"""Canary scenarios on a real cluster: first deploy, promotion of a good model, rollback of a
regression found by analysis, rejection of a corrupt artifact before any traffic, operator HA."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from modeldeploy.api import API_VERSION, KIND
from modeldeploy.kubeapi import KubeClient

from .helpers import (
    Load,
    Model,
    condition,
    events,
    get_md,
    infer,
    model_deployment,
    phase_is,
    spec_patch,
    wait_for,
)

NAME = "resnet"


def _deploy_healthy(kube: KubeClient, namespace: str, model: Model) -> dict[str, Any]:
    kube.create(model_deployment(NAME, namespace, model))
    return wait_for(kube, namespace, NAME, phase_is("Healthy"), "the first revision to serve", timeout=300)


def _revision_deployments(kube: KubeClient, namespace: str) -> set[str]:
    items = kube.list("apps/v1", "Deployment", namespace, {"modeldeploy.dev/name": NAME})
    return {item["metadata"]["name"] for item in items}


def test_first_deploy_serves_with_every_child(kube: KubeClient, namespace: str, models: dict[str, Model]) -> None:
    obj = _deploy_healthy(kube, namespace, models["v1"])
    status = obj["status"]
    stable = status["stableRevision"]
    assert condition(obj, "Ready")["status"] == "True"
    assert condition(obj, "Stalled")["status"] == "False"
    assert _revision_deployments(kube, namespace) == {stable}
    assert kube.get("v1", "Service", namespace, NAME) is not None
    assert kube.get("v1", "Service", namespace, stable) is not None
    hpa = kube.get("autoscaling/v2", "HorizontalPodAutoscaler", namespace, NAME)
    assert hpa is not None and hpa["spec"]["scaleTargetRef"]["name"] == stable
    answer = infer(kube, namespace, NAME, NAME)
    assert answer["outputs"][0]["name"] == "output" and answer["outputs"][0]["shape"] == [1, 3]
    # The operator never writes the spec: generation is still 1.
    assert obj["metadata"]["generation"] == 1


def test_canary_of_a_good_model_is_promoted(kube: KubeClient, namespace: str, models: dict[str, Model],
                                            load_factory: Callable[[str, str], Load]) -> None:
    before = _deploy_healthy(kube, namespace, models["v1"])["status"]["stableRevision"]
    weights: list[int] = []
    with load_factory(namespace, NAME) as load:
        kube.merge_patch(API_VERSION, KIND, namespace, NAME, spec_patch(models["v2"]))
        obj = wait_for(kube, namespace, NAME, lambda o: phase_is("Healthy")(o)
                       and o["status"]["stableRevision"] != before, "promotion of the canary", timeout=420,
                       on_poll=lambda o: weights.append(int(o.get("status", {}).get("canaryWeight") or 0)))
    after = obj["status"]["stableRevision"]
    assert max(weights) > 0, "traffic never reached the canary"
    assert load.ok > 100 and load.failed <= load.ok * 0.01, (load.ok, load.failed)
    assert obj["status"]["canaryWeight"] == 0 and not obj["status"].get("canaryRevision")
    wait_for(kube, namespace, NAME, lambda _: _revision_deployments(kube, namespace) == {after},
             "the old revision's Deployment to be deleted", timeout=60)
    reasons = [event["reason"] for event in events(kube, namespace, NAME)]
    assert "Promoted" in reasons
    assert not any(entry["revision"] == after for entry in obj["status"].get("rejectedRevisions", []))


def test_canary_with_a_regression_is_rolled_back(kube: KubeClient, namespace: str, models: dict[str, Model],
                                                 load_factory: Callable[[str, str], Load]) -> None:
    stable = _deploy_healthy(kube, namespace, models["v1"])["status"]["stableRevision"]
    with load_factory(namespace, NAME):
        kube.merge_patch(API_VERSION, KIND, namespace, NAME,
                         spec_patch(models["v3"], env={"MODELSERVER_FAULT_ERROR_RATE": "0.3"}))
        obj = wait_for(kube, namespace, NAME, phase_is("RolledBack"), "the rollback", timeout=420)
    status = obj["status"]
    assert status["stableRevision"] == stable and status["canaryWeight"] == 0
    (rejected,) = status["rejectedRevisions"]
    assert rejected["reason"] == "AnalysisFailed" and "successRate" in rejected["message"]
    stalled = condition(obj, "Stalled")
    assert (stalled["status"], stalled["reason"]) == ("True", "AnalysisFailed")
    assert condition(obj, "Available")["status"] == "True"
    wait_for(kube, namespace, NAME, lambda _: _revision_deployments(kube, namespace) == {stable},
             "the canary's Deployment to be deleted", timeout=60)
    assert infer(kube, namespace, NAME, NAME)["outputs"]  # the stable revision still serves
    assert any(e["type"] == "Warning" and e["reason"] == "AnalysisFailed" for e in events(kube, namespace, NAME))
    # Not retried: nothing changes while the spec stays the same.
    again = get_md(kube, namespace, NAME)
    assert again["status"]["rejectedRevisions"] == status["rejectedRevisions"]


def test_corrupt_artifact_is_rejected_before_any_traffic(kube: KubeClient, namespace: str,
                                                         models: dict[str, Model]) -> None:
    stable = _deploy_healthy(kube, namespace, models["v1"])["status"]["stableRevision"]
    weights: list[int] = []
    wrong = Model(uri=models["v3"].uri, digest=models["v2"].digest)  # v3's bytes, v2's digest
    kube.merge_patch(API_VERSION, KIND, namespace, NAME, spec_patch(wrong))
    obj = wait_for(kube, namespace, NAME, phase_is("RolledBack"), "the digest mismatch rollback", timeout=300,
                   on_poll=lambda o: weights.append(int(o.get("status", {}).get("canaryWeight") or 0)))
    assert max(weights) == 0
    assert obj["status"]["stableRevision"] == stable
    assert obj["status"]["rejectedRevisions"][0]["reason"] == "ArtifactIntegrity"


def test_operator_replicas_peer(kube: KubeClient, operator_namespace: str) -> None:
    pods = kube.list("v1", "Pod", operator_namespace, {"app.kubernetes.io/component": "operator"})
    running = [pod for pod in pods if pod.get("status", {}).get("phase") == "Running"]
    assert len(running) == 2
    peering = kube.request("GET", "/apis/kopf.dev/v1/clusterkopfpeerings/modeldeploy")
    peers = peering.get("status") or {}
    assert {pod["metadata"]["name"] for pod in running} <= set(peers)
    priorities = [peers[pod["metadata"]["name"]]["priority"] for pod in running]
    assert len(set(priorities)) == 2, f"replicas need distinct kopf priorities: {priorities}"
