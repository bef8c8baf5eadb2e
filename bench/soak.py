"""Soak: N ModelDeployments cycling canaries under load on the local real control plane.

Every model rolls out one good revision after another (three-step canaries, 1 s analysis
intervals) while a load generator sends it requests through the endpoint Service, for --minutes.
Printed at the end:

  operator RSS   after warm-up (the baseline: every model Healthy once) and at the end, and their
                 ratio (flat: ~1.0); also sampled every --sample seconds.
  requests       sent / answered / failed, by cause. Every canary here is healthy, so any failed
                 request or request without a ready endpoint was dropped by the operator's own
                 actions (scaling, routing, retiring). Goal: 0.
  canaries       promotions completed per model.

    python bench/soak.py                          # the issue's soak: 10 models, 30 minutes
    python bench/soak.py --minutes 2 --models 3   # a short run
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import dataclasses
import time
from typing import Any

from modeldeploy_sandbox.cluster import LocalCluster
from modeldeploy_sandbox.controlplane import rss_bytes
from modeldeploy_sandbox.loadgen import NO_ENDPOINT, LoadGenerator, LoadReport
from modeldeploy_sandbox.sandbox import Sandbox, model_deployment

STEPS = [{"weight": 25, "pause": "2s"}, {"weight": 50, "pause": "2s"}, {"weight": 75, "pause": "2s"}]
CHECKS = [{"metric": "successRate", "min": 0.95, "maxDrop": 0.02}]
LOAD_SEGMENT_S = 540.0  # a LoadGenerator runs at most 600 s: the soak chains segments


def manifest(sb: Sandbox, name: str, version: int, replicas: int) -> dict[str, Any]:
    artifact = sb.artifacts.linear(f"{name}/{version}/model.onnx", seed=version)
    return model_deployment(name, artifact, autoscaling={"minReplicas": replicas, "maxReplicas": replicas}, rollout={
        "strategy": "canary", "steps": STEPS, "progressDeadlineSeconds": 300, "scaleDownDelaySeconds": 2,
        # Low traffic per model on a busy machine: an interval may be inconclusive; never pause for it.
        "analysis": {"interval": "1s", "failureLimit": 3, "minSamples": 5, "inconclusiveLimit": 100,
                     "checks": CHECKS}})


@dataclasses.dataclass
class Model:
    name: str
    version: int = 1
    target: str | None = None  # the revision being rolled out: None until status names it
    stable: str | None = None
    promotions: int = 0
    rejected: list[str] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class Totals:
    sent: int = 0
    ok: int = 0
    failed: int = 0
    no_endpoint: int = 0
    client_dropped: int = 0  # the load generator's own overflow (max in flight), not the operator's
    errors: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)

    def add(self, report: LoadReport) -> None:
        self.sent += report.sent
        self.ok += report.successes()
        self.failed += report.failures() - report.failures(NO_ENDPOINT)
        self.no_endpoint += report.failures(NO_ENDPOINT)
        self.client_dropped += report.dropped
        for revision, stats in report.by_revision.items():
            for error, count in stats.errors.items():
                self.errors[f"{revision or '<no endpoint>'}: {error}"] += count


def advance(sb: Sandbox, model: Model, replicas: int) -> None:
    """One look at a model: start its next canary once the previous one is promoted and retired."""
    status = sb.status(model.name)
    rollout = status.get("rollout") or {}
    if model.target is None and rollout.get("revision") and rollout["revision"] != model.stable:
        model.target = rollout["revision"]
    for rejected in status.get("rejectedRevisions") or []:
        if model.target is not None and rejected.get("revision") == model.target:
            # Unexpected (every revision is healthy): reported at the end; the soak goes on with the next.
            model.rejected.append(f"{model.target}: {rejected.get('reason')} {rejected.get('message')}")
            model.target = None
            model.version += 1
            sb.apply(manifest(sb, model.name, model.version, replicas))
            return
    done = (status.get("phase") == "Healthy" and status.get("stableRevision") not in (None, model.stable)
            and not status.get("retiring") and len(sb.deployments(model.name)) == 1)
    if done:
        model.promotions += model.stable is not None
        model.stable, model.target = status["stableRevision"], None
        model.version += 1
        sb.apply(manifest(sb, model.name, model.version, replicas))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--models", type=int, default=10)
    parser.add_argument("--replicas", type=int, default=1, help="stable replicas per model")
    parser.add_argument("--rate", type=float, default=20.0, help="requests/s per model")
    parser.add_argument("--sample", type=float, default=60.0, help="seconds between RSS samples")
    args = parser.parse_args()

    with LocalCluster() as cluster, Sandbox(cluster) as sb, sb.run_operator() as operator:
        assert operator.pid is not None
        models = [Model(f"m{i}") for i in range(args.models)]
        for model in models:
            sb.apply(manifest(sb, model.name, model.version, args.replicas))
        deadline = time.monotonic() + 180
        while not all(sb.status(m.name).get("phase") == "Healthy" for m in models):
            if time.monotonic() > deadline:
                raise SystemExit("not every model became Healthy within 180 s:\n"
                                 + "\n".join(sb.describe(m.name) for m in models))
            time.sleep(0.5)
        for model in models:
            model.stable = sb.status(model.name)["stableRevision"]
        rss_start = rss_bytes(operator.pid)
        samples = [(0.0, rss_start)]
        print(f"{args.models} models Healthy; operator RSS {rss_start / 2**20:.1f} MiB; soaking {args.minutes} min")

        totals = Totals()
        began = time.monotonic()
        end = began + args.minutes * 60
        next_sample = began + args.sample
        with contextlib.ExitStack() as stack:
            def load_segment() -> list[LoadGenerator]:
                seconds = max(1.0, min(LOAD_SEGMENT_S, end - time.monotonic() + 5))
                return [stack.enter_context(sb.loadgen(m.name, rate=args.rate, duration=seconds)) for m in models]

            loads = load_segment()
            segment_end = time.monotonic() + LOAD_SEGMENT_S
            for model in models:
                model.version += 1
                sb.apply(manifest(sb, model.name, model.version, args.replicas))
            while time.monotonic() < end:
                for model in models:
                    advance(sb, model, args.replicas)
                now = time.monotonic()
                if now >= next_sample:
                    samples.append((now - began, rss_bytes(operator.pid)))
                    next_sample += args.sample
                    promoted = sum(m.promotions for m in models)
                    print(f"  {(now - began) / 60:5.1f} min: RSS {samples[-1][1] / 2**20:.1f} MiB, "
                          f"{promoted} promotions", flush=True)
                if now >= segment_end and end - now > 5:
                    for load in loads:
                        totals.add(load.stop())
                    loads, segment_end = load_segment(), now + LOAD_SEGMENT_S
                time.sleep(0.5)
            for load in loads:
                totals.add(load.stop())
        rss_end = rss_bytes(operator.pid)
        alive = operator.alive
        phases = {m.name: f"{(st := sb.status(m.name)).get('phase')}: {st.get('message')}" for m in models}

    print(f"\nsoak: {args.models} models, {args.minutes} min, {args.rate} req/s each, {args.replicas} replica(s)")
    print(f"operator RSS: start {rss_start / 2**20:.1f} MiB (baseline: after warm-up), end {rss_end / 2**20:.1f} MiB, "
          f"ratio end/start {rss_end / rss_start:.3f}; operator alive at the end: {alive}")
    print("  samples (min, MiB): " + ", ".join(f"{t / 60:.1f}={r / 2**20:.1f}" for t, r in samples))
    print(f"requests: sent {totals.sent}, answered {totals.ok}, failed {totals.failed}, "
          f"no ready endpoint {totals.no_endpoint}, load generator overflow {totals.client_dropped}")
    print(f"requests dropped by the operator's own actions: {totals.failed + totals.no_endpoint} (goal 0)")
    if totals.errors:
        print("  errors: " + "; ".join(f"{k} x{v}" for k, v in totals.errors.most_common(10)))
    print("promotions per model: " + ", ".join(f"{m.name}={m.promotions}" for m in models)
          + f" (total {sum(m.promotions for m in models)})")
    for model in models:
        print(f"  {model.name}: {phases[model.name]}")
        for rejected in model.rejected:
            print(f"  {model.name} rolled back (unexpected: every canary is healthy): {rejected}")


if __name__ == "__main__":
    main()
