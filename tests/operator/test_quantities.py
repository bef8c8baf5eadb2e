"""Quantities the apiserver canonicalises ("0.5" -> "500m", "1024Mi" -> "1Gi", "5000" -> "5k") cause
no write once the ModelDeployment is Healthy: a reconcile compares them by value, not by spelling."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from modeldeploy_sandbox.cluster import LocalCluster
from modeldeploy_sandbox.operator_process import OperatorProcess
from modeldeploy_sandbox.sandbox import Sandbox, model_deployment
from modeldeploy_sandbox.waiting import wait_until

from .reading import metric, operator_requests, writes

NAME = "resnet"
RESOURCES = {"requests": {"cpu": "0.5", "memory": "1024Mi"}, "limits": {"memory": "2048Mi"}}
AUTOSCALING = {"minReplicas": 1, "maxReplicas": 2, "metrics": [
    {"type": "cpu", "targetUtilization": 70}, {"type": "queueTime", "targetAverageMicroseconds": 5000}]}


@pytest.fixture()
def resyncing_operator(bare_sandbox: Sandbox, cluster: LocalCluster) -> Iterator[OperatorProcess]:
    """The operator with a 1 s resync, so that reconciles keep coming with nothing changed."""
    refused_before = len(cluster.forbidden())
    with bare_sandbox.run_operator(env={"MODELDEPLOY_RESYNC_SECONDS": "1"}) as process:
        yield process
    assert cluster.forbidden()[refused_before:] == []


def test_canonicalised_quantities_are_not_patched_again_and_again(
        bare_sandbox: Sandbox, cluster: LocalCluster, resyncing_operator: OperatorProcess) -> None:
    sb = bare_sandbox
    sb.apply(model_deployment(NAME, sb.artifacts.linear(), resources=RESOURCES, autoscaling=AUTOSCALING))
    revision = sb.wait_for_phase(NAME, "Healthy", timeout=60)["stableRevision"]
    deployment = sb.kube.get("apps/v1", "Deployment", sb.namespace, revision)
    assert deployment is not None
    live = deployment["spec"]["template"]["spec"]["containers"][0]["resources"]
    # The premise; ephemeral-storage is the operator's (the emptyDirs of the default 4Gi maxSize).
    assert live == {"requests": {"cpu": "500m", "memory": "1Gi", "ephemeral-storage": "5184Mi"},
                    "limits": {"memory": "2Gi"}}

    before = len(operator_requests(cluster, sb.namespace))
    reconciles = metric(resyncing_operator.metrics(), "modeldeploy_reconciles_total", result="ok")
    wait_until(lambda: metric(resyncing_operator.metrics(), "modeldeploy_reconciles_total", result="ok")
               >= reconciles + 3, timeout=30, message="three more reconciles")

    written = writes(operator_requests(cluster, sb.namespace)[before:])
    assert written == [], [(event["verb"], event["requestURI"]) for event in written]
