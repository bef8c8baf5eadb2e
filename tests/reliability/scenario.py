"""What every reliability scenario shares: the canary it runs, the end it must reach, and the
invariants it must keep while faults happen (children, Events, ready backends behind the endpoint).

Short clocks as in tests/sandbox/test_canary_scenarios.py: 1 s analysis intervals, 2 s pauses, three
steps, two stable replicas, so one canary takes ~10 s undisturbed.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime
import threading
import time
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any

import kubernetes

from modeldeploy_sandbox.cluster import LocalCluster
from modeldeploy_sandbox.sandbox import Sandbox, model_deployment
from modeldeploy_sandbox.waiting import wait_until

NAME = "resnet"
# One canary pod at every step (of two stable ones), so that promotion has a pod to add and a
# Promoting stage that lasts until it is ready.
STEPS = [{"weight": 20, "pause": "2s"}, {"weight": 35, "pause": "2s"}, {"weight": 50, "pause": "2s"}]
CHECKS = [{"metric": "successRate", "min": 0.95, "maxDrop": 0.02}, {"metric": "latencyMean", "max": "100ms"}]
# Every kind the operator makes for a ModelDeployment (the HTTPRoute only with the gatewayAPI router).
CHILD_KINDS = (("apps/v1", "Deployment"), ("v1", "Service"), ("autoscaling/v2", "HorizontalPodAutoscaler"),
               ("policy/v1", "PodDisruptionBudget"))


def canary_manifest(sb: Sandbox, version: int, *, env: Mapping[str, str] | None = None,
                    other_signature: bool = False, **rollout: Any) -> dict[str, Any]:
    """Revision ``version`` of the model (its own weights), rolled out as a three-step canary."""
    path = f"{NAME}/{version}/model.onnx"
    artifact = sb.artifacts.other_signature(path, seed=version) if other_signature else sb.artifacts.linear(
        path, seed=version)
    settings: dict[str, Any] = {
        "strategy": "canary", "steps": STEPS, "progressDeadlineSeconds": 180, "scaleDownDelaySeconds": 2,
        # A slow machine can starve an interval of requests: inconclusive, not a pause, for a while.
        "analysis": {"interval": "1s", "failureLimit": 2, "minSamples": 10, "inconclusiveLimit": 20,
                     "checks": CHECKS},
    }
    settings.update(rollout)
    spec: dict[str, Any] = {"autoscaling": {"minReplicas": 2, "maxReplicas": 2}, "rollout": settings}
    if env:
        spec["runtime"] = {"env": [{"name": key, "value": value} for key, value in env.items()]}
    return model_deployment(NAME, artifact, **spec)


def conditions(status: Mapping[str, Any]) -> dict[str, tuple[str, str]]:
    """type -> (status, reason)."""
    return {c.get("type", ""): (c.get("status", ""), c.get("reason", "")) for c in status.get("conditions") or []}


def _time(text: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))


def in_step(status: Mapping[str, Any], index: int, *, analysed: bool) -> bool:
    """The canary is at step ``index`` and (``analysed``) an analysis interval ran in it, whatever its
    verdict, or (not ``analysed``) none has yet: a step's two states, each at least one interval long."""
    rollout = status.get("rollout") or {}
    if rollout.get("stage") != "Steps" or rollout.get("step") != index or not rollout.get("stepStartedAt"):
        return False
    last_run = (status.get("analysis") or {}).get("lastRun")
    ran = last_run is not None and _time(last_run) > _time(rollout["stepStartedAt"])
    return ran == analysed


def rejected_reason(status: Mapping[str, Any], revision: str) -> str | None:
    found = [r.get("reason") for r in status.get("rejectedRevisions") or [] if r.get("revision") == revision]
    return str(found[-1]) if found else None


def deployment_names(sb: Sandbox) -> list[str]:
    return sorted(d["metadata"]["name"] for d in sb.deployments(NAME))


def pod_revisions(sb: Sandbox) -> set[str]:
    """Revisions with a running process in the sandbox kubelet."""
    return {p.revision for p in sb.running_pods() if p.revision}


def promoted(sb: Sandbox, candidate: str) -> bool:
    """The undisturbed end of a good canary: the candidate is the only revision left, nothing to do."""
    status = sb.status(NAME)
    return (status.get("phase") == "Healthy" and status.get("stableRevision") == candidate
            and conditions(status).get("Reconciling", ("", ""))[0] == "False" and not status.get("retiring")
            and deployment_names(sb) == [candidate] and pod_revisions(sb) == {candidate})


def rolled_back(sb: Sandbox, stable: str, candidate: str, reason: str) -> bool:
    """The undisturbed end of a bad canary: rejected for ``reason``, the stable alone serves."""
    status = sb.status(NAME)
    return (status.get("phase") == "RolledBack" and status.get("stableRevision") == stable
            and rejected_reason(status, candidate) == reason and not status.get("canaryWeight")
            and pod_revisions(sb) == {stable} and candidate not in deployment_names(sb))


def operator_log(sb: Sandbox, lines: int = 30) -> str:
    """The running operator's last log lines, without kopf's per-handler chatter (for failure messages)."""
    if sb.operator is None:
        return ""
    text = sb.operator.log_path.read_text(errors="replace")
    return "\n".join([line for line in text.splitlines() if "Handler '" not in line][-lines:])


def wait_explained(sb: Sandbox, predicate: Callable[[], object], timeout: float, what: str) -> None:
    """``wait_until``, and on timeout the state *then* (status, children, pods, the operator's log)."""
    try:
        wait_until(predicate, timeout=timeout, interval=0.1, message=what)
    except TimeoutError as error:
        raise TimeoutError(f"{error}\n{sb.describe(NAME)}\noperator log:\n{operator_log(sb)}") from None


def child_problems(sb: Sandbox) -> list[str]:
    """Orphans (no controller reference to the live ModelDeployment) and duplicates (two objects of a
    kind for one revision and role, or more than one HPA / PDB / endpoint Service)."""
    owner = sb.get(NAME)
    uid = owner["metadata"]["uid"] if owner else None
    problems: list[str] = []
    seen: collections.Counter[tuple[str, str, str]] = collections.Counter()
    for api_version, kind in CHILD_KINDS:
        for child in sb.kube.list(api_version, kind, sb.namespace, {"modeldeploy.dev/name": NAME}):
            meta = child["metadata"]
            refs = [r for r in meta.get("ownerReferences") or [] if r.get("controller")]
            if [r.get("uid") for r in refs] != [uid]:
                problems.append(f"orphan {kind}/{meta['name']}: controller {refs}")
            labels = meta.get("labels") or {}
            seen[kind, labels.get("modeldeploy.dev/revision", ""), labels.get("modeldeploy.dev/role", "")] += 1
    problems += [f"duplicate {kind} for revision {rev!r} role {role!r}: {n}" for (kind, rev, role), n in seen.items()
                 if n > 1]
    deployments = {d["metadata"]["name"] for d in sb.deployments(NAME)}
    for pod in sb.pods(NAME):
        revision = (pod["metadata"].get("labels") or {}).get("modeldeploy.dev/revision")
        if revision not in deployments and not pod["metadata"].get("deletionTimestamp"):
            problems.append(f"orphan pod {pod['metadata']['name']} of revision {revision} (no Deployment)")
    return problems


def operator_events(sb: Sandbox) -> list[dict[str, Any]]:
    """The operator's Events about the ModelDeployment (not the controllers' about its same-named
    Service or PodDisruptionBudget)."""
    return [e for e in sb.events(NAME) if (e.get("involvedObject") or {}).get("kind") == "ModelDeployment"]


def event_reasons(sb: Sandbox, since: set[str]) -> collections.Counter[str]:
    """Reasons of the operator's Events whose uid is not in ``since`` (the ones before)."""
    return collections.Counter(e.get("reason", "") for e in operator_events(sb) if e["metadata"]["uid"] not in since)


def event_uids(sb: Sandbox) -> set[str]:
    return {e["metadata"]["uid"] for e in operator_events(sb)}


class EndpointWatch:
    """A real watch on the EndpointSlices of the endpoint Service ``service``: after every event, the
    number of ready addresses behind it. ``minimum``: the lowest seen since ``start``; ``empty``: when
    (seconds since start) it was zero. A broken watch (an apiserver restart) is listed again."""

    def __init__(self, cluster: LocalCluster, namespace: str, service: str = NAME) -> None:
        self.namespace, self.service = namespace, service
        self._api = kubernetes.config.new_client_from_config(config_file=str(cluster.control_plane.kubeconfig))
        self._slices: dict[str, int] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._started = 0.0
        self.minimum: int | None = None
        self.empty: list[float] = []
        self.events = 0
        self.relists = 0

    def __enter__(self) -> EndpointWatch:
        self._started = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="endpoint-watch", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
        self._api.close()

    def ready(self) -> int:
        with self._lock:
            return sum(self._slices.values())

    def reset_minimum(self) -> None:
        with self._lock:
            self.minimum = sum(self._slices.values()) if self._slices else None
            self.empty.clear()

    @staticmethod
    def _ready_addresses(endpoint_slice: Any) -> int:
        # An endpoint whose `ready` is unset counts as ready (the EndpointSlice API's rule).
        return sum(len(e.addresses or []) for e in endpoint_slice.endpoints or []
                   if e.conditions is None or e.conditions.ready is not False)

    def _note(self) -> None:
        total = sum(self._slices.values())
        self.minimum = total if self.minimum is None else min(self.minimum, total)
        if total == 0:
            self.empty.append(time.monotonic() - self._started)

    def _run(self) -> None:
        api = kubernetes.client.DiscoveryV1Api(self._api)
        selector = f"kubernetes.io/service-name={self.service}"
        while not self._stop.is_set():
            try:
                listed = api.list_namespaced_endpoint_slice(self.namespace, label_selector=selector)
                with self._lock:
                    self._slices = {str(s.metadata.name if s.metadata else ""): self._ready_addresses(s)
                                    for s in listed.items}
                    if self._slices:
                        self._note()
                    self.relists += 1
                version = listed.metadata.resource_version if listed.metadata else None
                watch = kubernetes.watch.Watch()
                for event in watch.stream(api.list_namespaced_endpoint_slice, self.namespace, label_selector=selector,
                                          resource_version=version, timeout_seconds=5):
                    item = event["object"]
                    with self._lock:
                        if event["type"] == "DELETED":
                            self._slices.pop(item.metadata.name, None)
                        else:
                            self._slices[item.metadata.name] = self._ready_addresses(item)
                        self.events += 1
                        self._note()
                    if self._stop.is_set():
                        watch.stop()
            except Exception:  # the apiserver restarting, a 410: list again, as a reflector does
                self._stop.wait(0.2)


@dataclasses.dataclass
class RequestRate:
    """Requests per second of one client through a fault proxy, over a window of ``seen`` entries."""

    total: int
    seconds: float
    peak_per_second: int

    @property
    def mean(self) -> float:
        return self.total / self.seconds if self.seconds > 0 else float(self.total)


def request_rate(times: list[float]) -> RequestRate:
    """Mean and peak (any 1 s window) of requests at monotonic ``times``."""
    if not times:
        return RequestRate(0, 0.0, 0)
    times = sorted(times)
    peak, start = 0, 0
    for end, at in enumerate(times):
        while at - times[start] >= 1.0:
            start += 1
        peak = max(peak, end - start + 1)
    return RequestRate(len(times), times[-1] - times[0], peak)

