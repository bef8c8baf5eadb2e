"""Session fixtures shared by every suite: the real Kubernetes control plane and the local cluster.

``cluster`` starts, once per test session, etcd, kube-apiserver, kube-controller-manager and
kube-scheduler (built from their Go modules; ``MODELDEPLOY_KUBE_VERSION`` picks the release, the
newest pinned one by default), installs our CRD, the Gateway API CRDs and RuntimeClass ``nvidia``,
and runs the sandbox kubelet with its CPU and GPU Nodes. Tests isolate themselves by namespace:
``sandbox`` gives each test its own, with the operator running in it as the chart's ServiceAccount.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from modeldeploy.kubeapi import KubeClient
from modeldeploy_sandbox.cluster import LocalCluster
from modeldeploy_sandbox.controlplane import ControlPlane
from modeldeploy_sandbox.sandbox import Sandbox


@pytest.fixture(scope="session")
def cluster() -> Iterator[LocalCluster]:
    with LocalCluster() as local_cluster:
        yield local_cluster


@pytest.fixture(scope="session")
def control_plane(cluster: LocalCluster) -> ControlPlane:
    return cluster.control_plane


@pytest.fixture(scope="session")
def admin(cluster: LocalCluster) -> KubeClient:
    """An API client with system:masters rights that discovers kinds it does not know."""
    return cluster.admin


@pytest.fixture()
def bare_sandbox(cluster: LocalCluster) -> Iterator[Sandbox]:
    """A fresh namespace with an artifact server, no operator. On exit: nothing of it is left running."""
    with Sandbox(cluster) as sb:
        yield sb
    assert cluster.kubelet.all_pids(sb.namespace) == [], f"processes of {sb.namespace} outlived it"


@pytest.fixture()
def sandbox(bare_sandbox: Sandbox, cluster: LocalCluster) -> Iterator[Sandbox]:
    """``bare_sandbox`` with the operator running for its namespace; the operator may not meet a 403."""
    refused_before = len(cluster.forbidden())
    with bare_sandbox.run_operator():
        yield bare_sandbox
    refused = cluster.forbidden()[refused_before:]
    assert not refused, f"the chart's RBAC refused the operator: {refused}"
