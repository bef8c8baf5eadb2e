"""The operator (its own process, as the chart's ServiceAccount) on the real control plane: real fetches,
real modelserver pods made by the real controllers and bound by the real scheduler, real traffic."""

from __future__ import annotations

import os
from typing import Any

from modeldeploy_sandbox.artifacts import Artifact
from modeldeploy_sandbox.cluster import LocalCluster
from modeldeploy_sandbox.network import loopback_for
from modeldeploy_sandbox.sandbox import Sandbox, model_deployment
from modeldeploy_sandbox.waiting import wait_until

NAME = "resnet"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _rejected(sb: Sandbox, name: str = NAME, timeout: float = 60) -> dict[str, Any]:
    status = sb.wait_for(name, lambda s: bool(s.get("rejectedRevisions")), timeout, "a rejected revision")
    return dict(status["rejectedRevisions"][-1])


def _scheduled_condition(pod: dict[str, Any]) -> dict[str, Any]:
    return next(c for c in (pod.get("status") or {}).get("conditions") or [] if c["type"] == "PodScheduled")


def test_a_model_deployment_serves_real_inference_through_its_service(sandbox: Sandbox) -> None:
    model = sandbox.artifacts.linear("resnet/1/model.onnx")
    sandbox.apply(model_deployment(NAME, model, autoscaling={"minReplicas": 2, "maxReplicas": 3}))
    status = sandbox.wait_for_phase(NAME, "Healthy", timeout=60)
    revision = status["stableRevision"]
    # Healthy needs one ready pod of the revision; wait for both (minReplicas 2).
    wait_until(lambda: len(sandbox.running_pods(ready=True)) == 2, timeout=30, message="2 ready pods")

    pods = sandbox.running_pods()
    assert len(pods) == 2 and {p.revision for p in pods} == {revision}
    assert all(p.address == loopback_for(p.pod_ip) for p in pods)
    assert all(p.ready and len(p.pids) == 1 and _alive(p.pids[0]) for p in pods), (pods, sandbox.describe(NAME))
    deployment = sandbox.kube.get("apps/v1", "Deployment", sandbox.namespace, revision)
    assert deployment is not None
    wait_until(lambda: (sandbox.kube.get("apps/v1", "Deployment", sandbox.namespace, revision) or {})
               .get("status", {}).get("readyReplicas") == 2, message="the Deployment's 2 ready replicas")
    assert sandbox.artifacts.hits("resnet/1/model.onnx") == 2  # each pod's init container fetched it

    with sandbox.loadgen(NAME, rate=40, duration=2.5) as load:
        assert load.wait(20)
    report = load.report()
    assert report.total() >= 80 and report.success_rate() == 1.0, report
    assert report.revisions() == {revision}
    assert report.latency_ms(0.99) < 1000


def test_a_spec_update_rolls_to_new_real_pods_and_stops_the_old_processes(sandbox: Sandbox) -> None:
    sandbox.apply(model_deployment(NAME, sandbox.artifacts.linear("resnet/1/model.onnx")))
    old = sandbox.wait_for_phase(NAME, "Healthy", timeout=60)["stableRevision"]
    old_pids = sandbox.kubelet.all_pids(sandbox.namespace)
    assert old_pids and all(map(_alive, old_pids))

    with sandbox.loadgen(NAME, rate=30, duration=60) as load:
        sandbox.apply(model_deployment(NAME, sandbox.artifacts.linear("resnet/2/model.onnx", seed=2)))
        status = sandbox.wait_for(NAME, lambda s: s.get("phase") == "Healthy" and s.get("stableRevision") != old,
                                  60, "new revision")
        new = status["stableRevision"]
        # The old Deployment is deleted and garbage-collected, and its processes are stopped.
        wait_until(lambda: not any(map(_alive, old_pids)), timeout=30, message="the old processes stopped")
        served = load.report().successes(new)
        wait_until(lambda: load.report().successes(new) >= served + 15, timeout=10,
                   message="traffic on the new revision only")
        report = load.stop()
    assert {p.revision for p in sandbox.running_pods()} == {new}
    assert report.successes(new) > 0 and report.failures(new) == 0, report
    # Requests routed to an old pod between its SIGTERM and the EndpointSlice update fail, as with
    # kube-proxy lag in a cluster (the pods have no preStop delay): a handful at most.
    assert report.failures(old) <= 3, report


def test_a_digest_mismatch_is_artifact_integrity_and_the_old_revision_keeps_serving(sandbox: Sandbox) -> None:
    good = sandbox.artifacts.linear("resnet/1/model.onnx")
    sandbox.apply(model_deployment(NAME, good))
    stable = sandbox.wait_for_phase(NAME, "Healthy", timeout=60)["stableRevision"]

    other = sandbox.artifacts.linear("resnet/2/model.onnx", seed=2)
    tampered = Artifact(other.path, other.url, good.digest, other.size)  # the wrong digest for that file
    with sandbox.loadgen(NAME, rate=20, duration=60) as load:
        sandbox.apply(model_deployment(NAME, tampered))
        rejected = _rejected(sandbox)
        report = load.stop()

    assert rejected["reason"] == "ArtifactIntegrity", rejected
    assert "digest mismatch" in rejected["message"]
    pod = sandbox.pods(NAME, rejected["revision"])
    if pod:  # the canary may already be scaled away; when it is still there, its init container says why
        fetch = pod[0]["status"]["initContainerStatuses"][0]
        terminated = fetch["state"].get("terminated") or fetch["lastState"]["terminated"]
        assert terminated["exitCode"] == 3 and terminated["reason"] == "Error"
        assert terminated["message"].startswith("ArtifactIntegrity: digest mismatch")
    assert sandbox.status(NAME)["stableRevision"] == stable
    assert report.revisions() == {stable} and report.failures() == 0, report


def test_an_artifact_that_is_not_there_is_artifact_not_found_not_a_digest_mismatch(sandbox: Sandbox) -> None:
    good = sandbox.artifacts.linear("resnet/1/model.onnx")
    sandbox.apply(model_deployment(NAME, good))
    stable = sandbox.wait_for_phase(NAME, "Healthy", timeout=60)["stableRevision"]

    missing = Artifact(good.path, good.url.replace("resnet/1/", "resnet/9/"), good.digest, good.size)  # a 404
    sandbox.apply(model_deployment(NAME, missing))
    rejected = _rejected(sandbox)

    # Rejected after the fetch failed again on its restart (a publish may still be in progress).
    assert rejected["reason"] == "ArtifactNotFound", rejected
    assert "could not be fetched (exit 4)" in rejected["message"] and "404" in rejected["message"], rejected
    assert sandbox.status(NAME)["stableRevision"] == stable


def test_a_model_that_fails_to_load_is_rejected_with_the_servers_message(sandbox: Sandbox) -> None:
    env = [{"name": "MODELSERVER_FAULT_LOAD_FAIL", "value": "1"}]
    sandbox.apply(model_deployment(NAME, sandbox.artifacts.linear(), runtime={"env": env}))
    rejected = _rejected(sandbox, timeout=40)
    assert rejected["reason"] == "ModelLoadFailed", rejected
    assert "load failed (MODELSERVER_FAULT_LOAD_FAIL)" in rejected["message"]
    assert sandbox.status(NAME)["phase"] == "Failed"  # nothing was ever stable


def test_a_server_past_its_memory_limit_is_rejected_as_oom_killed(sandbox: Sandbox) -> None:
    """64Mi: enough for the init container's fetch, not for ONNX Runtime serving (~100 MiB)."""
    sandbox.apply(model_deployment(NAME, sandbox.artifacts.linear(), resources={"limits": {"memory": "64Mi"}}))
    rejected = _rejected(sandbox, timeout=40)
    assert rejected["reason"] == "OOMKilled", rejected
    assert "container server was OOMKilled" in rejected["message"], rejected
    assert sandbox.status(NAME)["phase"] == "Failed"


def test_a_gpu_model_deployment_runs_on_the_gpu_node_with_its_product_and_runtime_class(sandbox: Sandbox) -> None:
    resources = {"gpu": {"count": 1, "product": "NVIDIA-L4"}, "runtimeClassName": "nvidia"}
    sandbox.apply(model_deployment(NAME, sandbox.artifacts.linear(), resources=resources))
    status = sandbox.wait_for_phase(NAME, "Healthy", timeout=60)
    (pod,) = sandbox.pods(NAME, status["stableRevision"])
    spec = pod["spec"]
    # The real scheduler placed it on the one node with that product, past the GPU taint; the
    # RuntimeClass admission plugin added the RuntimeClass's own node selector.
    assert spec["nodeName"] == "gpu-l4-1" and spec["runtimeClassName"] == "nvidia"
    assert spec["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-L4", "nvidia.com/gpu.present": "true"}
    assert spec["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    (running,) = sandbox.running_pods(ready=True)
    assert running.node == "gpu-l4-1"
    with sandbox.loadgen(NAME, rate=20, duration=1.5) as load:
        assert load.wait(20)
    assert load.report().success_rate() == 1.0 and load.report().total() >= 25, load.report()


def test_two_gpus_of_a_one_gpu_product_leave_the_pod_unschedulable_as_insufficient_gpu(sandbox: Sandbox) -> None:
    resources = {"gpu": {"count": 2, "product": "NVIDIA-L4"}, "runtimeClassName": "nvidia"}
    sandbox.apply(model_deployment(NAME, sandbox.artifacts.linear(), resources=resources))
    status = sandbox.wait_for(NAME, lambda s: "InsufficientGPU" in str(s.get("conditions")) + str(s.get("message")),
                              40, "InsufficientGPU")
    (pod,) = sandbox.pods(NAME)
    scheduled = _scheduled_condition(pod)
    nodes = len(sandbox.kube.list("v1", "Node"))
    # The real kube-scheduler's message: the L4 node has too few GPUs, the others have another product.
    assert (scheduled["status"], scheduled["reason"]) == ("False", "Unschedulable")
    assert scheduled["message"].startswith(
        f"0/{nodes} nodes are available: 1 Insufficient nvidia.com/gpu, {nodes - 1} node(s) didn't match "
        "Pod's node affinity/selector."), scheduled
    assert scheduled["message"] in str(status), status
    assert pod["status"]["phase"] == "Pending" and not pod["spec"].get("nodeName")
    assert sandbox.running_pods() == []  # nothing runs


def test_deleting_a_watched_namespace_while_the_operator_runs_completes(cluster: LocalCluster,
                                                                        bare_sandbox: Sandbox) -> None:
    sb = bare_sandbox
    with sb.run_operator():
        sb.apply(model_deployment(NAME, sb.artifacts.linear()))
        sb.wait_for_phase(NAME, "Healthy", timeout=60)
        cluster.admin.delete("v1", "Namespace", None, sb.namespace)

        def remaining() -> str:
            namespace = cluster.admin.get("v1", "Namespace", None, sb.namespace) or {}
            return "; ".join(c.get("message", "") for c in (namespace.get("status") or {}).get("conditions") or []
                             if c.get("status") == "True")

        # The namespace controller starts 5 s after the deletion; the operator then has seconds to let go.
        wait_until(lambda: cluster.admin.get("v1", "Namespace", None, sb.namespace) is None, timeout=30,
                   message=f"the namespace gone (still: {remaining()})")
