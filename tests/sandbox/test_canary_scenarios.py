"""Canary scenarios on the real control plane: the operator as its own process (the chart's
ServiceAccount), real modelserver pods, real traffic through the EndpointSlices / HTTPRoute, real metrics.

Short clocks (1 s analysis intervals, 2 s step pauses) so that each scenario takes seconds. The
checks are successRate (exact binomial + Newcombe tests) and latencyMean: a p99 needs at least
100 requests per revision and interval to be judged, more than these short intervals carry.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from modeldeploy.cli.kubectl import send_intent
from modeldeploy_sandbox.artifacts import Artifact
from modeldeploy_sandbox.cluster import LocalCluster
from modeldeploy_sandbox.sandbox import Sandbox, model_deployment
from modeldeploy_sandbox.waiting import holds, wait_until

NAME = "resnet"
CHECKS = [{"metric": "successRate", "min": 0.95, "maxDrop": 0.02}, {"metric": "latencyMean", "max": "100ms"}]


def canary_manifest(artifact: Artifact, env: dict[str, str] | None = None, **rollout: Any) -> dict[str, Any]:
    settings: dict[str, Any] = {
        "strategy": "canary",
        "steps": [{"weight": 30, "pause": "2s"}, {"weight": 60, "pause": "2s"}],
        "progressDeadlineSeconds": 120,
        "analysis": {"interval": "1s", "failureLimit": 2, "minSamples": 10, "checks": CHECKS},
    }
    settings.update(rollout)
    spec: dict[str, Any] = {"autoscaling": {"minReplicas": 2, "maxReplicas": 2}, "rollout": settings}
    if env:
        spec["runtime"] = {"env": [{"name": key, "value": value} for key, value in env.items()]}
    return model_deployment(NAME, artifact, **spec)


def deploy_stable(sb: Sandbox, **rollout: Any) -> str:
    sb.apply(canary_manifest(sb.artifacts.linear("resnet/1/model.onnx"), **rollout))
    status = sb.wait_for_phase(NAME, "Healthy", timeout=60)
    wait_until(lambda: len(sb.running_pods(ready=True)) == 2, timeout=30, message="2 ready pods")
    return str(status["stableRevision"])


def rejected(sb: Sandbox, timeout: float = 60) -> dict[str, Any]:
    status = sb.wait_for(NAME, lambda s: bool(s.get("rejectedRevisions")), timeout, "a rejected revision")
    return dict(status["rejectedRevisions"][-1])


def events(sb: Sandbox) -> list[str]:
    return [event["reason"] for event in sb.kube.list("v1", "Event", sb.namespace)]


def test_a_healthy_canary_is_promoted_through_every_step(sandbox: Sandbox) -> None:
    stable = deploy_stable(sandbox)
    seen: set[tuple[str, int]] = set()
    with sandbox.loadgen(NAME, rate=60, duration=120) as load:
        sandbox.apply(canary_manifest(sandbox.artifacts.linear("resnet/2/model.onnx", seed=2)))

        def promoted(status: dict[str, Any]) -> bool:
            rollout = status.get("rollout") or {}
            seen.add((rollout.get("stage", ""), rollout.get("step", -1)))
            return status.get("phase") == "Healthy" and status.get("stableRevision") != stable

        status = sandbox.wait_for(NAME, promoted, 90, "promotion")
        report = load.stop()
    canary = status["stableRevision"]
    assert {("Steps", 0), ("Steps", 1)} <= seen, seen
    assert report.successes(canary) > 30 and report.successes(stable) > 30, report
    assert report.failures() == 0, report  # the old pods retire only after the scale-down delay
    sandbox.wait_for_events(NAME, "Promoted")  # sent after the status that records the promotion
    assert events(sandbox).count("StepStarted") == 2
    wait_until(lambda: [d["metadata"]["name"] for d in sandbox.deployments(NAME)] == [canary], timeout=20,
               message="the old revision deleted after the scale-down delay")
    wait_until(lambda: {p.revision for p in sandbox.running_pods()} == {canary}, timeout=20, message="old pods gone")
    assert status["analysis"]["verdict"] == "Pass"


def test_an_error_regression_is_rolled_back_by_the_analysis(sandbox: Sandbox) -> None:
    stable = deploy_stable(sandbox)
    with sandbox.loadgen(NAME, rate=60, duration=120) as load:
        # Half the requests fail: at ~18 canary requests per 1 s interval, a 99 % test calls that a Fail
        # in all but ~1.5 % of intervals. At 30 % a quarter of intervals were inconclusive, and 3 in a
        # row paused the rollout instead (CI, 2026-12-05).
        broken = canary_manifest(sandbox.artifacts.linear("resnet/2/model.onnx", seed=2),
                                 env={"MODELSERVER_FAULT_ERROR_RATE": "0.5"})
        started = time.monotonic()
        sandbox.apply(broken)
        reason = rejected(sandbox)
        elapsed = time.monotonic() - started
        status = sandbox.wait_for_phase(NAME, "RolledBack", timeout=10)
        wait_until(lambda: {p.revision for p in sandbox.running_pods()} == {stable}, timeout=20,
                   message="canary pods gone")
        after = load.report().successes(stable)
        wait_until(lambda: load.report().successes(stable) >= after + 30, timeout=10, message="stable serving on")
        report = load.stop()
    assert reason["reason"] == "AnalysisFailed" and "successRate" in reason["message"], reason
    assert status["stableRevision"] == stable and status["canaryWeight"] == 0
    failed = [check for check in status["analysis"]["checks"] if check["verdict"] == "Fail"]
    assert failed and failed[0]["canary"] < 0.9 and failed[0]["stable"] > 0.99, status["analysis"]
    assert report.successes(stable) > after and report.failures(stable) == 0, report
    assert elapsed < 40, f"rollback took {elapsed:.1f}s"
    sandbox.wait_for_events(NAME, "AnalysisFailed")


def test_a_latency_regression_is_rolled_back(sandbox: Sandbox) -> None:
    stable = deploy_stable(sandbox)
    with sandbox.loadgen(NAME, rate=60, duration=120):
        sandbox.apply(canary_manifest(sandbox.artifacts.linear("resnet/2/model.onnx", seed=2),
                                      env={"MODELSERVER_FAULT_LATENCY_MS": "250"}))
        reason = rejected(sandbox)
    assert reason["reason"] == "AnalysisFailed" and "latencyMean" in reason["message"], reason
    assert sandbox.status(NAME)["stableRevision"] == stable


def test_a_canary_whose_metrics_are_refused_pauses_and_says_why(sandbox: Sandbox) -> None:
    stable = deploy_stable(sandbox)
    with sandbox.loadgen(NAME, rate=30, duration=60):
        sandbox.apply(canary_manifest(sandbox.artifacts.linear("resnet/2/model.onnx", seed=2),
                                      env={"MODELSERVER_FAULT_METRICS_STATUS": "403"}))
        status = sandbox.wait_for_phase(NAME, "Paused", timeout=60)
    # Three intervals without canary metrics: inconclusive, never a verdict on the model; the reason is
    # the pod's refusal, in the checks, the condition and the Event.
    assert status["stableRevision"] == stable and not status.get("rejectedRevisions"), status
    assert all(check["verdict"] == "Inconclusive" and "/metrics answered HTTP 403" in check["message"]
               for check in status["analysis"]["checks"]), status["analysis"]
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert ready["reason"] == "AnalysisInconclusive", ready
    (paused,) = sandbox.wait_for_events(NAME, "AnalysisInconclusive")
    assert "could be scraped" in paused["message"] and "answered HTTP 403" in paused["message"], paused


def test_a_model_that_fails_to_load_is_rolled_back_long_before_the_deadline(sandbox: Sandbox) -> None:
    stable = deploy_stable(sandbox)
    started = time.monotonic()
    sandbox.apply(canary_manifest(sandbox.artifacts.linear("resnet/2/model.onnx", seed=2),
                                  env={"MODELSERVER_FAULT_LOAD_FAIL": "1"}))
    reason = rejected(sandbox)
    elapsed = time.monotonic() - started
    assert reason["reason"] == "ModelLoadFailed", reason
    assert elapsed < 30, f"{elapsed:.1f}s, the deadline is 120s"
    assert sandbox.status(NAME)["stableRevision"] == stable


def test_a_digest_mismatch_gets_no_traffic(sandbox: Sandbox) -> None:
    stable = deploy_stable(sandbox)
    good = sandbox.artifacts.linear("resnet/2/model.onnx", seed=2)
    tampered = Artifact(path=good.path, url=good.url, digest="sha256:" + "0" * 64, size=good.size)
    with sandbox.loadgen(NAME, rate=30, duration=60) as load:
        sandbox.apply(canary_manifest(tampered))
        reason = rejected(sandbox)
        report = load.stop()
    assert reason["reason"] == "ArtifactIntegrity" and "digest" in reason["message"].lower(), reason
    assert report.revisions() == {stable} and report.failures() == 0, report


def test_a_signature_change_fails_the_gate_before_any_traffic(sandbox: Sandbox) -> None:
    stable = deploy_stable(sandbox)
    with sandbox.loadgen(NAME, rate=30, duration=60) as load:
        sandbox.apply(canary_manifest(sandbox.artifacts.other_signature("resnet/2/model.onnx")))
        reason = rejected(sandbox)
        report = load.stop()
    assert reason["reason"] == "GateFailed" and "signature" in reason["message"], reason
    assert report.revisions() == {stable}, report


def test_low_traffic_is_inconclusive_pauses_the_rollout_and_a_resume_with_traffic_promotes(sandbox: Sandbox) -> None:
    deploy_stable(sandbox)
    with sandbox.loadgen(NAME, rate=2, duration=120) as trickle:
        sandbox.apply(canary_manifest(sandbox.artifacts.linear("resnet/2/model.onnx", seed=2)))
        sandbox.wait_for(NAME, lambda s: (s.get("analysis") or {}).get("verdict") == "Inconclusive", 30,
                         "an inconclusive interval")

        def undecided() -> dict[str, Any] | None:
            status = sandbox.status(NAME)
            analysis = status.get("analysis") or {}
            return status if (status.get("phase") in ("Progressing", "Paused") and status["rollout"]["step"] == 0
                              and analysis.get("verdict") == "Inconclusive" and analysis.get("passedIntervals") == 0
                              and not status.get("rejectedRevisions")) else None

        # inconclusiveLimit (3) intervals in a row: paused for a person, neither promoted nor rolled back.
        paused = sandbox.wait_for(NAME, lambda s: s.get("phase") == "Paused", 30, "paused as inconclusive")
        assert paused["rollout"]["pausedReason"] == "AnalysisInconclusive"
        sandbox.wait_for_events(NAME, "AnalysisInconclusive")
        # Several intervals and both pauses' worth of time: still nothing decided, either way.
        holds(undecided, 6.0, message="an undecided canary under low traffic")
        trickle.stop()
    with sandbox.loadgen(NAME, rate=60, duration=120):  # enough traffic, and a person resumes it
        send_intent(sandbox.kube, sandbox.namespace, NAME, "resume")
        sandbox.wait_for(NAME, lambda s: s.get("phase") == "Healthy", 60, "promotion")


def test_an_operator_killed_mid_canary_is_replaced_and_the_new_one_resumes_from_status(
        cluster: LocalCluster, bare_sandbox: Sandbox) -> None:
    sb = bare_sandbox
    refused_before = len(cluster.forbidden())
    with sb.run_operator():  # stopped gracefully (SIGTERM) once v1 is stable
        deploy_stable(sb)
    with sb.loadgen(NAME, rate=60, duration=120):
        with sb.run_operator() as first:
            sb.apply(canary_manifest(sb.artifacts.linear("resnet/2/model.onnx", seed=2),
                                     steps=[{"weight": 30, "pause": "3s"}, {"weight": 60, "pause": "3s"}]))
            before = sb.wait_for(NAME, lambda s: (s.get("rollout") or {}).get("stage") == "Steps", 60,
                                 "the first step")
            first.kill()  # SIGKILL, as a node failure would end it: no cleanup, nothing written on the way out
            assert not first.alive
            frozen = sb.status(NAME)
            holds(lambda: sb.status(NAME) == frozen, 2.0, message="no operator: nothing moves")
        with sb.run_operator():  # a new process, with nothing but what the API holds
            status = sb.wait_for(NAME, lambda s: s.get("phase") == "Healthy", 60, "promotion after the restart")
    assert status["stableRevision"] == before["rollout"]["revision"]
    assert not status.get("rejectedRevisions")
    assert cluster.forbidden()[refused_before:] == []


def test_the_gateway_api_router_splits_by_route_weight(sandbox: Sandbox) -> None:
    traffic = {"router": "gatewayAPI", "gateway": {"parentRefs": [{"name": "public"}]}}
    stable = deploy_stable(sandbox, traffic=traffic)
    weights: list[dict[str, int]] = []
    with sandbox.loadgen(NAME, rate=60, duration=120) as load:
        sandbox.apply(canary_manifest(sandbox.artifacts.linear("resnet/2/model.onnx", seed=2), traffic=traffic,
                                      steps=[{"weight": 20, "pause": "3s"}, {"weight": 60, "pause": "2s"}]))

        def promoted(status: dict[str, Any]) -> bool:
            route = sandbox.kube.get("gateway.networking.k8s.io/v1", "HTTPRoute", sandbox.namespace, NAME)
            if route:
                weights.append({ref["name"]: ref["weight"] for ref in route["spec"]["rules"][0]["backendRefs"]})
            return status.get("phase") == "Healthy" and status.get("stableRevision") != stable

        status = sandbox.wait_for(NAME, promoted, 90, "promotion")
        report = load.stop()
    canary = status["stableRevision"]
    assert {stable: 80, canary: 20} in weights and {stable: 40, canary: 60} in weights, weights
    assert weights[-1] == {canary: 100}
    assert report.successes(canary) > 0 and report.failures() == 0, report


def test_the_smoke_test_gate_compares_golden_outputs(sandbox: Sandbox) -> None:
    golden = {"name": "golden", "namespace": sandbox.namespace}
    request = {"inputs": [{"name": "input", "datatype": "FP32", "shape": [2, 4],
                           "data": [0.1, 0.2, 0.3, 0.4, 1.0, -1.0, 0.5, 2.0]}]}
    sandbox.kube.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": golden,
                         "data": {"two-rows.json": json.dumps(request)}})
    gates = {"signature": True, "smokeTest": {"configMapRef": {"name": "golden"}, "tolerance": 1e-4}}
    stable = deploy_stable(sandbox, gates=gates)
    # Same weights at another URL: outputs agree, the gate passes and the canary proceeds.
    same = sandbox.artifacts.linear("resnet/1b/model.onnx", seed=0)
    sandbox.apply(canary_manifest(same, gates=gates, env={"UNUSED": "new-revision"}))
    sandbox.wait_for(NAME, lambda s: (s.get("rollout") or {}).get("stage") == "Steps", 60, "gates passed")
    sandbox.wait_for_events(NAME, "GatesPassed")  # sent after the status write of the same round
    # Other weights: the outputs differ beyond the tolerance, the canary never gets traffic.
    with sandbox.loadgen(NAME, rate=20, duration=60) as load:
        other = sandbox.artifacts.linear("resnet/2/model.onnx", seed=7)
        sandbox.apply(canary_manifest(other, gates=gates))
        status = sandbox.wait_for(NAME, lambda s: any(r["reason"] == "GateFailed"
                                                      for r in s.get("rejectedRevisions") or []), 60, "GateFailed")
        report = load.stop()
    reason = next(r for r in status["rejectedRevisions"] if r["reason"] == "GateFailed")
    assert "smokeTest two-rows.json" in reason["message"] and "tolerance" in reason["message"], reason
    canary = reason["revision"]
    assert report.total(canary) == 0 and stable in report.revisions(), report


def _kubectl(cluster: LocalCluster, *args: str) -> subprocess.CompletedProcess[str]:
    """The real kubectl (built with the control plane) with the admin kubeconfig; ``kubectl modeldeploy``
    finds the plugin ``kubectl-modeldeploy`` on PATH, next to this interpreter, as kubectl plugins are found."""
    env = {**os.environ, "KUBECONFIG": str(cluster.control_plane.kubeconfig),
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    return subprocess.run([str(cluster.control_plane.binaries.path("kubectl")), *args], env=env,
                          capture_output=True, text=True, timeout=60, check=False)


def test_kubectl_modeldeploy_pause_resume_and_abort(cluster: LocalCluster, sandbox: Sandbox) -> None:
    def plugin(*args: str) -> subprocess.CompletedProcess[str]:
        return _kubectl(cluster, "modeldeploy", "-n", sandbox.namespace, *args)

    stable = deploy_stable(sandbox)
    with sandbox.loadgen(NAME, rate=60, duration=120):
        sandbox.apply(canary_manifest(sandbox.artifacts.linear("resnet/2/model.onnx", seed=2),
                                      steps=[{"weight": 30, "pause": "6s"}, {"weight": 60, "pause": "3s"}]))
        sandbox.wait_for(NAME, lambda s: (s.get("rollout") or {}).get("stage") == "Steps", 60, "the first step")
        paused_by = plugin("pause", NAME)
        assert paused_by.returncode == 0 and "pause requested" in paused_by.stdout, paused_by
        paused = sandbox.wait_for_phase(NAME, "Paused", timeout=20)
        assert paused["rollout"]["step"] == 0
        # Longer than the step's pause: a paused canary does not advance.
        holds(lambda: (s := sandbox.status(NAME))["phase"] == "Paused" and s["rollout"]["step"] == 0, 7.0,
              message="a paused canary at step 1")
        status = plugin("status", NAME)
        assert status.returncode == 0 and "Paused" in status.stdout, status
        assert plugin("resume", NAME).returncode == 0
        sandbox.wait_for(NAME, lambda s: s.get("phase") == "Progressing", 20, "resumed")
        assert plugin("abort", NAME).returncode == 0
        reason = rejected(sandbox)
    assert reason["reason"] == "Aborted"
    assert sandbox.status(NAME)["stableRevision"] == stable
    # kubectl itself sees the ModelDeployment through the CRD's printer columns.
    listed = _kubectl(cluster, "get", "mdep", "-n", sandbox.namespace, "-o", "json")
    assert listed.returncode == 0 and json.loads(listed.stdout)["items"][0]["status"]["phase"] == "RolledBack", listed
    missing = plugin("status", "no-such-model")
    assert missing.returncode == 1 and "not found" in missing.stderr, missing
