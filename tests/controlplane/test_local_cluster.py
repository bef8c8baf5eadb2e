"""The local cluster is a real one: the pinned binaries, production admission, working controllers,
Nodes kept Ready by the sandbox kubelet, and an operator that runs with nothing but the chart's RBAC."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from modeldeploy.kubeapi import KubeApiError, KubeClient
from modeldeploy_sandbox.binaries import ensure_binaries, selected_version
from modeldeploy_sandbox.cluster import LocalCluster
from modeldeploy_sandbox.controlplane import ControlPlane
from modeldeploy_sandbox.sandbox import Sandbox, model_deployment
from modeldeploy_sandbox.waiting import wait_until


def test_every_component_is_the_pinned_release(cluster: LocalCluster, admin: KubeClient) -> None:
    assert admin.request("GET", "/version")["gitVersion"] == selected_version()
    names = {name: component.process.args[0] for name, component in cluster.control_plane.components.items()}
    assert set(names) == {"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler"}
    cache = cluster.control_plane.binaries.directory
    assert all(Path(binary).parent == cache for binary in names.values())


def test_nodes_are_ready_with_gpus_labels_taints_and_fresh_leases(cluster: LocalCluster, admin: KubeClient) -> None:
    nodes = {node["metadata"]["name"]: node for node in admin.list("v1", "Node")}
    assert set(nodes) == {"cpu-1", "cpu-2", "gpu-a100-1", "gpu-l4-1"}
    for node in nodes.values():
        conditions = {c["type"]: c["status"] for c in node["status"]["conditions"]}
        assert conditions["Ready"] == "True" and node["spec"]["podCIDR"].startswith("10.244.")
        assert not any(t["key"].startswith("node.kubernetes.io/") for t in node["spec"].get("taints") or [])
    a100 = nodes["gpu-a100-1"]
    assert a100["status"]["allocatable"]["nvidia.com/gpu"] == "4"
    assert a100["metadata"]["labels"]["nvidia.com/gpu.product"] == "NVIDIA-A100-SXM4-80GB"
    assert {"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"} in a100["spec"]["taints"]
    assert "nvidia.com/gpu" not in nodes["cpu-1"]["status"]["allocatable"]
    runtime_class = admin.get("node.k8s.io/v1", "RuntimeClass", None, "nvidia")
    assert runtime_class is not None and runtime_class["handler"] == "nvidia"

    def renew_time() -> str:
        lease = admin.get("coordination.k8s.io/v1", "Lease", "kube-node-lease", "gpu-l4-1") or {}
        return str(lease["spec"]["renewTime"])

    first = renew_time()
    wait_until(lambda: renew_time() != first, timeout=30, message="the kubelet renewing its node Lease")


def test_admission_is_a_production_clusters(cluster: LocalCluster, bare_sandbox: Sandbox, tmp_path: Path) -> None:
    """PodSecurity enforces `restricted` in sandbox namespaces; OwnerReferencesPermissionEnforcement is on."""
    namespace = bare_sandbox.namespace
    unconfined = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "root", "namespace": namespace},
                  "spec": {"containers": [{"name": "c", "image": "busybox"}]}}  # may escalate, run as root
    with pytest.raises(KubeApiError) as refused:
        cluster.admin.create(unconfined)
    assert refused.value.status == 403 and 'violates PodSecurity "restricted' in refused.value.message

    # A ServiceAccount that may create ConfigMaps but not update the owner's finalizers.
    owner = cluster.admin.create({"apiVersion": "v1", "kind": "ConfigMap",
                                  "metadata": {"name": "owner", "namespace": namespace}})
    cluster.admin.create({"apiVersion": "v1", "kind": "ServiceAccount",
                          "metadata": {"name": "writer", "namespace": namespace}})
    cluster.admin.create({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
                          "metadata": {"name": "writer", "namespace": namespace},
                          "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["create"]}]})
    cluster.admin.create({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                          "metadata": {"name": "writer", "namespace": namespace},
                          "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "writer"},
                          "subjects": [{"kind": "ServiceAccount", "name": "writer", "namespace": namespace}]})
    child = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {
        "name": "child", "namespace": namespace,
        "ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap", "name": "owner",
                             "uid": owner["metadata"]["uid"], "blockOwnerDeletion": True}]}}
    kubeconfig = cluster.service_account_kubeconfig(namespace, "writer", tmp_path / "kubeconfig")
    writer = KubeClient.from_kubeconfig(kubeconfig)
    try:
        with pytest.raises(KubeApiError) as blocked:
            writer.create(child)
        writer.create({**child, "metadata": {**child["metadata"], "ownerReferences": [
            {**child["metadata"]["ownerReferences"][0], "blockOwnerDeletion": False}]}})
    finally:
        writer.close()
    assert blocked.value.status == 403 and "cannot set blockOwnerDeletion" in blocked.value.message


def test_the_operator_runs_cluster_wide_with_the_charts_cluster_role(cluster: LocalCluster,
                                                                      bare_sandbox: Sandbox) -> None:
    refused_before = len(cluster.forbidden())
    with cluster.operator(None) as operator:
        assert "--all-namespaces" in operator.command()[0]
        bare_sandbox.operator = operator
        model = bare_sandbox.artifacts.linear("resnet/1/model.onnx")
        bare_sandbox.apply(model_deployment("resnet", model))
        bare_sandbox.wait_for_phase("resnet", "Healthy", timeout=90)
        bare_sandbox.operator = None
    assert cluster.forbidden()[refused_before:] == []


def test_a_stopped_control_plane_leaves_nothing_behind() -> None:
    plane = ControlPlane(ensure_binaries(build=False)).start()
    pids = [component.process.pid for component in plane.components.values()]
    directory, data = plane.directory, plane.directory / "etcd-data"
    data_target = data.resolve()
    assert all(_alive(pid) for pid in pids) and data_target.is_dir()
    started = time.monotonic()
    plane.stop()
    assert time.monotonic() - started < 10
    assert not any(_alive(pid) for pid in pids)
    assert not directory.exists() and not data_target.exists()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
