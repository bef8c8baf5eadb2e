"""The prometheus metrics provider end to end: the operator judges canaries from a real Prometheus
(Debian's package) that finds the modelserver pods through the real apiserver (kubernetes_sd_configs, the
relabelling of docs/analysis.md) and scrapes their pod IPs through the sandbox's pod network.

CI installs it with `apt-get install -y --no-install-recommends prometheus`; without the
binary these tests fail (tests/docs/test_ci.py checks that they do).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from modeldeploy_sandbox.prometheus import PrometheusServer, sandbox_prometheus
from modeldeploy_sandbox.sandbox import Sandbox, model_deployment
from modeldeploy_sandbox.waiting import wait_until

pytestmark = [
    # No skip: without the binary these tests fail with PrometheusServer's "no prometheus binary (apt-get ...)".
    pytest.mark.timeout(120),
]

NAME = "resnet"
RATE = 100  # req/s: the canary answers ~80 requests per 4 s interval at 20 %, above minSamples
# `or vector(0)`: a healthy revision has no failure series at all (it appears with the first
# failure), and an empty result would make the check Inconclusive, so no step could pass.
ERRORS_QUERY = ('sum(increase(nv_inference_request_failure{namespace="{{namespace}}",revision="{{revision}}"}'
                "[{{interval}}])) or vector(0)")


@pytest.fixture()
def observed(sandbox: Sandbox) -> Iterator[tuple[Sandbox, PrometheusServer]]:
    with sandbox_prometheus(sandbox) as prom:
        yield sandbox, prom
    assert prom.proc is not None and prom.proc.poll() is not None, "prometheus outlived the test"


def _spec(sb: Sandbox, prom: PrometheusServer, version: int, env: dict[str, str] | None = None) -> dict[str, Any]:
    artifact = sb.artifacts.linear(f"{NAME}/{version}/model.onnx", seed=version)
    spec: dict[str, Any] = {
        "autoscaling": {"minReplicas": 1, "maxReplicas": 1},
        "rollout": {
            "strategy": "canary",
            "steps": [{"weight": 20, "pause": "4s"}, {"weight": 50, "pause": "4s"}],
            "progressDeadlineSeconds": 120,
            # Exact weights: with the service router one canary pod next to one stable pod is 50 %.
            "traffic": {"router": "gatewayAPI", "gateway": {"parentRefs": [{"name": "sandbox-gateway"}]}},
            "analysis": {
                "provider": {"type": "prometheus", "address": prom.url},
                "interval": "4s",  # the query window: four 1 s scrapes
                "failureLimit": 2,
                "minSamples": 20,
                "checks": [
                    {"metric": "successRate", "min": 0.99, "maxDrop": 0.01},
                    {"name": "errors", "query": ERRORS_QUERY, "max": 5},
                ],
            },
        },
    }
    if env:
        spec["runtime"] = {"env": [{"name": k, "value": v} for k, v in env.items()]}
    return model_deployment(NAME, artifact, **spec)


def _healthy_v1(sb: Sandbox, prom: PrometheusServer) -> str:
    sb.apply(_spec(sb, prom, 1))
    stable = str(sb.wait_for_phase(NAME, "Healthy", timeout=60)["stableRevision"])
    # Prometheus must have the stable's series before the canary is compared with it: it found the
    # pod through the apiserver and scraped its pod IP.
    (pod,) = [p for p in sb.running_pods() if p.revision == stable]
    prom.wait_for_targets([f"{pod.pod_ip}:8002"])
    (series,) = prom.query(f'up{{namespace="{sb.namespace}",revision="{stable}"}}')
    assert series["metric"]["pod"] == pod.name and series["value"][1] == "1", series
    return stable


def _checks(analysis: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """status.analysis.checks by name."""
    return {c["name"]: c for c in analysis.get("checks") or []}


def test_a_healthy_canary_is_promoted_on_prometheus_data(observed: tuple[Sandbox, PrometheusServer]) -> None:
    sb, prom = observed
    stable = _healthy_v1(sb, prom)
    with sb.loadgen(NAME, rate=RATE, duration=60, seed=1) as load:
        sb.apply(_spec(sb, prom, 2))
        intervals: dict[str, dict[str, Any]] = {}  # status.analysis of every interval, by lastRun

        def promoted(status: dict[str, Any]) -> bool:
            analysis = status.get("analysis") or {}
            if analysis.get("lastRun"):
                intervals[analysis["lastRun"]] = analysis
            return status.get("phase") == "Healthy" and status.get("stableRevision") != stable

        started = time.monotonic()
        status = sb.wait_for(NAME, promoted, timeout=45, what="the canary promoted")
        took = time.monotonic() - started
        report = load.stop()

    canary = status["stableRevision"]
    assert not status.get("rejectedRevisions"), status
    # A step ends only after a passed interval; the one that ends the last step is promoted in
    # the same reconcile, so it may be seen only in the final status.
    verdicts = [a.get("verdict") for _, a in sorted(intervals.items())]
    passed = [a for a in intervals.values() if a.get("verdict") == "Pass"]
    assert len(passed) >= 2 and "Fail" not in verdicts, verdicts
    for analysis in passed:
        checks = _checks(analysis)
        rate, errors = checks["successRate"], checks["errors"]
        assert rate["verdict"] == "Pass" and rate["canary"] == 1.0 and rate["stable"] == 1.0, checks
        assert rate["canarySamples"] >= 20 and rate["stableSamples"] >= 20, checks
        assert errors["verdict"] == "Pass" and errors["canary"] == 0 and errors["stable"] == 0, checks
    # Served by both, never failing: the judgement came from Prometheus' view of real traffic.
    assert report.failures(canary) == 0 and report.successes(canary) > 100, report
    assert report.failures(stable) <= 3, report  # requests to the old pod while it was being removed
    assert took < 40, took


def test_a_canary_with_errors_is_rolled_back_on_prometheus_data(
        observed: tuple[Sandbox, PrometheusServer]) -> None:
    sb, prom = observed
    stable = _healthy_v1(sb, prom)
    with sb.loadgen(NAME, rate=RATE, duration=60, seed=2) as load:
        sb.apply(_spec(sb, prom, 2, env={"MODELSERVER_FAULT_ERROR_RATE": "0.3"}))
        started = time.monotonic()
        status = sb.wait_for(NAME, lambda s: s.get("phase") in ("RolledBack", "Failed", "Healthy")
                             and bool(s.get("rejectedRevisions") or s.get("stableRevision") != stable),
                             timeout=40, what="the canary rolled back")
        took = time.monotonic() - started
        # The route table follows within the load generator's refresh: the stable alone serves on.
        served = load.report().successes(stable)
        wait_until(lambda: load.report().successes(stable) >= served + 50, timeout=10, message="the stable serving")
        report = load.stop()

    assert status["phase"] == "RolledBack" and status["stableRevision"] == stable, status
    (rejected,) = status["rejectedRevisions"]
    assert rejected["reason"] == "AnalysisFailed", rejected
    assert rejected["message"].startswith("2 failed intervals in a row"), rejected
    checks = _checks(status["analysis"])
    rate, errors = checks["successRate"], checks["errors"]
    assert rate["verdict"] == "Fail" and rate["canary"] < 0.9 and rate["stable"] == 1.0, checks
    assert rate["canarySamples"] >= 20 and rate["stableSamples"] >= 20, checks
    # The custom query, per revision: the canary's failures in the window, the stable's none.
    assert errors["verdict"] == "Fail" and errors["canary"] > 5 and errors["stable"] == 0, checks
    assert "errors" in rejected["message"] or "successRate" in rejected["message"], rejected
    canary = rejected["revision"]
    assert report.failures(canary) > 0 and report.failures(stable) == 0, report
    assert took < 30, took
