"""The sandbox's Nodes: what the sandbox kubelet registers, heartbeats and reports.

Two CPU nodes and two GPU nodes, labelled and tainted as NVIDIA's GPU operator leaves them:
``nvidia.com/gpu`` capacity from the device plugin, ``nvidia.com/gpu.product`` and
``nvidia.com/gpu.present`` from GPU feature discovery, and the ``nvidia.com/gpu=present:NoSchedule``
taint that keeps CPU pods off. RuntimeClass ``nvidia`` (:mod:`.manifests`) schedules onto them.
"""

from __future__ import annotations

import dataclasses
import datetime
import platform
from collections.abc import Mapping
from typing import Any

GPU_RESOURCE = "nvidia.com/gpu"
GPU_PRODUCT_LABEL = "nvidia.com/gpu.product"
GPU_PRESENT_LABEL = "nvidia.com/gpu.present"
LEASE_DURATION_S = 40
_ARCH = {"x86_64": "amd64", "aarch64": "arm64"}


@dataclasses.dataclass(frozen=True)
class SandboxNode:
    name: str
    internal_ip: str
    capacity: Mapping[str, str]
    labels: Mapping[str, str] = dataclasses.field(default_factory=dict)
    taints: tuple[Mapping[str, str], ...] = ()

    @property
    def gpus(self) -> int:
        return int(self.capacity.get(GPU_RESOURCE, "0"))

    def all_labels(self) -> dict[str, str]:
        arch = _ARCH.get(platform.machine(), platform.machine())
        return {"kubernetes.io/hostname": self.name, "kubernetes.io/os": "linux", "kubernetes.io/arch": arch,
                "beta.kubernetes.io/os": "linux", "beta.kubernetes.io/arch": arch,
                "node.kubernetes.io/instance-type": "modeldeploy-sandbox", **self.labels}

    def manifest(self) -> dict[str, Any]:
        spec: dict[str, Any] = {"taints": [dict(t) for t in self.taints]} if self.taints else {}
        return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": self.name, "labels": self.all_labels()},
                "spec": spec}

    def status(self, now: str, kubelet_version: str) -> dict[str, Any]:
        def condition(kind: str, status: str, reason: str, message: str) -> dict[str, str]:
            return {"type": kind, "status": status, "reason": reason, "message": message,
                    "lastHeartbeatTime": now, "lastTransitionTime": now}

        return {
            "capacity": dict(self.capacity), "allocatable": dict(self.capacity),
            "conditions": [
                condition("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory"),
                condition("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
                condition("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID"),
                condition("Ready", "True", "KubeletReady", "modeldeploy sandbox kubelet is posting ready status"),
            ],
            "addresses": [{"type": "InternalIP", "address": self.internal_ip},
                          {"type": "Hostname", "address": self.name}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": {
                "kubeletVersion": kubelet_version, "kubeProxyVersion": "", "operatingSystem": "linux",
                "architecture": self.all_labels()["kubernetes.io/arch"],
                "containerRuntimeVersion": "sandbox://processes", "osImage": "modeldeploy sandbox",
                "kernelVersion": platform.release(), "machineID": "", "systemUUID": "", "bootID": "",
            },
        }

    def lease(self, renew: datetime.datetime) -> dict[str, Any]:
        return {
            "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": self.name, "namespace": "kube-node-lease"},
            "spec": {"holderIdentity": self.name, "leaseDurationSeconds": LEASE_DURATION_S,
                     "renewTime": renew.strftime("%Y-%m-%dT%H:%M:%S.%fZ")},
        }


def gpu_node(name: str, internal_ip: str, product: str, gpus: int) -> SandboxNode:
    return SandboxNode(
        name, internal_ip,
        {"cpu": "32", "memory": "256Gi", "pods": "110", "ephemeral-storage": "500Gi", GPU_RESOURCE: str(gpus)},
        labels={GPU_PRODUCT_LABEL: product, GPU_PRESENT_LABEL: "true", "nvidia.com/gpu.count": str(gpus)},
        taints=({"key": GPU_RESOURCE, "value": "present", "effect": "NoSchedule"},),
    )


def cpu_node(name: str, internal_ip: str) -> SandboxNode:
    return SandboxNode(name, internal_ip, {"cpu": "16", "memory": "64Gi", "pods": "110", "ephemeral-storage": "200Gi"})


def default_nodes() -> tuple[SandboxNode, ...]:
    return (
        cpu_node("cpu-1", "10.240.0.11"),
        cpu_node("cpu-2", "10.240.0.12"),
        gpu_node("gpu-a100-1", "10.240.0.21", "NVIDIA-A100-SXM4-80GB", 4),
        gpu_node("gpu-l4-1", "10.240.0.22", "NVIDIA-L4", 1),
    )
