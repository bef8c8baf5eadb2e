"""Prometheus goes down mid-analysis (a real Prometheus, Debian's package, killed and started again
at the same address). Missing data is no verdict: the canary is neither promoted nor rolled back
while it is down, the rollout says why (reason ``MetricsUnavailable``), and the analysis resumes and
promotes once Prometheus is back.

No skip: without the prometheus binary this fails with PrometheusServer's install hint.
"""

from __future__ import annotations

import re
import time
from typing import Any

from modeldeploy_sandbox.operator_process import OperatorProcess
from modeldeploy_sandbox.prometheus import PrometheusServer, sandbox_prometheus
from modeldeploy_sandbox.sandbox import Sandbox, model_deployment
from modeldeploy_sandbox.waiting import wait_until

from .scenario import NAME, conditions, promoted, wait_explained

PAUSE_S = 4
INTERVAL_S = 4  # the query window: four 1 s scrapes (fewer leave increase() without data)


def spec(sb: Sandbox, prom: PrometheusServer, version: int) -> dict[str, Any]:
    artifact = sb.artifacts.linear(f"{NAME}/{version}/model.onnx", seed=version)
    return model_deployment(NAME, artifact, autoscaling={"minReplicas": 1, "maxReplicas": 1}, rollout={
        "strategy": "canary", "scaleDownDelaySeconds": 0, "progressDeadlineSeconds": 300,
        "steps": [{"weight": 20, "pause": f"{PAUSE_S}s"}, {"weight": 50, "pause": f"{PAUSE_S}s"}],
        # Exact weights: with the service router one canary pod next to one stable pod is 50 %.
        "traffic": {"router": "gatewayAPI", "gateway": {"parentRefs": [{"name": "sandbox-gateway"}]}},
        "analysis": {"provider": {"type": "prometheus", "address": prom.url}, "interval": f"{INTERVAL_S}s",
                     "failureLimit": 1, "minSamples": 10,
                     "checks": [{"metric": "successRate", "min": 0.99, "maxDrop": 0.01}]},
    })


def reconciles(operator: OperatorProcess) -> float:
    return sum(float(v) for v in re.findall(r"^modeldeploy_reconciles_total\{[^}]*\} (\S+)$", operator.metrics(),
                                            re.MULTILINE))


def metrics_unavailable(status: dict[str, Any]) -> bool:
    return any(reason == "MetricsUnavailable" for _, reason in conditions(status).values())


def test_no_verdict_while_prometheus_is_down_and_analysis_resumes_after(sandbox: Sandbox) -> None:
    sb = sandbox
    assert sb.operator is not None
    with sandbox_prometheus(sb) as prom, sb.loadgen(NAME, rate=60, duration=300):
        sb.apply(spec(sb, prom, 1))
        stable = sb.wait_for(NAME, lambda s: s.get("phase") == "Healthy", 90, "v1 Healthy")["stableRevision"]
        (pod,) = [p for p in sb.running_pods() if p.revision == stable]
        prom.wait_for_targets([f"{pod.pod_ip}:8002"])
        sb.apply(spec(sb, prom, 2))
        analysed = sb.wait_for(NAME, lambda s: (s.get("rollout") or {}).get("stage") == "Steps"
                               and (s.get("analysis") or {}).get("verdict") == "Pass", 60, "a first passed interval")
        candidate = analysed["rollout"]["revision"]

        prom.outage()
        down = time.monotonic()
        held = sb.wait_for(NAME, metrics_unavailable, 30, "reason MetricsUnavailable")
        step = held["rollout"]["step"]  # from here on, no step may pass on no data
        counted = reconciles(sb.operator)

        def undecided() -> bool:
            status = sb.status(NAME)
            assert status.get("phase") == "Progressing", sb.describe(NAME)  # not paused either: no verdict at all
            assert status.get("stableRevision") == stable and not status.get("rejectedRevisions"), status
            assert (status.get("rollout") or {}).get("step") == step, status  # no step passed on no data
            assert sb.operator is not None
            # The positive signal: both step pauses are over and the operator reconciled again since.
            return (time.monotonic() - down >= 2 * PAUSE_S + 2 * INTERVAL_S
                    and reconciles(sb.operator) >= counted + 3 and metrics_unavailable(status))

        wait_until(undecided, timeout=60, interval=0.2, message="outage outlasting both step pauses")
        prom.recover()
        wait_explained(sb, lambda: promoted(sb, candidate), 90, "the canary promoted after Prometheus came back")
        assert prom.ready()
    status = sb.status(NAME)
    assert not metrics_unavailable(status), status["conditions"]
    reasons = [e.get("reason") for e in sb.events(NAME)]
    assert "MetricsUnavailable" in reasons, reasons
    assert held["phase"] == "Progressing", held
