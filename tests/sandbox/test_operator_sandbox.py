"""The real operator against the sandbox: real fetches, real modelserver pods, real traffic."""

from __future__ import annotations

import os
import time

from modeldeploy.sandbox.artifacts import Artifact
from modeldeploy.sandbox.cluster import Sandbox, model_deployment
from modeldeploy.sandbox.emulator_server import wait_until

NS = "ml"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _rejected(sb: Sandbox, name: str = "resnet", timeout: float = 40) -> dict:  # type: ignore[type-arg]
    status = sb.wait_for(name, lambda s: bool(s.get("rejectedRevisions")), timeout, "a rejected revision")
    return dict(status["rejectedRevisions"][-1])


def test_a_model_deployment_serves_real_inference_through_its_service(sandbox: Sandbox) -> None:
    model = sandbox.artifacts.linear("resnet/1/model.onnx")
    sandbox.apply(model_deployment("resnet", model, autoscaling={"minReplicas": 2, "maxReplicas": 3}))
    status = sandbox.wait_for_phase("resnet", "Healthy", timeout=40)
    revision = status["stableRevision"]
    # Healthy needs one ready pod of the revision; wait for both (minReplicas 2).
    wait_until(lambda: len([p for p in sandbox.kubelet.pods() if p.ready]) == 2, timeout=20, message="2 ready pods")

    pods = sandbox.kubelet.pods()
    assert len(pods) == 2 and {p.revision for p in pods} == {revision}
    assert sorted(p.address for p in pods) == ["127.0.0.2", "127.0.0.3"]
    assert all(p.ready and len(p.pids) == 1 and _alive(p.pids[0]) for p in pods), (pods, sandbox.describe("resnet"))
    deployment = sandbox.kube.get("apps/v1", "Deployment", NS, revision)
    assert deployment is not None and deployment["status"]["readyReplicas"] == 2
    assert sandbox.artifacts.hits("resnet/1/model.onnx") == 2  # each pod's init container fetched it

    with sandbox.loadgen("resnet", rate=40, duration=2.5) as load:
        assert load.wait(15)
    report = load.report()
    assert report.total() >= 80 and report.success_rate() == 1.0, report
    assert report.revisions() == {revision}
    assert report.latency_ms(0.99) < 1000


def test_a_spec_update_rolls_to_new_real_pods_and_stops_the_old_processes(sandbox: Sandbox) -> None:
    sandbox.apply(model_deployment("resnet", sandbox.artifacts.linear("resnet/1/model.onnx")))
    old = sandbox.wait_for_phase("resnet", "Healthy", timeout=40)["stableRevision"]
    old_pids = sandbox.kubelet.all_pids()
    assert old_pids and all(map(_alive, old_pids))

    with sandbox.loadgen("resnet", rate=30, duration=60) as load:
        sandbox.apply(model_deployment("resnet", sandbox.artifacts.linear("resnet/2/model.onnx", seed=2)))
        status = sandbox.wait_for(
            "resnet", lambda s: s.get("phase") == "Healthy" and s.get("stableRevision") != old, 40, "new revision"
        )
        new = status["stableRevision"]
        # The old Deployment is deleted and garbage-collected, and its processes are stopped.
        deadline = time.monotonic() + 15
        while any(map(_alive, old_pids)) and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.5)  # some traffic on the new revision only
        report = load.stop()
    assert not any(map(_alive, old_pids))
    assert {p.revision for p in sandbox.kubelet.pods()} == {new}
    assert report.successes(new) > 0 and report.failures(new) == 0, report
    # Requests routed to an old pod between its SIGTERM and the route update fail, as with
    # kube-proxy lag in a cluster (the pods have no preStop delay): a handful at most.
    assert report.failures(old) <= 3, report


def test_a_digest_mismatch_is_artifact_integrity_and_the_old_revision_keeps_serving(sandbox: Sandbox) -> None:
    good = sandbox.artifacts.linear("resnet/1/model.onnx")
    sandbox.apply(model_deployment("resnet", good))
    stable = sandbox.wait_for_phase("resnet", "Healthy", timeout=40)["stableRevision"]

    other = sandbox.artifacts.linear("resnet/2/model.onnx", seed=2)
    tampered = Artifact(other.path, other.url, good.digest, other.size)  # the wrong digest for that file
    with sandbox.loadgen("resnet", rate=20, duration=60) as load:
        sandbox.apply(model_deployment("resnet", tampered))
        rejected = _rejected(sandbox)
        report = load.stop()

    assert rejected["reason"] == "ArtifactIntegrity", rejected
    assert "digest mismatch" in rejected["message"]
    pod = sandbox.pods("resnet", rejected["revision"])
    if pod:  # the canary may already be scaled away; when it is still there, its init container says why
        fetch = pod[0]["status"]["initContainerStatuses"][0]
        terminated = fetch["state"].get("terminated") or fetch["lastState"]["terminated"]
        assert terminated["exitCode"] == 3 and terminated["reason"] == "Error"
        assert terminated["message"].startswith("ArtifactIntegrity: digest mismatch")
    status = sandbox.status("resnet")
    assert status["stableRevision"] == stable
    assert report.revisions() == {stable} and report.failures() == 0, report


def test_a_model_that_fails_to_load_is_rejected_with_the_servers_message(sandbox: Sandbox) -> None:
    env = [{"name": "MODELSERVER_FAULT_LOAD_FAIL", "value": "1"}]
    sandbox.apply(model_deployment("resnet", sandbox.artifacts.linear(), runtime={"env": env}))
    rejected = _rejected(sandbox, timeout=30)
    assert rejected["reason"] in ("ModelLoadFailed", "CrashLoop"), rejected
    assert "load failed (MODELSERVER_FAULT_LOAD_FAIL)" in rejected["message"]
    assert sandbox.status("resnet")["phase"] == "Failed"  # nothing was ever stable
    assert rejected["reason"] == "ModelLoadFailed", rejected


def test_a_gpu_request_leaves_the_pod_unschedulable_with_the_schedulers_message(sandbox: Sandbox) -> None:
    sandbox.apply(model_deployment("resnet", sandbox.artifacts.linear(), resources={"gpu": {"count": 1}}))
    message = "0/1 nodes are available: 1 Insufficient nvidia.com/gpu."
    status = sandbox.wait_for("resnet", lambda s: "InsufficientGPU" in (s.get("message") or ""), 30, "InsufficientGPU")
    assert message in status["message"]
    (pod,) = sandbox.pods("resnet")
    scheduled = next(c for c in pod["status"]["conditions"] if c["type"] == "PodScheduled")
    assert (scheduled["status"], scheduled["reason"], scheduled["message"]) == ("False", "Unschedulable", message)
    assert pod["status"]["phase"] == "Pending" and not pod["spec"].get("nodeName")
    assert sandbox.kubelet.pods() == []  # nothing runs
