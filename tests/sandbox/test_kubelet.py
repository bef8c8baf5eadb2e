"""The pod simulator on the emulated API: real processes, restarts, deletion, scaling, GC."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import pytest

from modeldeploy.sandbox.artifacts import Artifact, ArtifactServer
from modeldeploy.sandbox.container_runner import Backoff
from modeldeploy.sandbox.deployments import new_pod
from modeldeploy.sandbox.emulator_server import EmulatorHandle, running_emulator, wait_until
from modeldeploy.sandbox.kubelet import Kubelet

from .manifests import DEPLOYMENTS, NS, PODS, create_revision, pod_status


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture(scope="module")
def artifacts() -> Iterator[ArtifactServer]:
    with ArtifactServer() as server:
        yield server


@pytest.fixture()
def model(artifacts: ArtifactServer) -> Artifact:
    return artifacts.linear("resnet/1/model.onnx")


@pytest.fixture()
def kubelet(emulator: EmulatorHandle) -> Iterator[Kubelet]:
    with Kubelet(emulator.url, backoff=Backoff(base=0.5, cap=1.0), grace_seconds=3.0) as running:
        yield running


def _ready_pods(kubelet: Kubelet, count: int, timeout: float = 20) -> list:  # type: ignore[type-arg]
    return wait_until(
        lambda: len(pods := [p for p in kubelet.pods() if p.ready]) == count and pods,
        timeout=timeout,
        message=f"{count} ready pods (errors: {kubelet.errors[-3:]})",
    )


def test_a_deployment_becomes_ready_pods_running_modelserver(
    emulator: EmulatorHandle, kubelet: Kubelet, model: Artifact
) -> None:
    create_revision(emulator, model, "resnet-a", replicas=2)
    pods = _ready_pods(kubelet, 2)
    assert sorted(p.address for p in pods) == ["127.0.0.2", "127.0.0.3"]
    status = wait_until(
        lambda: (
            (emulator.get(DEPLOYMENTS, NS, "resnet-a") or {}).get("status", {}).get("readyReplicas") == 2
            and emulator.get(DEPLOYMENTS, NS, "resnet-a")
        )
    )["status"]
    assert status == {
        "observedGeneration": 1,
        "replicas": 2,
        "updatedReplicas": 2,
        "readyReplicas": 2,
        "availableReplicas": 2,
    }
    (pod, *_) = emulator.list(PODS, NS)
    assert pod["metadata"]["name"].startswith("resnet-a-") and len(pod["metadata"]["name"]) == len("resnet-a-") + 5
    assert pod["metadata"]["ownerReferences"][0]["kind"] == "Deployment"
    assert pod["spec"]["nodeName"] == "modeldeploy-sandbox"
    conditions = {c["type"]: c["status"] for c in pod["status"]["conditions"]}
    assert conditions == {"PodScheduled": "True", "Initialized": "True", "ContainersReady": "True", "Ready": "True"}
    (fetch,) = pod["status"]["initContainerStatuses"]
    assert fetch["state"]["terminated"]["exitCode"] == 0 and fetch["state"]["terminated"]["reason"] == "Completed"
    (server,) = pod["status"]["containerStatuses"]
    assert server["ready"] and "running" in server["state"] and server["restartCount"] == 0

    # Nothing changes: nothing is written (no new resourceVersions).
    versions = {o["metadata"]["name"]: o["metadata"]["resourceVersion"] for o in emulator.list(PODS, NS)}
    deployment_version = emulator.get(DEPLOYMENTS, NS, "resnet-a")["metadata"]["resourceVersion"]  # type: ignore[index]
    time.sleep(1.0)
    assert {o["metadata"]["name"]: o["metadata"]["resourceVersion"] for o in emulator.list(PODS, NS)} == versions
    assert emulator.get(DEPLOYMENTS, NS, "resnet-a")["metadata"]["resourceVersion"] == deployment_version  # type: ignore[index]

    # Scale to zero: pods deleted, processes stopped, addresses free again.
    pids = kubelet.all_pids()
    emulator.patch(DEPLOYMENTS, NS, "resnet-a", {"spec": {"replicas": 0}})
    wait_until(lambda: not kubelet.all_pids() and not emulator.list(PODS, NS), timeout=10, message="scaled to 0")
    assert not any(map(_alive, pids)) and kubelet.addresses.taken() == set()
    wait_until(lambda: (emulator.get(DEPLOYMENTS, NS, "resnet-a") or {}).get("status") == {"observedGeneration": 2})


def test_deleting_a_pod_stops_its_process_and_the_controller_replaces_it(
    emulator: EmulatorHandle, kubelet: Kubelet, model: Artifact
) -> None:
    create_revision(emulator, model, "resnet-a")
    (first,) = _ready_pods(kubelet, 1)
    emulator.delete(PODS, NS, first.name)
    wait_until(lambda: not any(map(_alive, first.pids)), timeout=10, message="the old process gone")
    (second,) = _ready_pods(kubelet, 1)
    assert second.name != first.name
    assert kubelet.addresses.taken() == {second.address}  # the old address was released


@pytest.mark.parametrize("gc", [True, False], ids=["emulator-gc", "kubelet-cleanup"])
def test_deleting_the_deployment_stops_its_pods(model: Artifact, gc: bool) -> None:
    with running_emulator(gc=gc) as emulator, Kubelet(emulator.url) as kubelet:
        create_revision(emulator, model, "resnet-a")
        (pod,) = _ready_pods(kubelet, 1)
        emulator.delete(DEPLOYMENTS, NS, "resnet-a")
        wait_until(lambda: not emulator.list(PODS, NS) and not kubelet.all_pids(), timeout=10, message="pods gone")
        assert not any(map(_alive, pod.pids))


def test_a_crashing_server_restarts_with_backoff_and_shows_crash_loop_back_off(
    emulator: EmulatorHandle, kubelet: Kubelet, model: Artifact
) -> None:
    create_revision(emulator, model, "resnet-a", env={"MODELSERVER_FAULT_CRASH_AFTER_S": "0.3"})
    seen_waiting: list[str] = []

    def looping() -> dict | None:  # type: ignore[type-arg]
        for status in pod_status(emulator, "resnet-a"):
            for container in status.get("containerStatuses", []):
                waiting = container["state"].get("waiting") or {}
                if waiting.get("reason") == "CrashLoopBackOff" and waiting["message"] not in seen_waiting:
                    seen_waiting.append(waiting["message"])
                if container["restartCount"] >= 2 and waiting.get("reason") == "CrashLoopBackOff":
                    return dict(container)
        return None

    server = wait_until(looping, timeout=20, interval=0.05, message="CrashLoopBackOff after 2 restarts")
    last = server["lastState"]["terminated"]
    assert last["exitCode"] == 1 and last["reason"] == "Error"
    assert "injected crash after 0.3s (MODELSERVER_FAULT_CRASH_AFTER_S)" in last["message"]  # the log's tail
    assert not server["ready"]
    (pod,) = emulator.list(PODS, NS)
    label = f"pod={pod['metadata']['name']}_{NS}({pod['metadata']['uid']})"
    # 0.5 s after the first crash, then doubled up to the cap of 1 s.
    assert seen_waiting[:2] == [
        f"back-off 0.5s restarting failed container=server {label}",
        f"back-off 1s restarting failed container=server {label}",
    ]
    assert pod["status"]["phase"] == "Running"  # a crash-looping pod is still Running, and not Ready
    assert next(c for c in pod["status"]["conditions"] if c["type"] == "Ready")["status"] == "False"


def test_a_failing_init_container_reports_its_exit_code_and_message(
    emulator: EmulatorHandle, kubelet: Kubelet, model: Artifact
) -> None:
    wrong = Artifact(model.path, model.url, "sha256:" + "0" * 64, model.size)
    create_revision(emulator, wrong, "resnet-a")

    def fetch_failed() -> dict | None:  # type: ignore[type-arg]
        for status in pod_status(emulator, "resnet-a"):
            for container in status.get("initContainerStatuses", []):
                terminated = container["state"].get("terminated") or container["lastState"].get("terminated")
                if terminated and terminated["exitCode"] != 0:
                    return dict(terminated)
        return None

    terminated = wait_until(fetch_failed, timeout=15, message="fetch failed")
    assert terminated["exitCode"] == 3 and terminated["reason"] == "Error"
    assert terminated["message"].startswith("ArtifactIntegrity: digest mismatch for ")
    (status,) = pod_status(emulator, "resnet-a")
    assert status["phase"] == "Pending"
    initialized = next(c for c in status["conditions"] if c["type"] == "Initialized")
    assert (initialized["status"], initialized["reason"]) == ("False", "ContainersNotInitialized")
    assert status["containerStatuses"][0]["state"] == {"waiting": {"reason": "PodInitializing"}}


def test_a_gpu_pod_stays_pending_unschedulable(emulator: EmulatorHandle, kubelet: Kubelet, model: Artifact) -> None:
    create_revision(emulator, model, "resnet-a", resources={"gpu": {"count": 2}})
    (status,) = wait_until(
        lambda: [s for s in pod_status(emulator, "resnet-a") if s.get("conditions")], message="a scheduling verdict"
    )
    assert status["phase"] == "Pending"
    assert status["conditions"][0] | {"lastTransitionTime": None} == {
        "type": "PodScheduled",
        "status": "False",
        "reason": "Unschedulable",
        "lastProbeTime": None,
        "lastTransitionTime": None,
        "message": "0/1 nodes are available: 1 Insufficient nvidia.com/gpu.",
    }
    assert kubelet.pods() == []


def test_close_kills_every_process(emulator: EmulatorHandle, model: Artifact) -> None:
    kubelet = Kubelet(emulator.url).start()
    try:
        create_revision(emulator, model, "resnet-a")
        (pod,) = _ready_pods(kubelet, 1)
    finally:
        kubelet.close()
    assert not any(map(_alive, pod.pids))
    assert not kubelet.workdir.exists()


def test_the_sandbox_node_is_registered_without_gpus(emulator: EmulatorHandle, kubelet: Kubelet) -> None:
    node = emulator.get("v1/nodes", None, "modeldeploy-sandbox")
    assert node is not None
    allocatable = node["status"]["allocatable"]
    assert "cpu" in allocatable and "memory" in allocatable and "nvidia.com/gpu" not in allocatable
    assert node["status"]["conditions"][0]["type"] == "Ready"


def test_real_api_mode_runs_bound_pods_and_finishes_their_deletion(emulator: EmulatorHandle, model: Artifact) -> None:
    """expand_deployments=False, as far as the emulator allows: it has no ``pods/binding`` subresource, so
    the pod is created already bound; a finalizer stands in for the API server's graceful deletion."""
    with Kubelet(emulator.url, expand_deployments=False, grace_seconds=3.0) as kubelet:
        deployment = create_revision(emulator, model, "resnet-a")
        time.sleep(0.5)
        assert emulator.list(PODS, NS) == []  # pods are kube-controller-manager's job in this mode
        pod = new_pod(deployment)
        pod["metadata"].update(name="resnet-a-bound", finalizers=["sandbox.test/hold"])
        pod["spec"]["nodeName"] = "modeldeploy-sandbox"
        emulator.create(pod)
        (running,) = _ready_pods(kubelet, 1)
        emulator.delete(PODS, NS, "resnet-a-bound")  # → deletionTimestamp, held by the finalizer
        wait_until(lambda: not any(map(_alive, running.pids)), timeout=10, message="processes stopped")
        wait_until(lambda: kubelet.addresses.taken() == set(), message="address released")
        emulator.patch(PODS, NS, "resnet-a-bound", {"metadata": {"finalizers": None}})
        assert emulator.get(PODS, NS, "resnet-a-bound") is None

        gpu = new_pod(deployment)
        gpu["metadata"]["name"] = "resnet-a-gpu"
        gpu["spec"]["containers"][0]["resources"] = {"limits": {"nvidia.com/gpu": "1"}}
        emulator.create(gpu)
        wait_until(
            lambda: (emulator.get(PODS, NS, "resnet-a-gpu") or {}).get("status", {}).get("phase") == "Pending",
            message="an Unschedulable verdict",
        )
        assert not kubelet.errors
