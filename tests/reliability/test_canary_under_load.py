"""Issue 12: a thousand Progressing ModelDeployments in one namespace do not starve a canary in
another: its steps run on time, it promotes, and its progress deadline is never used up by the
operator's own backlog. The load objects' pods can never be scheduled (a node selector no node
matches), so they stay Progressing, as the issue measured; the canary's pods are real modelserver
processes with real traffic and metrics. MODELDEPLOY_LOAD_OBJECTS sets the load (default 1000)."""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from modeldeploy.kubeapi import KubeClient
from modeldeploy_sandbox.cluster import LocalCluster
from modeldeploy_sandbox.sandbox import Sandbox, model_deployment
from modeldeploy_sandbox.waiting import wait_until

from ..sandbox.test_canary_scenarios import NAME, canary_manifest

pytestmark = [pytest.mark.reliability, pytest.mark.timeout(1800)]
LOAD = int(os.environ.get("MODELDEPLOY_LOAD_OBJECTS", "1000"))
API_VERSION, KIND = "serving.modeldeploy.dev/v1alpha1", "ModelDeployment"


def progressing(obj: dict[str, Any]) -> bool:
    status = obj.get("status") or {}
    return status.get("observedGeneration") == obj["metadata"]["generation"] and status.get("phase") == "Progressing"


def create_load(kube: KubeClient, sb: Sandbox, namespace: str) -> None:
    artifact = sb.artifacts.linear("load/1/model.onnx")
    manifest = model_deployment("load", artifact, resources={"nodeSelector": {"modeldeploy.dev/load": "nowhere"}},
                                rollout={"strategy": "immediate", "progressDeadlineSeconds": 3600})

    def create(index: int) -> None:
        kube.create({**manifest, "metadata": {"name": f"load-{index:04d}", "namespace": namespace}})

    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(create, range(LOAD)))


def test_a_canary_promotes_on_time_beside_a_thousand_progressing_objects(
        bare_sandbox: Sandbox, cluster: LocalCluster) -> None:
    sb = bare_sandbox
    load_namespace = f"{sb.namespace}-load"
    cluster.create_namespace(load_namespace)
    kube = cluster.admin
    try:
        with cluster.operator([sb.namespace, load_namespace]) as operator:
            sb.operator = operator
            sb.apply(canary_manifest(sb.artifacts.linear("resnet/1/model.onnx")))
            stable = str(sb.wait_for_phase(NAME, "Healthy", timeout=120)["stableRevision"])
            create_load(kube, sb, load_namespace)
            wait_until(lambda: sum(map(progressing, kube.list(API_VERSION, KIND, load_namespace))) == LOAD,
                       timeout=600, interval=2.0, message=f"{LOAD} load objects Progressing")
            # The canary's deadline is tight: a pod's start plus a step, far less than a pass over the queue
            # would take if each of the thousand objects were polled.
            started = time.monotonic()
            with sb.loadgen(NAME, rate=40, duration=300) as load:
                sb.apply(canary_manifest(sb.artifacts.linear("resnet/2/model.onnx", seed=2),
                                         progressDeadlineSeconds=90))
                status = sb.wait_for(NAME, lambda s: bool(s.get("rejectedRevisions"))
                                     or (s.get("phase") == "Healthy" and s.get("stableRevision") != stable),
                                     timeout=240, what="the canary's outcome")
                load.stop()
            took = time.monotonic() - started
            assert status.get("rejectedRevisions") in (None, []), status.get("rejectedRevisions")
            assert status["phase"] == "Healthy" and status["stableRevision"] != stable, status
            print(f"canary promoted in {took:.0f}s beside {LOAD} Progressing objects")
            still = sum(map(progressing, kube.list(API_VERSION, KIND, load_namespace)))
            assert still == LOAD  # the load stayed what it was: nothing rolled back there either
            kube.request("DELETE", f"/apis/serving.modeldeploy.dev/v1alpha1/namespaces/{load_namespace}"
                                   "/modeldeployments")
            wait_until(lambda: not kube.list(API_VERSION, KIND, load_namespace), timeout=600, interval=2.0,
                       message="the load objects deleted")
    finally:
        sb.operator = None
        cluster.delete_namespace(load_namespace, timeout=600)
