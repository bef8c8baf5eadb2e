"""Run the real operator (modeldeploy.handlers) against the emulator, plus a stand-in kubelet."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from modeldeploy.kubeapi import KubeClient
from modeldeploy.sandbox.emulator_server import EmulatorHandle
from modeldeploy.sandbox.modeldeploy_operator import running_modeldeploy

NAMESPACE = "ml"
MD = "serving.modeldeploy.dev/v1alpha1/modeldeployments"
DEPLOYMENTS = "apps/v1/deployments"
SERVICES = "v1/services"
HPAS = "autoscaling/v2/horizontalpodautoscalers"
PDBS = "policy/v1/poddisruptionbudgets"
DIGEST = "sha256:" + "ab" * 32


def model_deployment(name: str = "resnet", uri: str = "https://models.example/resnet/1/model.onnx",
                     **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": {"uri": uri, "digest": DIGEST},
        "autoscaling": {"minReplicas": 2, "maxReplicas": 4},
        "rollout": {"strategy": "immediate", "progressDeadlineSeconds": 600},
    }
    body.update(spec)
    return {"apiVersion": "serving.modeldeploy.dev/v1alpha1", "kind": "ModelDeployment",
            "metadata": {"name": name, "namespace": NAMESPACE}, "spec": body}


@contextlib.contextmanager
def operator(emulator: EmulatorHandle, resync_seconds: float = 300.0) -> Iterator[KubeClient]:
    with running_modeldeploy(emulator.url, resync_seconds=resync_seconds) as (_, context):
        yield context.kube


def mark_ready(emulator: EmulatorHandle, name: str) -> None:
    """What a kubelet + deployment controller would report: every wanted pod ready."""
    live = emulator.get(DEPLOYMENTS, NAMESPACE, name)
    assert live is not None, name
    replicas = live["spec"].get("replicas", 1)
    status = {"replicas": replicas, "readyReplicas": replicas, "availableReplicas": replicas,
              "updatedReplicas": replicas, "observedGeneration": live["metadata"].get("generation", 1)}
    emulator.patch(DEPLOYMENTS, NAMESPACE, name, {"status": status}, subresource="status")


def status_of(emulator: EmulatorHandle, name: str = "resnet") -> dict[str, Any]:
    live = emulator.get(MD, NAMESPACE, name)
    return (live or {}).get("status") or {}


def condition(status: dict[str, Any], kind: str) -> tuple[str | None, str | None]:
    for entry in status.get("conditions", []):
        if entry["type"] == kind:
            return entry["status"], entry.get("reason")
    return None, None


def revisions(emulator: EmulatorHandle, name: str = "resnet") -> list[str]:
    items = emulator.list(DEPLOYMENTS, NAMESPACE, label_selector=f"modeldeploy.dev/name={name}")
    return sorted(item["metadata"]["name"] for item in items)
