"""kill -9 of the operator at chosen points of canaries, each run compared with an undisturbed one.

A point is a predicate on what the API shows (the ModelDeployment's status, the candidate's
Deployment and pods): the campaign polls every 50 ms and kills the operator the first time it holds,
so the points follow the rollout's own transitions, never a timer. One namespace serves the whole
campaign: each run is the next revision of the model, rolled out from whatever the previous run left
stable. Per variant (a good canary, an error regression, a signature change, a model that cannot
load, an abort, a manual promote) an undisturbed reference run comes first; every killed run of that
variant must reach the same end (phase, stable revision, rejection reason), keep every Event reason
the reference emitted, leave no orphaned or duplicated child, and never leave the endpoint Service
with zero ready addresses (a watch on its EndpointSlices) nor a request without an endpoint.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import datetime
import itertools
import time
from collections.abc import Callable, Mapping
from typing import Any

from modeldeploy.cli.kubectl import send_intent
from modeldeploy_sandbox.loadgen import NO_ENDPOINT
from modeldeploy_sandbox.operator_process import OperatorProcess
from modeldeploy_sandbox.sandbox import Sandbox
from modeldeploy_sandbox.waiting import wait_until

from .scenario import (
    NAME,
    EndpointWatch,
    canary_manifest,
    child_problems,
    event_reasons,
    event_uids,
    in_step,
    operator_log,
    promoted,
    rolled_back,
    wait_explained,
)

POLL_S = 0.05
RUN_TIMEOUT_S = 120.0
LOAD_RATE = 60.0

Predicate = Callable[[Sandbox, dict[str, Any], str], bool]


@dataclasses.dataclass(frozen=True)
class Variant:
    name: str
    rejected: str | None = None  # None: the canary is promoted; else the reason it is rolled back for
    env: Mapping[str, str] = dataclasses.field(default_factory=dict)
    other_signature: bool = False
    intent: str | None = None  # sent through the status subresource once step 1 is set


VARIANTS = {v.name: v for v in (
    Variant("good"),
    Variant("errors", "AnalysisFailed", {"MODELSERVER_FAULT_ERROR_RATE": "0.5"}),
    Variant("signature", "GateFailed", other_signature=True),
    Variant("load-fail", "ModelLoadFailed", {"MODELSERVER_FAULT_LOAD_FAIL": "1"}),
    Variant("abort", "Aborted", intent="abort"),
    Variant("promote", intent="promote"),
)}


@dataclasses.dataclass(frozen=True)
class Point:
    name: str
    variant: str
    reached: Predicate


def _rollout(status: Mapping[str, Any]) -> dict[str, Any]:
    return dict(status.get("rollout") or {})


def _step(index: int, analysed: bool) -> Predicate:
    def reached(sb: Sandbox, status: dict[str, Any], candidate: str) -> bool:
        return _rollout(status).get("revision") == candidate and in_step(status, index, analysed=analysed)
    return reached


def _candidate_ready(sb: Sandbox, status: dict[str, Any], candidate: str) -> bool:
    deployment = sb.kube.get("apps/v1", "Deployment", sb.namespace, candidate) or {}
    return bool((deployment.get("status") or {}).get("readyReplicas"))


def _candidate_crashed(sb: Sandbox, status: dict[str, Any], candidate: str) -> bool:
    for pod in sb.pods(NAME, candidate):
        for container in (pod.get("status") or {}).get("containerStatuses") or []:
            if container.get("restartCount") or "terminated" in (container.get("lastState") or {}):
                return True
    return False


def _stage(stage: str) -> Predicate:
    return lambda sb, status, candidate: _rollout(status).get("stage") == stage


def _phase(phase: str) -> Predicate:
    return lambda sb, status, candidate: status.get("phase") == phase


def _promoted(sb: Sandbox, status: dict[str, Any], candidate: str) -> bool:
    return status.get("stableRevision") == candidate


def _retiring_for(seconds: float) -> Predicate:
    def reached(sb: Sandbox, status: dict[str, Any], candidate: str) -> bool:
        retiring = status.get("retiring") or []
        if status.get("stableRevision") != candidate or not retiring:
            return False
        since = datetime.datetime.fromisoformat(str(retiring[0]["since"]).replace("Z", "+00:00"))
        return (datetime.datetime.now(datetime.UTC) - since).total_seconds() >= seconds
    return reached


ALL_POINTS = [
    Point("good: canary revision recorded", "good", lambda sb, status, candidate: True),
    Point("good: canary pod ready (gates)", "good", _candidate_ready),
    Point("good: step 1/3 set", "good", _step(0, analysed=False)),
    Point("good: step 1/3 analysed", "good", _step(0, analysed=True)),
    Point("good: step 2/3 set", "good", _step(1, analysed=False)),
    Point("good: step 2/3 analysed", "good", _step(1, analysed=True)),
    Point("good: step 3/3 set", "good", _step(2, analysed=False)),
    Point("good: step 3/3 analysed", "good", _step(2, analysed=True)),
    Point("good: promoting", "good", _stage("Promoting")),
    Point("good: promoted", "good", _promoted),
    Point("good: retiring the old revision", "good", _retiring_for(1.0)),
    Point("errors: step 1/3 set", "errors", _step(0, analysed=False)),
    Point("errors: first failed interval", "errors",
          lambda sb, status, candidate: (status.get("analysis") or {}).get("consecutiveFailures") == 1),
    Point("errors: rolled back", "errors", _phase("RolledBack")),
    Point("signature: canary pod ready (gate)", "signature", _candidate_ready),
    Point("signature: gate failed", "signature", _phase("RolledBack")),
    Point("load-fail: canary crashed", "load-fail", _candidate_crashed),
    Point("load-fail: rolled back", "load-fail", _phase("RolledBack")),
    Point("abort: intent written", "abort", _step(0, analysed=False)),
    Point("promote: intent written", "promote", _step(0, analysed=False)),
]
POINTS = {p.name: p for p in ALL_POINTS}


@dataclasses.dataclass
class Row:
    point: str
    end: str
    seconds: float
    lost_events: list[str]
    extra_events: list[str]
    min_ready: int | None
    no_endpoint: int
    failed: dict[str, int]  # failed requests by revision and error, but the errors variant's own canary's
    problems: list[str]
    killed_at: str = ""
    empty_at: list[float] = dataclasses.field(default_factory=list)  # seconds into the run


class Campaign:
    """One namespace, one operator at a time (replaced after each kill), one revision per run."""

    def __init__(self, sb: Sandbox, endpoints: EndpointWatch) -> None:
        self.sb, self.endpoints = sb, endpoints
        self.versions = itertools.count(2)
        self.known: set[str] = set()
        self.references: dict[str, tuple[str, float, collections.Counter[str]]] = {}
        self.rows: list[Row] = []
        self._operator: contextlib.ExitStack | None = None
        self.operator: OperatorProcess | None = None

    # ----- the operator -----

    def start_operator(self) -> None:
        stack = contextlib.ExitStack()
        self.operator = stack.enter_context(self.sb.run_operator())
        self._operator = stack

    def kill_operator(self) -> None:
        assert self.operator is not None and self._operator is not None
        self.operator.kill()
        self._operator.close()
        self.operator = self._operator = None

    def close(self) -> None:
        if self._operator is not None:
            self._operator.close()

    def deploy_first(self) -> str:
        self.sb.apply(canary_manifest(self.sb, 1))
        status = self.sb.wait_for(NAME, lambda s: s.get("phase") == "Healthy", 90, "v1 Healthy")
        stable = str(status["stableRevision"])
        self.known.add(stable)
        wait_until(lambda: len(self.sb.running_pods(ready=True)) == 2, timeout=30, message="2 ready pods")
        wait_until(lambda: self.endpoints.ready() == 2, timeout=30, message="2 ready addresses behind the endpoint")
        return stable

    # ----- one run -----

    def _candidate(self) -> str:
        def new() -> str | None:
            status = self.sb.status(NAME)
            for name in (_rollout(status).get("revision"), status.get("canaryRevision")):
                if name and name not in self.known:
                    return str(name)
            return None
        candidate = wait_until(new, timeout=30, interval=POLL_S, message="the new revision in status")
        self.known.add(candidate)
        return candidate

    def run(self, variant_name: str, point: Point | None) -> Row:
        """One revision rolled out; ``point``: kill -9 the operator there and start a new one."""
        sb, variant = self.sb, VARIANTS[variant_name]
        stable = str(sb.status(NAME)["stableRevision"])
        before = event_uids(sb)
        self.endpoints.reset_minimum()
        killed_at = ""
        with sb.loadgen(NAME, rate=LOAD_RATE, duration=RUN_TIMEOUT_S + 60) as load:
            started = time.monotonic()
            sb.apply(canary_manifest(sb, next(self.versions), env=variant.env,
                                     other_signature=variant.other_signature))
            candidate = self._candidate()
            if variant.intent is not None:
                self._wait_point(_step(0, analysed=False), candidate, "step 1 for the intent")
                send_intent(sb.kube, sb.namespace, NAME, variant.intent)  # type: ignore[arg-type]
            if point is not None:
                if variant.intent is None:
                    self._wait_point(point.reached, candidate, point.name)
                killed_at = _describe(sb.status(NAME))
                self.kill_operator()
                self.start_operator()
            end = self._wait_end(variant, stable, candidate)
            seconds = time.monotonic() - started
            report = load.stop()
        reasons = event_reasons(sb, before)
        roles = {stable: "previous stable", candidate: "candidate"}
        failed = {f"{revision} ({roles.get(revision, 'other')}): {error}": count
                  for revision, stats in report.by_revision.items()
                  for error, count in stats.errors.items()
                  if revision != NO_ENDPOINT and not (variant.env and revision == candidate)}
        row = Row(point.name if point else f"{variant.name}: undisturbed", end, seconds, [], [],
                  self.endpoints.minimum, report.failures(NO_ENDPOINT), failed, child_problems(sb), killed_at,
                  list(self.endpoints.empty))
        if point is None:
            self.references[variant.name] = (end, seconds, reasons)
        else:
            reference = self.references[variant.name][2]
            row.lost_events = sorted(set(reference) - set(reasons))
            row.extra_events = sorted((reasons - reference).elements())
        self.rows.append(row)
        return row

    def _wait_point(self, reached: Predicate, candidate: str, what: str) -> None:
        deadline = time.monotonic() + RUN_TIMEOUT_S
        while not reached(self.sb, self.sb.status(NAME), candidate):
            if time.monotonic() > deadline:
                raise TimeoutError(f"kill point {what!r} never reached\n{self.sb.describe(NAME)}\n"
                                   f"operator log:\n{operator_log(self.sb)}")
            time.sleep(POLL_S)

    def _wait_end(self, variant: Variant, stable: str, candidate: str) -> str:
        sb = self.sb
        if variant.rejected is None:
            wait_explained(sb, lambda: promoted(sb, candidate), RUN_TIMEOUT_S, f"{candidate} promoted, alone")
        else:
            rejected = variant.rejected
            wait_explained(sb, lambda: rolled_back(sb, stable, candidate, rejected), RUN_TIMEOUT_S,
                           f"{candidate} rolled back ({rejected}), {stable} alone")
        status = sb.status(NAME)
        winner = "candidate" if status.get("stableRevision") == candidate else "previous stable"
        return f"{status.get('phase')} ({variant.rejected or 'promoted'}; stable = {winner})"


def _describe(status: Mapping[str, Any]) -> str:
    rollout = _rollout(status)
    analysis = status.get("analysis") or {}
    return (f"{status.get('phase')} {rollout.get('stage', '-')} step={rollout.get('step', '-')} "
            f"passed={analysis.get('passedIntervals', '-')} failures={analysis.get('consecutiveFailures', '-')}")


def table(rows: list[Row]) -> str:
    header = (f"{'#':>2}  {'kill point':<36} {'end':<56} {'time':>6}  {'lost events':<24} "
              f"{'min ready':>9} {'no endpoint':>11} {'failed':>6}  problems")
    lines = [header, "-" * len(header)]
    for index, row in enumerate(rows, 1):
        ready = "-" if row.min_ready is None else str(row.min_ready)
        lines.append(f"{index:>2}  {row.point:<36} {row.end:<56} {row.seconds:>5.1f}s  "
                     f"{', '.join(row.lost_events) or '-':<24} {ready:>9} "
                     f"{row.no_endpoint:>11} {sum(row.failed.values()):>6}  {'; '.join(row.problems) or '-'}")
    return "\n".join(lines)


def failures(campaign: Campaign) -> list[str]:
    """Every broken invariant of every killed run, against its variant's undisturbed reference."""
    found = []
    for row in campaign.rows:
        variant = row.point.split(":", 1)[0]
        reference_end = campaign.references[variant][0]
        if row.end != reference_end:
            found.append(f"{row.point}: ended {row.end}, undisturbed {reference_end}")
        if row.lost_events:
            found.append(f"{row.point}: Events lost: {row.lost_events} (killed at {row.killed_at})")
        if row.problems:
            found.append(f"{row.point}: children: {row.problems}")
        if not row.min_ready:
            found.append(f"{row.point}: zero ready addresses behind the endpoint (at {row.empty_at[:3]} s)")
        if row.no_endpoint:
            found.append(f"{row.point}: {row.no_endpoint} requests found no ready endpoint")
        if row.failed:
            found.append(f"{row.point}: requests to healthy revisions failed: {row.failed}")
    return found
