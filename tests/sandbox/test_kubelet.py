"""The sandbox kubelet on the real control plane: the real ReplicaSet controller makes the pods, the real
kube-scheduler binds them to the sandbox's Nodes, the kubelet runs them as real modelserver processes."""

from __future__ import annotations

import contextlib
import ipaddress
import os
from typing import Any

import pytest

from modeldeploy.kubeapi import KubeClient, NotFound
from modeldeploy_sandbox.artifacts import Artifact
from modeldeploy_sandbox.cluster import LocalCluster
from modeldeploy_sandbox.container_runner import OOM_EXIT_CODE
from modeldeploy_sandbox.kubelet import Kubelet, PodProcesses
from modeldeploy_sandbox.network import loopback_for
from modeldeploy_sandbox.nodes import GPU_RESOURCE, SandboxNode
from modeldeploy_sandbox.sandbox import Sandbox
from modeldeploy_sandbox.waiting import holds, wait_until

from .manifests import create_revision, pod_statuses, pods, render_revision

DEPLOYMENT = ("apps/v1", "Deployment")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture()
def model(bare_sandbox: Sandbox) -> Artifact:
    return bare_sandbox.artifacts.linear("resnet/1/model.onnx")


def _ready_pods(sb: Sandbox, count: int, timeout: float = 30) -> list[PodProcesses]:
    return wait_until(lambda: len(found := sb.running_pods(ready=True)) == count and found, timeout=timeout,
                      message=f"{count} ready pods (kubelet errors: {sb.kubelet.errors[-3:]})")


def _nodes(kube: KubeClient) -> dict[str, dict[str, Any]]:
    return {node["metadata"]["name"]: node for node in kube.list("v1", "Node")}


def test_a_deployment_becomes_ready_pods_running_modelserver(bare_sandbox: Sandbox, model: Artifact) -> None:
    sb, kube, ns = bare_sandbox, bare_sandbox.kube, bare_sandbox.namespace
    create_revision(kube, ns, model, "resnet-a", replicas=2)
    running = _ready_pods(sb, 2)
    status = wait_until(lambda: (d := kube.get(*DEPLOYMENT, ns, "resnet-a") or {}).get("status", {})
                        .get("availableReplicas") == 2 and d["status"], message="the Deployment available")
    assert {k: status[k] for k in ("observedGeneration", "replicas", "updatedReplicas", "readyReplicas")} == {
        "observedGeneration": 1, "replicas": 2, "updatedReplicas": 2, "readyReplicas": 2}

    nodes = _nodes(kube)
    for pod in pods(kube, ns, "resnet-a"):
        meta, spec, pod_status = pod["metadata"], pod["spec"], pod["status"]
        # Made by the real ReplicaSet controller, bound by the real scheduler to a CPU node (the GPU
        # nodes' taint keeps a pod without GPUs off them).
        assert meta["generateName"].startswith("resnet-a-") and meta["ownerReferences"][0]["kind"] == "ReplicaSet"
        assert spec["nodeName"] in ("cpu-1", "cpu-2"), spec["nodeName"]
        # The pod IP is from the node's podCIDR; its processes listen on the loopback twin.
        cidr = ipaddress.ip_network(nodes[spec["nodeName"]]["spec"]["podCIDR"])
        assert ipaddress.ip_address(pod_status["podIP"]) in cidr
        (process,) = [p for p in running if p.name == meta["name"]]
        assert process.pod_ip == pod_status["podIP"] and process.address == loopback_for(pod_status["podIP"])
        assert process.node == spec["nodeName"] and process.revision == "resnet-a"
        assert pod_status["hostIP"] == next(a["address"] for a in nodes[spec["nodeName"]]["status"]["addresses"]
                                            if a["type"] == "InternalIP")
        conditions = {c["type"]: c["status"] for c in pod_status["conditions"]}
        assert conditions == {"PodScheduled": "True", "Initialized": "True", "ContainersReady": "True", "Ready": "True"}
        (fetch,) = pod_status["initContainerStatuses"]
        assert fetch["state"]["terminated"]["exitCode"] == 0 and fetch["state"]["terminated"]["reason"] == "Completed"
        (server,) = pod_status["containerStatuses"]
        assert server["ready"] and "running" in server["state"] and server["restartCount"] == 0
    assert sb.artifacts.hits("resnet/1/model.onnx") == 2  # each pod's init container fetched it

    # Nothing changes: the kubelet writes nothing (no new resourceVersions).
    def versions() -> dict[str, str]:
        return {p["metadata"]["name"]: p["metadata"]["resourceVersion"] for p in pods(kube, ns, "resnet-a")}

    before = versions()
    holds(lambda: versions() == before, 1.0, message="pods left unchanged")

    # Scale to zero: the ReplicaSet controller deletes the pods, the kubelet stops their processes.
    pids = sb.kubelet.all_pids(ns)
    kube.merge_patch(*DEPLOYMENT, ns, "resnet-a", {"spec": {"replicas": 0}})
    wait_until(lambda: not sb.kubelet.all_pids(ns) and not pods(kube, ns, "resnet-a"), timeout=20,
               message="scaled to 0")
    assert not any(map(_alive, pids)) and sb.kubelet.allocated_ips(ns) == set()
    wait_until(lambda: (s := (kube.get(*DEPLOYMENT, ns, "resnet-a") or {}).get("status", {}))
               .get("observedGeneration") == 2 and not s.get("replicas"), message="the Deployment's status at 0")


def test_deleting_a_pod_stops_its_process_and_the_controller_replaces_it(bare_sandbox: Sandbox,
                                                                         model: Artifact) -> None:
    sb = bare_sandbox
    create_revision(sb.kube, sb.namespace, model, "resnet-a")
    (first,) = _ready_pods(sb, 1)
    sb.kube.delete("v1", "Pod", sb.namespace, first.name)
    wait_until(lambda: not any(map(_alive, first.pids)), timeout=20, message="the old process gone")
    (second,) = _ready_pods(sb, 1)
    assert second.name != first.name and second.uid != first.uid
    wait_until(lambda: sb.kube.get("v1", "Pod", sb.namespace, first.name) is None, message="the old pod deleted")
    assert sb.kubelet.allocated_ips(sb.namespace) == {second.pod_ip}  # the old IP was released


def test_deleting_the_deployment_stops_its_pods_through_the_garbage_collector(bare_sandbox: Sandbox,
                                                                                model: Artifact) -> None:
    sb = bare_sandbox
    create_revision(sb.kube, sb.namespace, model, "resnet-a")
    (pod,) = _ready_pods(sb, 1)
    sb.kube.delete(*DEPLOYMENT, sb.namespace, "resnet-a")  # background: the GC deletes ReplicaSet, then pods
    wait_until(lambda: not pods(sb.kube, sb.namespace, "resnet-a") and not sb.kubelet.all_pids(sb.namespace),
               timeout=30, message="pods gone")
    assert not any(map(_alive, pod.pids))
    assert sb.kube.list("apps/v1", "ReplicaSet", sb.namespace) == []


def test_a_crashing_server_restarts_with_backoff_and_shows_crash_loop_back_off(bare_sandbox: Sandbox,
                                                                               model: Artifact) -> None:
    sb = bare_sandbox
    create_revision(sb.kube, sb.namespace, model, "resnet-a", env={"MODELSERVER_FAULT_CRASH_AFTER_S": "0.3"})
    seen_waiting: list[str] = []

    def looping() -> dict[str, Any] | None:
        for status in pod_statuses(sb.kube, sb.namespace, "resnet-a"):
            for container in status.get("containerStatuses", []):
                waiting = container["state"].get("waiting") or {}
                if waiting.get("reason") == "CrashLoopBackOff" and waiting["message"] not in seen_waiting:
                    seen_waiting.append(waiting["message"])
                if container["restartCount"] >= 2 and waiting.get("reason") == "CrashLoopBackOff":
                    return dict(container)
        return None

    server = wait_until(looping, timeout=40, interval=0.05, message="CrashLoopBackOff after 2 restarts")
    last = server["lastState"]["terminated"]
    assert last["exitCode"] == 1 and last["reason"] == "Error"
    assert "injected crash after 0.3s (MODELSERVER_FAULT_CRASH_AFTER_S)" in last["message"]  # the log's tail
    assert not server["ready"]
    (pod,) = pods(sb.kube, sb.namespace, "resnet-a")
    label = f"pod={pod['metadata']['name']}_{sb.namespace}({pod['metadata']['uid']})"
    backoff = sb.kubelet.backoff  # the base after the first crash, then doubled up to the cap
    assert seen_waiting[:2] == [
        f"back-off {backoff.delay(1):g}s restarting failed container=server {label}",
        f"back-off {backoff.delay(2):g}s restarting failed container=server {label}",
    ]
    assert pod["status"]["phase"] == "Running"  # a crash-looping pod is still Running, and not Ready
    assert next(c for c in pod["status"]["conditions"] if c["type"] == "Ready")["status"] == "False"


def test_a_failing_init_container_reports_its_exit_code_and_message(bare_sandbox: Sandbox, model: Artifact) -> None:
    sb = bare_sandbox
    wrong = Artifact(model.path, model.url, "sha256:" + "0" * 64, model.size)
    create_revision(sb.kube, sb.namespace, wrong, "resnet-a")

    def fetch_failed() -> dict[str, Any] | None:
        for status in pod_statuses(sb.kube, sb.namespace, "resnet-a"):
            for container in status.get("initContainerStatuses", []):
                terminated = container["state"].get("terminated") or container["lastState"].get("terminated")
                if terminated and terminated["exitCode"] != 0:
                    return dict(terminated)
        return None

    terminated = wait_until(fetch_failed, timeout=30, message="fetch failed")
    assert terminated["exitCode"] == 3 and terminated["reason"] == "Error"
    assert terminated["message"].startswith("ArtifactIntegrity: digest mismatch for ")
    (status,) = pod_statuses(sb.kube, sb.namespace, "resnet-a")
    assert status["phase"] == "Pending"
    initialized = next(c for c in status["conditions"] if c["type"] == "Initialized")
    assert (initialized["status"], initialized["reason"]) == ("False", "ContainersNotInitialized")
    assert status["containerStatuses"][0]["state"] == {"waiting": {"reason": "PodInitializing"}}


@pytest.mark.parametrize(("gpu", "why"), [
    ({"count": 8}, "{n} Insufficient nvidia.com/gpu"),
    ({"count": 1, "product": "NVIDIA-H100-80GB-HBM3"}, "{n} node(s) didn't match Pod's node affinity/selector"),
], ids=["8-gpus", "no-such-product"])
def test_a_gpu_pod_that_fits_no_node_stays_pending_with_the_schedulers_message(
        bare_sandbox: Sandbox, model: Artifact, gpu: dict[str, Any], why: str) -> None:
    sb = bare_sandbox
    create_revision(sb.kube, sb.namespace, model, "resnet-a", resources={"gpu": gpu})

    def verdict() -> dict[str, Any] | None:
        for status in pod_statuses(sb.kube, sb.namespace, "resnet-a"):
            return next((c for c in status.get("conditions") or [] if c["type"] == "PodScheduled"), None)
        return None

    scheduled = wait_until(verdict, timeout=30, message="the scheduler's verdict")
    n = len(_nodes(sb.kube))
    assert (scheduled["status"], scheduled["reason"]) == ("False", "Unschedulable")
    # The real kube-scheduler's words: every node, and why none fits; then its preemption attempt.
    assert scheduled["message"].startswith(f"0/{n} nodes are available: {why.format(n=n)}. preemption: "), scheduled
    (pod,) = pods(sb.kube, sb.namespace, "resnet-a")
    assert pod["status"]["phase"] == "Pending" and not pod["spec"].get("nodeName")
    assert sb.running_pods() == []


def test_a_server_past_its_memory_limit_is_oom_killed(bare_sandbox: Sandbox, model: Artifact) -> None:
    """64Mi: enough for ``modelserver fetch`` (~25 MiB), not for ``serve`` with ONNX Runtime (~100 MiB)."""
    sb = bare_sandbox
    create_revision(sb.kube, sb.namespace, model, "resnet-a", resources={"limits": {"memory": "64Mi"}})

    def oom_killed() -> tuple[dict[str, Any], dict[str, Any]] | None:
        for status in pod_statuses(sb.kube, sb.namespace, "resnet-a"):
            for container in status.get("containerStatuses", []):
                terminated = container["state"].get("terminated") or container["lastState"].get("terminated") or {}
                if terminated.get("reason") == "OOMKilled":
                    return status, terminated
        return None

    status, terminated = wait_until(oom_killed, timeout=30, message="an OOMKilled server")
    assert terminated["exitCode"] == OOM_EXIT_CODE
    (fetch,) = status["initContainerStatuses"]
    assert fetch["state"]["terminated"]["reason"] == "Completed"  # the init container stayed within the limit
    (server,) = status["containerStatuses"]
    assert not server["ready"]
    wait_until(lambda: any(c["restartCount"] >= 1 for s in pod_statuses(sb.kube, sb.namespace, "resnet-a")
                           for c in s.get("containerStatuses", [])), timeout=30, message="a restart after the kill")


def test_the_nodes_are_registered_with_their_gpus_labels_and_taints_and_their_leases_renewed(
        cluster: LocalCluster) -> None:
    nodes = _nodes(cluster.admin)
    assert {"cpu-1", "cpu-2", "gpu-a100-1", "gpu-l4-1"} <= set(nodes)
    for name, gpus, product in (("gpu-a100-1", "4", "NVIDIA-A100-SXM4-80GB"), ("gpu-l4-1", "1", "NVIDIA-L4")):
        node = nodes[name]
        assert node["status"]["allocatable"][GPU_RESOURCE] == gpus
        labels = node["metadata"]["labels"]
        assert labels["nvidia.com/gpu.product"] == product and labels["nvidia.com/gpu.present"] == "true"
        assert {"key": GPU_RESOURCE, "value": "present", "effect": "NoSchedule"} in node["spec"]["taints"]
    for name in ("cpu-1", "cpu-2"):
        assert GPU_RESOURCE not in nodes[name]["status"]["allocatable"] and not nodes[name]["spec"].get("taints")
    for node in nodes.values():
        ready = next(c for c in node["status"]["conditions"] if c["type"] == "Ready")
        assert ready["status"] == "True" and node["spec"]["podCIDR"], node["metadata"]["name"]
        assert node["status"]["nodeInfo"]["kubeletVersion"] == cluster.version
    runtime_class = cluster.admin.get("node.k8s.io/v1", "RuntimeClass", None, "nvidia")
    assert runtime_class is not None
    assert runtime_class["scheduling"]["nodeSelector"] == {"nvidia.com/gpu.present": "true"}

    def renewals() -> dict[str, str]:
        return {lease["metadata"]["name"]: lease["spec"]["renewTime"]
                for lease in cluster.admin.list("coordination.k8s.io/v1", "Lease", "kube-node-lease")}

    first = renewals()
    assert set(cluster.kubelet.nodes) <= set(first)
    wait_until(lambda: all(renewals()[name] != first[name] for name in cluster.kubelet.nodes), timeout=25,
               message="every node's Lease renewed")


def test_a_pod_bound_by_name_runs_and_its_deletion_waits_for_its_finalizer(bare_sandbox: Sandbox,
                                                                            model: Artifact) -> None:
    """A pod created with ``spec.nodeName`` (no scheduler) runs; deleting it stops its processes at once,
    and the kubelet's final delete leaves it to the finalizer, as the apiserver does."""
    sb, kube, ns = bare_sandbox, bare_sandbox.kube, bare_sandbox.namespace
    template = render_revision(kube, ns, model, "resnet-a")["spec"]["template"]
    pod = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {**template["metadata"], "name": "resnet-a-bound", "namespace": ns,
                        "finalizers": ["sandbox.test/hold"]},
           "spec": {**template["spec"], "nodeName": "cpu-2"}}
    kube.create(pod)
    (running,) = _ready_pods(sb, 1)
    assert running.node == "cpu-2"
    kube.delete("v1", "Pod", ns, "resnet-a-bound")  # -> deletionTimestamp; the finalizer holds the object
    wait_until(lambda: not any(map(_alive, running.pids)), timeout=20, message="processes stopped")
    wait_until(lambda: sb.kubelet.allocated_ips(ns) == set(), message="pod IP released")
    assert kube.get("v1", "Pod", ns, "resnet-a-bound") is not None
    kube.merge_patch("v1", "Pod", ns, "resnet-a-bound", {"metadata": {"finalizers": None}})
    wait_until(lambda: kube.get("v1", "Pod", ns, "resnet-a-bound") is None, message="the pod gone")
    assert not [e for e in sb.kubelet.errors if ns in e]


def test_close_kills_every_process(cluster: LocalCluster, bare_sandbox: Sandbox, model: Artifact) -> None:
    """A second kubelet with a node of its own (tainted, so only this test's pod goes there)."""
    sb, admin = bare_sandbox, cluster.admin
    taint = {"key": "modeldeploy.dev/test", "value": "close", "effect": "NoSchedule"}
    # ephemeral-storage: model pods request their emptyDirs' size (render/storage.py).
    node = SandboxNode("close-test-1", "10.240.0.31",
                       {"cpu": "4", "memory": "8Gi", "pods": "10", "ephemeral-storage": "20Gi"}, taints=(taint,))
    client = cluster.control_plane.client(timeout=10.0)
    kubelet = Kubelet(client, [node], kubelet_version=cluster.version).start()
    try:
        create_revision(admin, sb.namespace, model, "resnet-a", resources={
            "nodeSelector": {"kubernetes.io/hostname": node.name},
            "tolerations": [{"key": taint["key"], "operator": "Exists", "effect": "NoSchedule"}]})
        (pod,) = wait_until(lambda: [p for p in kubelet.pods() if p.ready], timeout=30,
                            message=f"the pod ready on {node.name} (errors: {kubelet.errors[-3:]})")
        assert pod.node == node.name and all(map(_alive, pod.pids))
        workdir = kubelet.workdir
        assert workdir.exists()
    finally:
        kubelet.close()
        client.close()
        # Nobody finishes deletions on that node any more: no new pods, force-delete its pods, then the node.
        # Until the scale-down reaches the ReplicaSet it may replace a force-deleted pod on that node, and
        # the replacement would stay Terminating for ever: force-delete until the Deployment is at 0.
        generation = admin.merge_patch(*DEPLOYMENT, sb.namespace, "resnet-a",
                                       {"spec": {"replicas": 0}})["metadata"]["generation"]

        def scaled_down() -> bool:
            for leftover in admin.list("v1", "Pod", sb.namespace):
                with contextlib.suppress(NotFound):  # gone between the list and the delete
                    admin.request("DELETE", f"/api/v1/namespaces/{sb.namespace}/pods/{leftover['metadata']['name']}",
                                  body={"apiVersion": "v1", "kind": "DeleteOptions", "gracePeriodSeconds": 0})
            status = (admin.get(*DEPLOYMENT, sb.namespace, "resnet-a") or {}).get("status") or {}
            return (status.get("observedGeneration", 0) >= generation and not status.get("replicas")
                    and not admin.list("v1", "Pod", sb.namespace))

        wait_until(scaled_down, timeout=30, message="the Deployment at 0 and no pod left")
        admin.delete("coordination.k8s.io/v1", "Lease", "kube-node-lease", node.name)
        admin.delete("v1", "Node", None, node.name)
    assert not any(map(_alive, pod.pids))
    assert not workdir.exists()
