"""Rollout benchmark: how fast a regression is rolled back, and how often a healthy canary is.

Both rules judge the SAME simulated samples, interval by interval:
  modeldeploy — `rollout.analysis.analyse` (exact binomial / Newcombe tests, minSamples,
                p99 quantile floor), rollback after `failureLimit` failed intervals in a row;
  baseline    — a Flagger-style fixed-threshold rule (`fixed_threshold_verdict`: raw ratios
                against the same bounds, no sample floor), rollback after `threshold` (= the
                same failureLimit) failed checks in a row.

Scenarios (the issue's numbers):
  detection      interval 10 s, 50 req/s, steps 10% then 50%, canary error rate 10% vs stable 0.1%:
                 time from regression onset (the canary's first traffic) to 100% on the stable.
                 Goal <= 2 intervals + 5 s. The operator's own reaction time (last analysis ->
                 traffic on the stable) is added from --reaction (default 0.5 s: well above what
                 the real-control-plane operator tests show; the sandbox scenario measures it).
  false-rollback 50 healthy canaries at 5 req/s (both 0.1% errors, same latency distribution),
                 one 50% step held 10 intervals of 60 s. Goal: 0 rollbacks.

  sandbox        the detection scenario once more for real, on the local control plane (LocalCluster:
                 etcd, kube-apiserver, kube-controller-manager, kube-scheduler, the sandbox kubelet): the
                 operator as its own process, real modelserver pods with injected error rates (10% canary,
                 0.1% stable), 50 req/s through the gatewayAPI router (exact 10% weight), 10 s intervals;
                 measured from the canary's first request to the HTTPRoute sending 100% to the stable
                 (skip with --no-sandbox).

    python bench/rollout.py [--trials 200] [--seed 1] [--no-sandbox]
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from modeldeploy.api.spec import Analysis
from modeldeploy.api.status import Verdict
from modeldeploy.rollout.analysis import RevisionSample, analyse, fixed_threshold_verdict
from modeldeploy_sandbox.waiting import wait_until

Rule = Callable[[Analysis, RevisionSample | None, RevisionSample | None], Verdict]


def ours(analysis: Analysis, canary: RevisionSample | None, stable: RevisionSample | None) -> Verdict:
    return analyse(analysis, canary, stable).verdict


RULES: dict[str, Rule] = {"modeldeploy": ours, "fixed-threshold": fixed_threshold_verdict}


@dataclass(frozen=True)
class Traffic:
    rate: float  # requests per second, both revisions together
    error_canary: float
    error_stable: float
    latency_median: float = 0.020  # seconds; log-normal, the same for both revisions


def draw(rng: np.random.Generator, requests: int, error_rate: float, median: float) -> RevisionSample:
    failures = int(rng.binomial(requests, error_rate)) if requests else 0
    latencies = rng.lognormal(np.log(median), 0.4, size=requests) if requests else np.array([])
    return RevisionSample(
        requests=requests, failures=failures,
        latency_p99=float(np.percentile(latencies, 99)) if requests else None,
        latency_mean=float(latencies.mean()) if requests else None, queue_time_mean=0.0005)


def interval_samples(rng: np.random.Generator, traffic: Traffic, weight: int,
                     seconds: float) -> tuple[RevisionSample, RevisionSample]:
    total = int(rng.poisson(traffic.rate * seconds))
    canary_n = int(rng.binomial(total, weight / 100))
    return (draw(rng, canary_n, traffic.error_canary, traffic.latency_median),
            draw(rng, total - canary_n, traffic.error_stable, traffic.latency_median))


def run_canary(rng: np.random.Generator, analysis: Analysis, traffic: Traffic, steps: list[tuple[int, int]],
               interval: float) -> list[tuple[int, tuple[RevisionSample, RevisionSample]]]:
    """The sampled intervals of one canary: (weight, (canary, stable)) per interval, in order."""
    return [(weight, interval_samples(rng, traffic, weight, interval))
            for weight, intervals in steps for _ in range(intervals)]


def first_rollback(rule: Rule, analysis: Analysis, samples: list[tuple[int, tuple[RevisionSample, RevisionSample]]],
                   limit: int) -> int | None:
    """Index (1-based) of the interval at which `limit` failures in a row are reached."""
    in_a_row = 0
    for index, (_, (canary, stable)) in enumerate(samples, start=1):
        verdict = rule(analysis, canary, stable)
        # As the planner does: only a Pass breaks a streak; Inconclusive intervals are skipped.
        in_a_row = {"Fail": in_a_row + 1, "Pass": 0}.get(verdict, in_a_row)
        if in_a_row >= limit:
            return index
    return None


def sandbox_detection(reaction_goal: float) -> float:
    """Seconds from the canary's first request to 100% on the stable, measured on the real local control plane."""
    import time

    from modeldeploy_sandbox.cluster import LocalCluster
    from modeldeploy_sandbox.sandbox import Sandbox, model_deployment

    traffic = {"router": "gatewayAPI", "gateway": {"parentRefs": [{"name": "public"}]}}
    rollout = {"strategy": "canary", "steps": [{"weight": 10, "pause": "60s"}, {"weight": 50, "pause": "60s"}],
               "progressDeadlineSeconds": 600, "traffic": traffic,
               "analysis": {"interval": "10s", "failureLimit": 2, "minSamples": 20, "checks": [
                   {"metric": "successRate", "min": 0.99, "maxDrop": 0.005},
                   {"metric": "latencyP99", "maxRatio": 1.5}]}}

    def manifest(sb: Sandbox, path: str, seed: int, error_rate: str) -> dict[str, Any]:
        env = [{"name": "MODELSERVER_FAULT_ERROR_RATE", "value": error_rate}]
        return model_deployment("bench", sb.artifacts.linear(path, seed=seed), runtime={"env": env},
                                autoscaling={"minReplicas": 1, "maxReplicas": 1}, rollout=rollout)

    with LocalCluster() as cluster, Sandbox(cluster) as sb, sb.run_operator():
        sb.apply(manifest(sb, "bench/1/model.onnx", 1, "0.001"))
        stable = sb.wait_for_phase("bench", "Healthy", timeout=60)["stableRevision"]
        with sb.loadgen("bench", rate=50, duration=300) as load:
            wait_until(lambda: load.report().successes(stable) >= 100, timeout=30, message="stable traffic")
            sb.apply(manifest(sb, "bench/2/model.onnx", 2, "0.10"))
            onset = None
            while True:
                report = load.report()
                canaries = report.revisions() - {stable, ""}
                if onset is None and any(report.total(revision) for revision in canaries):
                    onset = time.monotonic()
                route = sb.kube.get("gateway.networking.k8s.io/v1", "HTTPRoute", sb.namespace, "bench") or {}
                refs = (route.get("spec") or {}).get("rules", [{}])[0].get("backendRefs", [])
                if onset is not None and [ref["name"] for ref in refs if ref["weight"] > 0] == [stable]:
                    return time.monotonic() - onset
                status = sb.status("bench")
                if status.get("phase") == "Healthy" and status["stableRevision"] != stable:
                    raise RuntimeError("the regressed canary was promoted")
                time.sleep(0.05)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=200, help="regressed canaries in the detection scenario")
    parser.add_argument("--canaries", type=int, default=50, help="healthy canaries in the false-rollback scenario")
    parser.add_argument("--reaction", type=float, default=0.5, help="operator reaction seconds added to detection")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--no-sandbox", action="store_true", help="skip the real-process measurement")
    args = parser.parse_args()
    failure_limit = 2
    checks = [{"metric": "successRate", "min": 0.99, "maxDrop": 0.005}, {"metric": "latencyP99", "maxRatio": 1.5}]
    analysis = Analysis.model_validate({"interval": "10s", "failureLimit": failure_limit, "minSamples": 20,
                                        "checks": checks})

    print("detection: interval 10 s, 50 req/s, steps 10%/50% (6 intervals each), canary 10% errors vs 0.1%")
    regression = Traffic(rate=50, error_canary=0.10, error_stable=0.001)
    detection: dict[str, list[float]] = {name: [] for name in RULES}
    missed = dict.fromkeys(RULES, 0)
    for trial in range(args.trials):
        samples = run_canary(np.random.default_rng(args.seed + trial), analysis, regression, [(10, 6), (50, 6)], 10)
        for name, rule in RULES.items():
            index = first_rollback(rule, analysis, samples, failure_limit)
            if index is None:
                missed[name] += 1
            else:
                detection[name].append(index * 10 + args.reaction)
    goal = 2 * 10 + 5
    for name in RULES:
        times = sorted(detection[name])
        p95 = times[int(0.95 * (len(times) - 1))] if times else float("nan")
        median = statistics.median(times) if times else float("nan")
        print(f"  {name:16} onset -> 100% stable: median {median:5.1f} s, p95 {p95:5.1f} s, "
              f"missed {missed[name]}/{args.trials}  (goal <= {goal} s: {'met' if p95 <= goal else 'MISSED'})")

    healthy = Traffic(rate=5, error_canary=0.001, error_stable=0.001)
    success_only = analysis.model_copy(update={"checks": analysis.checks[:1]})
    for label, slow in (("successRate + latencyP99", analysis), ("successRate only", success_only)):
        print(f"false rollbacks: {args.canaries} healthy canaries, 5 req/s, one 50% step of 30 x 10 s intervals, "
              f"0.1% errors on both; checks: {label}")
        rollbacks = dict.fromkeys(RULES, 0)
        verdicts: dict[str, dict[str, int]] = {name: {"Pass": 0, "Fail": 0, "Inconclusive": 0} for name in RULES}
        for canary in range(args.canaries):
            samples = run_canary(np.random.default_rng(10_000 + args.seed + canary), slow, healthy, [(50, 30)], 10)
            for name, rule in RULES.items():
                for _, (c, s) in samples:
                    verdicts[name][rule(slow, c, s)] += 1
                rollbacks[name] += first_rollback(rule, slow, samples, failure_limit) is not None
        for name in RULES:
            counts = ", ".join(f"{verdict} {count}" for verdict, count in verdicts[name].items())
            print(f"  {name:16} false rollbacks {rollbacks[name]}/{args.canaries}  (intervals: {counts})"
                  f"  goal 0: {'met' if rollbacks[name] == 0 else 'MISSED'}")
        base, mine = rollbacks["fixed-threshold"], rollbacks["modeldeploy"]
        print(f"  ratio fixed-threshold/modeldeploy false rollbacks: {base}/{mine}")
    if not args.no_sandbox:
        seconds = sandbox_detection(goal)
        print(f"sandbox (real control plane and pods, operator, 50 req/s, 10 s intervals): onset -> 100% stable "
              f"{seconds:.1f} s "
              f"(goal <= {goal} s: {'met' if seconds <= goal else 'MISSED'})")



if __name__ == "__main__":
    main()
