"""`modeldeploy demo` (`make demo`): a real local Kubernetes control plane, the operator, two canaries, live.

It starts a :class:`~.cluster.LocalCluster` (etcd, kube-apiserver, kube-controller-manager and
kube-scheduler built from their Go modules, the first run builds them with progress on stderr; the
sandbox kubelet with its CPU and GPU Nodes), names what it started with versions and the start time,
then runs the operator as its own process with the chart's ServiceAccount. Three acts against one
ModelDeployment ``resnet`` while the load generator sends inference requests throughout:

1. model v1 is deployed and becomes Healthy;
2. canary v2 answers 20 % of its requests with HTTP 500 (``MODELSERVER_FAULT_ERROR_RATE``):
   the analysis fails it and the operator rolls it back (reason ``AnalysisFailed``);
3. canary v3 (a good model) walks through every step and is promoted.

Progress is printed as plain lines (one per change, one per Event), so it reads the same in a
terminal, a pipe or a CI log. Exit status 0 only if v2 was rolled back for AnalysisFailed and
v3 promoted. Every process it started (the control plane, the modelserver pods, the operator) is
stopped on the way out, also on Ctrl-C or SIGTERM, and its files are removed.

Traffic is split by the Gateway API router (an HTTPRoute with exact weights) so that the steps'
20 % / 50 % are what the canary really gets; with the ``service`` router and one stable pod,
the canary's single pod would take 50 % at every step.
"""

from __future__ import annotations

import contextlib
import dataclasses
import signal
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any, TextIO

from modeldeploy.cli.report import format_status
from modeldeploy.formatting import duration, metric_value, percent
from modeldeploy_sandbox.cluster import LocalCluster
from modeldeploy_sandbox.describe import describe_cluster
from modeldeploy_sandbox.loadgen import NO_ENDPOINT, LoadGenerator, LoadReport
from modeldeploy_sandbox.routing import resolve
from modeldeploy_sandbox.sandbox import Sandbox, model_deployment

NAME = "resnet"
NAMESPACE = "demo"
FAULT_ENV = "MODELSERVER_FAULT_ERROR_RATE"
FAULT_RATE = "0.2"


@dataclasses.dataclass(frozen=True)
class DemoSettings:
    rate: float  # load generator, requests/s
    steps: tuple[tuple[int, str], ...]  # (weight %, pause)
    interval: str  # analysis interval
    min_samples: int
    hold_s: float  # seconds of traffic shown between the acts
    act_timeout_s: float
    p99: bool  # whether the latencyP99 check is on (see _checks)

    def rollout(self, provider: dict[str, Any] | None = None) -> dict[str, Any]:
        analysis: dict[str, Any] = {
            "interval": self.interval,
            "failureLimit": 2,
            # A busy 2-core machine can leave a short interval without enough requests now and then:
            # the demo shows a rollout, not the inconclusive pause (troubleshooting.md has that).
            "inconclusiveLimit": 10,
            "minSamples": self.min_samples,
            "checks": _checks(self.p99),
        }
        if provider:
            analysis["provider"] = provider
        return {
            "strategy": "canary",
            "steps": [{"weight": weight, "pause": pause} for weight, pause in self.steps],
            "progressDeadlineSeconds": 120,
            "traffic": {"router": "gatewayAPI", "gateway": {"parentRefs": [{"name": "sandbox-gateway"}]}},
            "analysis": analysis,
        }


def _checks(p99: bool) -> list[dict[str, Any]]:
    checks: list[dict[str, Any]] = [{"metric": "successRate", "min": 0.99, "maxDrop": 0.01}]
    if p99:
        checks.append({"metric": "latencyP99", "maxRatio": 2})
    return checks


# The analysis calls a p99 of fewer than 100 requests Inconclusive, and one inconclusive check
# makes the whole interval inconclusive (a step needs a passed one). So the rate is chosen for
# >= 100 canary requests per interval at the first step's 20 %: 40 req/s x 2 s x 20 % = 16 is
# far from it; 200 req/s x 4 s x 20 % = 160 (the full demo) stays above 100 even when an
# interval is measured a little short (150 req/s gave n = 99 once). The quick demo keeps 2 s
# intervals and drops latencyP99 instead (100 x 2 x 20 % = 40 < 100), keeping successRate.
FULL = DemoSettings(rate=200, steps=((20, "8s"), (50, "8s")), interval="4s", min_samples=40,
                    hold_s=5.0, act_timeout_s=150.0, p99=True)
QUICK = DemoSettings(rate=100, steps=((20, "4s"), (50, "4s")), interval="2s", min_samples=20,
                     hold_s=1.0, act_timeout_s=150.0, p99=False)


class DemoFailed(Exception):
    """An act did not end as the demo expects; the message says what happened."""


@dataclasses.dataclass
class Revision:
    label: str  # v1, v2, v3
    name: str = ""  # the revision (Deployment) name, once the operator made it
    applied_at: float = 0.0
    onset_at: float | None = None  # first request answered by it (the canary's first traffic)
    ended_at: float | None = None  # rolled back: traffic 100 % on stable again; promoted: Healthy


class Monitor:
    """Polls status, Events, routes and the load generator; prints what changed."""

    def __init__(self, sb: Sandbox, out: TextIO, t0: float) -> None:
        self.sb, self.out, self.t0 = sb, out, t0
        self.load: LoadGenerator | None = None
        self.revisions: list[Revision] = []
        self.seen_events: set[str] = set()
        self.last_line = ""
        self.last_printed = 0.0
        self.phases: list[tuple[float, str]] = []  # (elapsed, phase) at every change

    def say(self, text: str) -> None:
        print(f"[{time.monotonic() - self.t0:5.1f}s] {text}", file=self.out, flush=True)

    def label(self, revision: str | None) -> str:
        for known in self.revisions:
            if known.name and known.name == revision:
                return f"{revision} ({known.label})"
        return revision or "-"

    def report(self) -> LoadReport | None:
        return self.load.report() if self.load else None

    def tick(self) -> dict[str, Any]:
        obj = self.sb.get(NAME) or {}
        status = obj.get("status") or {}
        now = time.monotonic()
        self._events()
        self._learn_names(status)
        phase = status.get("phase") or "Pending"
        if not self.phases or self.phases[-1][1] != phase:
            self.phases.append((now - self.t0, phase))
        report = self.report()
        if report is not None:
            for revision in self.revisions:
                if revision.name and revision.onset_at is None and report.total(revision.name) > 0:
                    revision.onset_at = now
        line = self._line(status, report)
        key = line.split("  load:")[0]  # the counters alone change every tick: not worth a line
        if key != self.last_line.split("  load:")[0] or now - self.last_printed > 5:
            self.say(line)
            self.last_line, self.last_printed = line, now
        return status

    def _learn_names(self, status: dict[str, Any]) -> None:
        """Name the newest applied model after the revision the operator made for it."""
        if not self.revisions or self.revisions[-1].name:
            return
        known = {r.name for r in self.revisions}
        rollout = (status.get("rollout") or {}).get("revision")
        rejected = [r.get("revision") for r in status.get("rejectedRevisions") or []]
        for candidate in (rollout, *rejected, status.get("stableRevision")):
            if candidate and candidate not in known:
                self.revisions[-1].name = candidate
                return

    def _line(self, status: dict[str, Any], report: LoadReport | None) -> str:
        rollout = status.get("rollout") or {}
        parts = [f"{status.get('phase') or 'Pending':<11}", f"stable {self.label(status.get('stableRevision'))}"]
        if status.get("canaryRevision"):
            parts.append(f"canary {self.label(status.get('canaryRevision'))} weight {status.get('canaryWeight', 0)}%")
            if rollout.get("stage") == "Steps":
                steps = ((self.sb.get(NAME) or {}).get("spec", {}).get("rollout") or {}).get("steps") or []
                parts.append(f"step {rollout.get('step', 0) + 1}/{len(steps)}"
                             + ("" if status.get("canaryWeight") else " (traffic not shifted yet)"))
            elif rollout.get("stage"):
                parts.append(str(rollout["stage"]))
        analysis = status.get("analysis") or {}
        if analysis.get("verdict") and status.get("canaryRevision"):
            checks = {c.get("name"): c for c in analysis.get("checks") or []}
            detail = ""
            if rate := checks.get("successRate"):
                # As `kubectl modeldeploy status` shows them: the same formatter, the same digits.
                canary, stable = (metric_value("successRate", rate.get(role)) for role in ("canary", "stable"))
                detail = (f" (success canary {canary} n={rate.get('canarySamples', 0)} vs stable {stable}"
                          f" n={rate.get('stableSamples', 0)}")
                if p99 := checks.get("latencyP99"):
                    detail += (f"; p99 {metric_value('latencyP99', p99.get('canary'))} vs "
                               f"{metric_value('latencyP99', p99.get('stable'))}")
                detail += ")"
            parts.append(f"analysis {analysis['verdict']}{detail}")
        text = "  ".join(parts)
        if report is not None:
            text += "  load: " + _counts(report, self.label)
        return text

    def _events(self) -> None:
        # The ModelDeployment's own Events (the HPA of the same name has its own: without a metrics
        # server in the sandbox, it warns that it has no CPU metrics).
        events = [e for e in self.sb.kube.list("v1", "Event", self.sb.namespace)
                  if (e.get("involvedObject") or {}).get("name") == NAME
                  and (e.get("involvedObject") or {}).get("kind") == "ModelDeployment"
                  and e["metadata"]["name"] not in self.seen_events]
        for event in sorted(events, key=lambda e: int(e["metadata"].get("resourceVersion") or 0)):
            self.seen_events.add(event["metadata"]["name"])
            self.say(f"Event  {event.get('type', 'Normal'):<7} {event.get('reason')}: {event.get('message')}")

    def stable_only(self, stable: str) -> bool:
        """The data plane (the HTTPRoute + ready endpoints) sends every request to ``stable``."""
        table = resolve(self.sb.kube, self.sb.namespace, NAME)
        live = [b for b in table.backends if b.weight > 0]
        return bool(live) and all(e.revision == stable for b in live for e in b.endpoints)

    def watch(self, done: Callable[[dict[str, Any]], bool], timeout: float, what: str) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            status = self.tick()
            if done(status):
                return status
            if time.monotonic() > deadline:
                raise DemoFailed(f"timed out after {duration(timeout)} waiting for {what}")
            if self.load is not None and self.load.error is not None:
                raise DemoFailed(f"the load generator failed: {self.load.error!r}")
            time.sleep(0.25)


def _counts(report: LoadReport, label: Callable[[str | None], str]) -> str:
    parts = []
    for revision, stats in sorted(report.by_revision.items()):
        name = "<no endpoint>" if revision == NO_ENDPOINT else label(revision).split(" ")[-1].strip("()")
        parts.append(f"{name} {stats.successes} ok/{stats.failures} failed")
    return ", ".join(parts) or "-"


def _spec(sb: Sandbox, version: int, settings: DemoSettings, fault: bool) -> dict[str, Any]:
    artifact = sb.artifacts.linear(f"{NAME}/{version}/model.onnx", seed=version)
    spec: dict[str, Any] = {"rollout": settings.rollout(), "autoscaling": {"minReplicas": 1, "maxReplicas": 1}}
    if fault:
        spec["runtime"] = {"env": [{"name": FAULT_ENV, "value": FAULT_RATE}]}
    return model_deployment(NAME, artifact, **spec)


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM (e.g. `timeout`, CI cancel) unwinds like Ctrl-C, so the cleanup runs."""
    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, interrupt)
    except ValueError:  # not the main thread (e.g. called from a test's worker thread)
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_demo(quick: bool = False, out: TextIO | None = None) -> int:
    """The demo; 0 when v2 was rolled back (AnalysisFailed) and v3 promoted, else 1 (130: interrupted)."""
    out = out or sys.stdout
    settings = QUICK if quick else FULL
    t0 = time.monotonic()

    def say(text: str = "") -> None:
        print(text, file=out, flush=True)

    say(f"modeldeploy demo{' --quick' if quick else ''}: starting a local Kubernetes cluster (etcd, kube-apiserver, "
        "kube-controller-manager, kube-scheduler, the sandbox kubelet) on 127.0.0.1")
    try:
        with _sigterm_as_interrupt():
            try:
                with LocalCluster() as cluster:
                    for line in describe_cluster(cluster):
                        say(line)
                    return _run_in(cluster, settings, out, t0)
            finally:
                say(f"stopped everything the demo started (pods, operator, control plane) and removed its files; "
                    f"{duration(time.monotonic() - t0)} in all")
    except KeyboardInterrupt:
        say("\ninterrupted: every process the demo started was stopped")
        return 130


def _run_in(cluster: LocalCluster, settings: DemoSettings, out: TextIO, t0: float) -> int:
    with Sandbox(cluster, NAMESPACE) as sb:
        started = time.monotonic()
        with sb.run_operator() as operator:
            print(f"operator: `kopf run -m modeldeploy.handlers` as its own process (pid {operator.pid}), "
                  f"with the chart's ServiceAccount and RBAC, watching namespace {sb.namespace}; live in "
                  f"{duration(time.monotonic() - started)}", file=out, flush=True)
            print(f"traffic: {settings.rate:g} req/s of inference through the EndpointSlices and the HTTPRoute; "
                  "steps " + ", ".join(f"{w}% for {p}" for w, p in settings.steps)
                  + f"; analysis every {settings.interval}, minSamples {settings.min_samples}, failureLimit 2; "
                  + "checks: " + "; ".join(_describe(c) for c in _checks(settings.p99))
                  + ("" if settings.p99 else " (latencyP99 off: <100 canary requests per interval, see demo.py)"),
                  file=out, flush=True)
            with contextlib.ExitStack() as stack:
                monitor = Monitor(sb, out, t0)
                try:
                    ok = _acts(sb, monitor, settings, stack)
                except DemoFailed as error:
                    monitor.say(f"FAILED: {error}")
                    print(sb.describe(NAME), file=out)
                    _summary(monitor, out)
                    return 1
                _summary(monitor, out)
                return 0 if ok else 1


def _describe(check: dict[str, Any]) -> str:
    # Bounds in the metric's unit, as the operator's Events say them (min 99.00%); ratios as written.
    def bound(key: str, value: Any) -> str:
        return metric_value(check["metric"], value) if key in ("min", "max", "maxDrop") else str(value)

    return f"{check['metric']} " + " ".join(f"{k} {bound(k, v)}" for k, v in check.items() if k != "metric")


def _acts(sb: Sandbox, monitor: Monitor, settings: DemoSettings, stack: contextlib.ExitStack) -> bool:
    say = monitor.say
    # Act 1: the first revision has nothing to be compared with: it becomes stable directly.
    v1 = Revision("v1", applied_at=time.monotonic())
    monitor.revisions.append(v1)
    say("== 1. deploy model v1")
    sb.apply(_spec(sb, 1, settings, fault=False))
    monitor.watch(lambda s: s.get("phase") == "Healthy", settings.act_timeout_s, "v1 Healthy")
    v1.ended_at = time.monotonic()
    say(f"v1 is Healthy as {v1.name} after {duration(v1.ended_at - v1.applied_at)}; starting the load generator")
    monitor.load = stack.enter_context(sb.loadgen(NAME, rate=settings.rate, duration=600, seed=1))
    _hold(monitor, settings.hold_s)

    # Act 2: a regression. The analysis must see it and roll back before the last step.
    say(f"== 2. canary v2 with an injected regression ({FAULT_ENV}={FAULT_RATE}: 20% of requests answer 500)")
    v2 = Revision("v2", applied_at=time.monotonic())
    monitor.revisions.append(v2)
    sb.apply(_spec(sb, 2, settings, fault=True))
    monitor.watch(lambda s: bool(v2.name), settings.act_timeout_s, "the v2 canary")
    status = monitor.watch(lambda s: s.get("phase") in ("RolledBack", "Failed")
                           or (s.get("phase") == "Healthy" and s.get("stableRevision") == v2.name),
                           settings.act_timeout_s, "v2 to be rolled back")
    monitor.watch(lambda s: monitor.stable_only(v1.name), 30, "all traffic back on v1")
    v2.ended_at = time.monotonic()
    rejections = [r for r in status.get("rejectedRevisions") or [] if r.get("revision") == v2.name]
    rejected: dict[str, Any] = rejections[-1] if rejections else {}
    if status.get("phase") != "RolledBack" or rejected.get("reason") != "AnalysisFailed":
        raise DemoFailed(f"v2 was not rolled back by the analysis: phase {status.get('phase')}, "
                         f"reason {rejected.get('reason')}: {rejected.get('message') or status.get('message')}")
    # The reason is the AnalysisFailed Event just printed and the report below: not a third time here.
    say(f"v2 rolled back ({rejected['reason']}): all traffic is on {monitor.label(v1.name)} again")
    # The same report `kubectl modeldeploy status` gives in a cluster: the failed analysis table.
    say(f"$ kubectl modeldeploy status {NAME} -n {sb.namespace}")
    print(textwrap.indent(format_status(sb.get(NAME) or {"metadata": {"name": NAME, "namespace": sb.namespace}}),
                          "    "), file=monitor.out, flush=True)
    _hold(monitor, settings.hold_s)

    # Act 3: a good canary: every step passes its analysis, then promotion.
    say("== 3. canary v3, a good model")
    v3 = Revision("v3", applied_at=time.monotonic())
    monitor.revisions.append(v3)
    sb.apply(_spec(sb, 3, settings, fault=False))
    monitor.watch(lambda s: bool(v3.name), settings.act_timeout_s, "the v3 canary")
    status = monitor.watch(lambda s: s.get("phase") in ("RolledBack", "Failed")
                           or (s.get("phase") == "Healthy" and s.get("stableRevision") == v3.name),
                           settings.act_timeout_s, "v3 to be promoted")
    v3.ended_at = time.monotonic()
    if status.get("stableRevision") != v3.name or status.get("phase") != "Healthy":
        raise DemoFailed(f"v3 was not promoted: phase {status.get('phase')} ({status.get('reason')}): "
                         f"{status.get('message')}")
    say(f"v3 promoted: {v3.name} is the stable revision")
    _hold(monitor, settings.hold_s)
    return True


def _hold(monitor: Monitor, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        monitor.tick()
        time.sleep(0.25)


def _summary(monitor: Monitor, out: TextIO) -> None:
    status = monitor.sb.status(NAME)
    report = monitor.load.stop() if monitor.load else None
    lines = ["", "== summary"]
    for rejected in status.get("rejectedRevisions") or []:
        lines.append(f"rolled back: {monitor.label(rejected.get('revision'))}: {rejected.get('reason')}: "
                     f"{rejected.get('message')}")
    for revision in monitor.revisions:
        if revision.label == "v2" and revision.onset_at and revision.ended_at:
            lines.append(f"regression onset (first request answered by v2) -> 100% on stable: "
                         f"{duration(revision.ended_at - revision.onset_at)} "
                         f"(v2 applied -> stable only: {duration(revision.ended_at - revision.applied_at)})")
        if revision.label == "v3" and revision.ended_at and status.get("stableRevision") == revision.name:
            lines.append(f"promoted: {monitor.label(revision.name)} after "
                         f"{duration(revision.ended_at - revision.applied_at)} (applied -> Healthy, all steps passed)")
    lines.append(f"final: phase {status.get('phase')}, stable {monitor.label(status.get('stableRevision'))}")
    if report is not None:
        lines.append(f"requests: {report.total()} answered in {duration(report.elapsed_s)} "
                     f"(sent {report.sent}, dropped {report.dropped})")
        for key, stats in sorted(report.by_revision.items()):
            name = "<no endpoint>" if key == NO_ENDPOINT else monitor.label(key)
            total = stats.successes + stats.failures
            p99 = report.latency_ms(0.99, key)
            lines.append(f"  {name:<22} {stats.successes:>6} ok {stats.failures:>5} failed "
                         f"({percent(stats.successes / total if total else None)} ok, p99 {duration(p99 / 1000)})"
                         + (f" errors {dict(stats.errors)}" if stats.errors else ""))
    lines.append("phases: " + " -> ".join(f"{phase}@{duration(at)}" for at, phase in monitor.phases))
    print("\n".join(lines), file=out, flush=True)
