"""What a running :class:`~.cluster.LocalCluster` is made of, in a few lines for a person to read:
the real components with their versions, pids and memory, the sandbox kubelet's Nodes, the start time.
``modeldeploy demo`` and ``modeldeploy sandbox up`` print it."""

from __future__ import annotations

import functools
import os
import subprocess
from pathlib import Path

from modeldeploy.formatting import duration
from modeldeploy_sandbox.cluster import LocalCluster
from modeldeploy_sandbox.controlplane import rss_bytes
from modeldeploy_sandbox.nodes import GPU_PRODUCT_LABEL, SandboxNode

MIB = 2**20


@functools.cache
def binary_version(path: Path) -> str:
    """What ``<binary> --version`` says, shortened: ``v1.37.2`` for Kubernetes, ``3.7.0`` for etcd."""
    try:
        result = subprocess.run([str(path), "--version"], capture_output=True, text=True, timeout=20, check=False)
    except OSError as error:
        return f"unknown ({error})"
    first = (result.stdout or result.stderr).strip().splitlines()[:1]
    words = first[0].split() if first else []
    return words[-1] if words else "unknown"


def _node(node: SandboxNode) -> str:
    if not node.gpus:
        return f"{node.name} ({node.capacity.get('cpu')} cpu)"
    return f"{node.name} ({node.gpus}x nvidia.com/gpu {node.labels.get(GPU_PRODUCT_LABEL, '')})"


def describe_cluster(cluster: LocalCluster) -> list[str]:
    """Lines naming every component the cluster started, with versions, pids and resident memory."""
    plane = cluster.control_plane
    memory = plane.rss()
    lines = [f"a real Kubernetes {cluster.version} control plane on {plane.server}, up in "
             f"{duration(cluster.started_seconds)} (control plane {duration(plane.started_seconds)}; "
             f"binaries built from their Go modules, cached in {plane.binaries.directory}):"]
    for name, component in plane.components.items():
        lines.append(f"  {name:<24} {binary_version(plane.binaries.path(name)):<8} pid {component.process.pid:<7} "
                     f"{memory.get(name, 0) / MIB:5.0f} MiB")
    lines.append(f"  {'sandbox kubelet':<24} {'':<8} (this process: pods run as real modelserver processes)")
    lines.append("    nodes: " + ", ".join(_node(node) for node in cluster.kubelet.nodes.values()))
    lines.append(f"  {'pod network proxy':<24} {cluster.network.url} (pod IPs 10.244.N.K <-> 127.244.N.K)")
    total = sum(memory.values()) + rss_bytes(os.getpid())
    lines.append(f"  resident memory: {sum(memory.values()) / MIB:.0f} MiB control plane, "
                 f"{total / MIB:.0f} MiB with this process")
    return lines

