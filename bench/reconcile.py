"""Reconcile benchmark: N ModelDeployments created at once on the real local control plane.

The operator runs as its own process with the chart's ServiceAccount (as in the tests); the real
kube-controller-manager makes ReplicaSets and pods, the real kube-scheduler binds them to 16 nodes.
The sandbox kubelet is replaced by a watch-driven instant one (:class:`InstantKubelet`): a bound pod
is Running and Ready at once, with no process (N modelserver processes would not fit on the machine).
So the numbers are the operator's and the control plane's.

For each N it prints:
- synced: seconds from the first create until every object has status.observedGeneration ==
  metadata.generation and its conditions (the first status); healthy: until every one is Healthy
  (its pods Ready, promoted);
- p50/p99 create -> first status during that storm, and p99 of 20 objects created one at a time
  afterwards while the N others sit idle;
- the operator's API requests by verb (from the apiserver's audit log) and writes per object;
- requests during two no-op resync periods (goal 0: reads come from the watch caches);
- the operator's RSS at start, peak and end;
- the named baseline "floor": a plain client (8 threads, as the operator's 8 workers) creating the
  same objects and children (ModelDeployment, Deployment, 2 Services, HPA, PDB, a status write) with
  no operator: what the control plane itself costs. total/floor is the ratio to read.

Each N, and each floor, runs on a fresh control plane of its own, so none inherits another's backlog
(the garbage collector and the HPA controller still working through the objects before it).

    python bench/reconcile.py                    # N = 100, 1000 and 3000
    python bench/reconcile.py --sizes 100
    python bench/reconcile.py --sizes 1000 --operator-env MODELDEPLOY_API_QPS=100 MODELDEPLOY_API_BURST=200
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import os
import re
import statistics
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from modeldeploy.api import ModelDeploymentSpec
from modeldeploy.cache import Informer, Store
from modeldeploy.kubeapi import KubeApiError, KubeClient, NotFound
from modeldeploy.render import (
    Owner,
    RuntimeImages,
    render_deployment,
    render_hpa,
    render_main_service,
    render_pdb,
    render_revision_service,
)
from modeldeploy_sandbox.cluster import LocalCluster
from modeldeploy_sandbox.container_runner import rfc3339
from modeldeploy_sandbox.controlplane import rss_bytes
from modeldeploy_sandbox.kubelet import Kubelet
from modeldeploy_sandbox.nodes import SandboxNode
from modeldeploy_sandbox.operator_process import OperatorProcess

NAMESPACE = "bench"
FLOOR_NAMESPACE = "bench-floor"
API_VERSION, KIND = "serving.modeldeploy.dev/v1alpha1", "ModelDeployment"
WRITE_VERBS = {"create", "update", "patch", "delete", "deletecollection"}
RESYNC_SECONDS = 10.0
IDLE_PROBES = 20
WORKERS = 8


def bench_nodes(count: int = 16) -> tuple[SandboxNode, ...]:
    return tuple(SandboxNode(f"node-{index:02d}", f"10.240.1.{index + 1}",
                             {"cpu": "64", "memory": "512Gi", "pods": "250", "ephemeral-storage": "4Ti"})
                 for index in range(count))


class InstantKubelet(Kubelet):
    """The sandbox kubelet's node registration and Leases, but pods without processes, Ready at once,
    found through a watch (listing thousands of pods ten times a second would load the apiserver)."""

    def start(self) -> Kubelet:
        # No process listens on these pods' addresses: plain counters, not the sandbox's loopback
        # address pools (thousands of those would starve other sandboxes on the machine).
        self._next_ip: dict[str, Iterator[ipaddress.IPv4Address]] = {}
        self.pod_store = Store()
        self._pending: list[dict[str, Any]] = []
        self._pending_lock = threading.Lock()
        self._informer_stop = threading.Event()
        Informer(self.kube, "v1", "Pod", self.pod_store, on_event=self._on_pod).start(self._informer_stop)
        return super().start()

    def close(self) -> None:
        self._informer_stop.set()
        super().close()

    def _on_pod(self, kind: str, event_type: str, pod: dict[str, Any]) -> None:
        if event_type != "DELETED" and (pod.get("spec") or {}).get("nodeName") in self.nodes:
            with self._pending_lock:
                self._pending.append(pod)

    def sync(self) -> None:
        self._heartbeat()
        with self._pending_lock:
            pending, self._pending = self._pending, []
        now = rfc3339(time.time())
        for pod in pending:
            meta, spec = pod["metadata"], pod.get("spec") or {}
            node = spec["nodeName"]
            if meta.get("deletionTimestamp"):
                self._complete_deletion(meta["namespace"], meta["name"])
            elif not (pod.get("status") or {}).get("podIP"):
                pod_ip = self._allocate(node)
                if pod_ip is not None:
                    status = ready_status(spec, pod_ip, self.nodes[node].internal_ip, now)
                    with contextlib.suppress(NotFound):
                        self.kube.merge_patch("v1", "Pod", meta["namespace"], meta["name"], {"status": status},
                                              subresource="status")

    def _allocate(self, node: str) -> str | None:
        if node not in self._next_ip:
            pool = self._pools.get(node)
            if pool is None:
                return None
            self._next_ip[node] = iter(list(pool.network.hosts())[1:])
        return str(next(self._next_ip[node], "")) or None


def ready_status(spec: Mapping[str, Any], pod_ip: str, host_ip: str, now: str) -> dict[str, Any]:
    conditions = [{"type": kind, "status": "True", "lastProbeTime": None, "lastTransitionTime": now}
                  for kind in ("Initialized", "Ready", "ContainersReady", "PodScheduled")]
    return {
        "phase": "Running", "conditions": conditions, "podIP": pod_ip, "podIPs": [{"ip": pod_ip}],
        "hostIP": host_ip, "startTime": now,
        "initContainerStatuses": [
            {"name": c["name"], "image": c.get("image", ""), "imageID": "", "ready": True, "restartCount": 0,
             "state": {"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": now, "finishedAt": now}}}
            for c in spec.get("initContainers") or []],
        "containerStatuses": [
            {"name": c["name"], "image": c.get("image", ""), "imageID": "", "ready": True, "restartCount": 0,
             "started": True, "state": {"running": {"startedAt": now}}}
            for c in spec.get("containers") or []],
    }


def model_deployment(index: int, namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION, "kind": KIND,
        "metadata": {"name": f"model-{index:04d}", "namespace": namespace},
        "spec": {
            "model": {"uri": f"https://models.example/m{index}/model.onnx", "digest": "sha256:" + "ab" * 32},
            "rollout": {"strategy": "immediate"},
        },
    }


def synced(obj: Mapping[str, Any]) -> bool:
    status = obj.get("status") or {}
    return status.get("observedGeneration") == obj["metadata"].get("generation") and bool(status.get("conditions"))


class StatusWatch:
    """The time each ModelDeployment of a namespace first showed a synced status (by a watch)."""

    def __init__(self, kube: KubeClient, namespace: str) -> None:
        self.first_status: dict[str, float] = {}
        self._stop = threading.Event()
        self._informer = Informer(kube, API_VERSION, KIND, Store(), namespace=namespace, on_event=self._seen)

    def _seen(self, kind: str, event_type: str, obj: dict[str, Any]) -> None:
        name = obj["metadata"]["name"]
        if name not in self.first_status and synced(obj):
            self.first_status[name] = time.perf_counter()

    def __enter__(self) -> StatusWatch:
        self._informer.start(self._stop)
        self._informer.synced.wait(30)
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()

    def wait(self, names: list[str], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while any(name not in self.first_status for name in names):
            if time.monotonic() > deadline:
                missing = sum(1 for name in names if name not in self.first_status)
                raise TimeoutError(f"{missing} ModelDeployments without a synced status after {timeout}s")
            time.sleep(0.05)


class RssSampler:
    def __init__(self, pid: int) -> None:
        self.pid, self.peak, self._stop = pid, 0, threading.Event()
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        while not self._stop.wait(0.25):
            self.peak = max(self.peak, rss_bytes(self.pid))

    def stop(self) -> None:
        self._stop.set()


def phases(items: list[dict[str, Any]]) -> str:
    """How many objects are in each phase, with the Ready condition's reason of those not Healthy."""
    def state(item: Mapping[str, Any]) -> str:
        status = item.get("status") or {}
        phase = str(status.get("phase", "none"))
        if phase == "Healthy":
            return phase
        reason = next((c.get("reason", "") for c in status.get("conditions") or [] if c.get("type") == "Ready"), "")
        return f"{phase} ({reason})"

    return ", ".join(f"{count} {state}" for state, count in Counter(map(state, items)).most_common())


def wait_all_healthy(kube: KubeClient, timeout: float = 900.0) -> None:
    """Every object Healthy, and its last Event sent: nothing is left to do but resyncs. A rollout that
    ended any other way (RolledBack, Failed) ends the wait at once, with what happened."""
    deadline = time.monotonic() + timeout
    while True:
        items = kube.list(API_VERSION, KIND, NAMESPACE)
        if all((item.get("status") or {}).get("phase") == "Healthy" for item in items):
            break
        if any((item.get("status") or {}).get("phase") in ("Failed", "RolledBack") for item in items):
            raise RuntimeError(f"a first deploy did not become Healthy: {phases(items)}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"not every ModelDeployment became Healthy in {timeout}s: {phases(items)}")
        time.sleep(1.0)
    time.sleep(2.0)


def delete_model_deployments(kube: KubeClient, namespace: str, timeout: float = 900.0) -> None:
    """All of the namespace's ModelDeployments in one request, then wait until they are gone (timed: the
    deletion of N objects is part of what the bench reports)."""
    with contextlib.suppress(KubeApiError):  # thousands: the answer may time out, the deletion goes on
        kube.request("DELETE", f"/apis/serving.modeldeploy.dev/v1alpha1/namespaces/{namespace}/modeldeployments")
    deadline = time.monotonic() + timeout
    while kube.list(API_VERSION, KIND, namespace):
        if time.monotonic() > deadline:
            raise TimeoutError(f"ModelDeployments of {namespace} still there after {timeout}s")
        time.sleep(0.5)


def operator_requests(cluster: LocalCluster, since: int, detail: bool = False) -> Counter[str]:
    """The operator's requests by verb (its ServiceAccount, from the audit log) after its first `since` events;
    `detail`: by verb and resource."""
    def key(event: dict[str, Any]) -> str:
        if not detail:
            return str(event.get("verb"))
        ref = event.get("objectRef") or {}
        sub = f"/{ref['subresource']}" if ref.get("subresource") else ""
        return f"{event.get('verb')} {ref.get('resource')}{sub}"
    return Counter(key(e) for e in cluster.control_plane.audit_events()[since:] if e.get("stage") == "ResponseComplete")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class CpuMeter:
    """CPU seconds each process of a run used between start() and stop(): the control plane's components,
    the operator, and this process (the instant kubelet, the status watch, the creating client). With
    2 cores saturated, where the CPU went says what a faster run would have to take away."""

    def __init__(self, cluster: LocalCluster, operator_pid: int | None = None) -> None:
        self.pids = {name: component.process.pid for name, component in cluster.control_plane.components.items()}
        if operator_pid:
            self.pids["operator"] = operator_pid
        self.pids["bench (kubelet, watch, client)"] = os.getpid()
        self._start: dict[str, float] = {}
        self.used: dict[str, float] = {}

    def start(self) -> CpuMeter:
        self._start = {name: cpu_seconds(pid) for name, pid in self.pids.items()}
        return self

    def stop(self) -> dict[str, float]:
        self.used = {name: cpu_seconds(pid) - self._start[name] for name, pid in self.pids.items()}
        return self.used


def cpu_summary(used: Mapping[str, float], seconds: float) -> str:
    total, cores = sum(used.values()), os.cpu_count() or 1
    parts = ", ".join(f"{name} {value:.1f}" for name, value in sorted(used.items(), key=lambda kv: -kv[1]))
    return f"{total:.0f} s CPU in {seconds:.1f} s ({total / seconds / cores:.0%} of {cores} cores): {parts}"


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values) or [float("nan")]
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def create_all(kube: KubeClient, objects: list[dict[str, Any]], created: dict[str, float]) -> None:
    def create(obj: dict[str, Any]) -> None:
        created[obj["metadata"]["name"]] = time.perf_counter()
        kube.create(obj)

    with ThreadPoolExecutor(max_workers=4) as pool:  # a GitOps sync applying a directory
        list(pool.map(create, objects))


def throttled_seconds(operator: OperatorProcess) -> float:
    """Seconds the operator's requests waited on its client-side QPS limit (its own metric)."""
    found = re.search(r"^modeldeploy_api_throttled_seconds (\S+)$", operator.metrics(), re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def run_operator(cluster: LocalCluster, n: int, env: Mapping[str, str] | None = None) -> dict[str, Any]:
    kube = cluster.admin
    cluster.create_namespace(NAMESPACE)
    env = {"MODELDEPLOY_RESYNC_SECONDS": str(RESYNC_SECONDS), **(env or {})}
    with cluster.operator([NAMESPACE], env=env) as operator, StatusWatch(kube, NAMESPACE) as watch:
        pid = operator.pid or 0
        rss_start = rss_bytes(pid)
        cpu_start = cpu_seconds(pid)
        meter = CpuMeter(cluster, pid).start()
        sampler = RssSampler(pid)
        audit_start = len(cluster.control_plane.audit_events())
        objects = [model_deployment(index, NAMESPACE) for index in range(n)]
        created: dict[str, float] = {}
        started = time.perf_counter()
        create_all(kube, objects, created)
        watch.wait(list(created), timeout=900)
        total = max(watch.first_status.values()) - started
        cpu_synced = cpu_seconds(pid) - cpu_start
        cpu_by_process = meter.stop()
        throttled = throttled_seconds(operator)
        storm = [watch.first_status[name] - created[name] for name in created]
        time.sleep(2.0)  # the last transitions' writes land in the audit log
        requests = operator_requests(cluster, audit_start)
        by_resource = operator_requests(cluster, audit_start, detail=True)
        wait_all_healthy(kube)
        all_healthy = time.perf_counter() - started - 2.0
        # One at a time while the N others sit idle (Healthy, only their resync timers pending).
        idle: list[float] = []
        for index in range(n, n + IDLE_PROBES):
            obj = model_deployment(index, NAMESPACE)
            began = time.perf_counter()
            kube.create(obj)
            watch.wait([obj["metadata"]["name"]], timeout=120)
            idle.append(watch.first_status[obj["metadata"]["name"]] - began)
        wait_all_healthy(kube)
        quiet_start = len(cluster.control_plane.audit_events())
        time.sleep(2 * RESYNC_SECONDS + 1)  # two resync periods with nothing changed
        noop = operator_requests(cluster, quiet_start, detail=True)
        for key in [key for key in noop if key.startswith("watch ")]:
            del noop[key]  # the watches stay open: they are the feed, not requests per object
        sampler.stop()
        rss_end = rss_bytes(pid)
        deleting = time.perf_counter()
        delete_model_deployments(kube, NAMESPACE)  # timed: what deleting N objects costs
        deleted = time.perf_counter() - deleting
    return {
        "n": n, "total": total, "healthy": all_healthy, "p50": statistics.median(storm), "p99": percentile(storm, 0.99),
        "idle_p99": percentile(idle, 0.99), "requests": requests,
        "writes_per_object": sum(v for k, v in requests.items() if k in WRITE_VERBS) / n,
        "cpu": cpu_synced, "throttled": throttled, "noop_requests": sum(noop.values()), "noop_detail": noop,
        "by_resource": by_resource, "cpu_by_process": cpu_by_process,
        "deleted": deleted,
        "rss": (rss_start / 2**20, sampler.peak / 2**20, rss_end / 2**20),
    }


def floor_objects(index: int) -> list[Callable[[KubeClient], Any]]:
    """The writes the operator makes for one object, made directly."""
    obj = model_deployment(index, FLOOR_NAMESPACE)
    name = obj["metadata"]["name"]
    spec = ModelDeploymentSpec.model_validate(obj["spec"])
    revision = f"{name}-floor"

    def md(kube: KubeClient) -> None:
        made = kube.create(obj)
        owner = Owner(api_version=API_VERSION, kind=KIND, name=name, namespace=FLOOR_NAMESPACE,
                      uid=made["metadata"]["uid"])
        for child in (
                render_deployment(spec, name=name, namespace=FLOOR_NAMESPACE, revision=revision, spec_hash="floor",
                                  role="stable", replicas=None, owner=owner, images=RuntimeImages()),
                render_revision_service(name=name, namespace=FLOOR_NAMESPACE, revision=revision, role="stable",
                                        owner=owner),
                render_main_service(name=name, namespace=FLOOR_NAMESPACE, owner=owner,
                                    selector={"modeldeploy.dev/revision": revision}),
                render_hpa(spec, name=name, namespace=FLOOR_NAMESPACE, target_deployment=revision, owner=owner),
                render_pdb(name=name, namespace=FLOOR_NAMESPACE, owner=owner)):
            if child["kind"] == "Deployment":
                child["spec"]["replicas"] = 1
            kube.create(child)
        kube.merge_patch(API_VERSION, KIND, FLOOR_NAMESPACE, name,
                         {"status": {"observedGeneration": 1, "phase": "Progressing"}}, subresource="status")

    return [md]


def run_floor(cluster: LocalCluster, n: int) -> tuple[float, dict[str, float]]:
    """Seconds to write everything, and the CPU each process used meanwhile."""
    cluster.create_namespace(FLOOR_NAMESPACE)
    kube = cluster.control_plane.client()
    try:
        meter = CpuMeter(cluster).start()
        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=WORKERS) as pool:
            list(pool.map(lambda index: [step(kube) for step in floor_objects(index)], range(n)))
        return time.perf_counter() - started, meter.stop()
    finally:
        kube.close()


@contextlib.contextmanager
def bench_cluster() -> Iterator[LocalCluster]:
    with LocalCluster(kubelet_class=InstantKubelet, nodes=bench_nodes(), kubelet_options={"interval": 0.2}) as cluster:
        print(f"Kubernetes {cluster.version} local control plane, up in {cluster.started_seconds:.1f}s; "
              "the operator as its own process (chart RBAC), 16 nodes, pods Ready at once (no processes)",
              flush=True)
        yield cluster


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1000, 3000])
    parser.add_argument("--operator-env", nargs="+", default=[], metavar="NAME=VALUE",
                        help="extra environment of the operator, e.g. MODELDEPLOY_API_QPS=100")
    args = parser.parse_args()
    operator_env = dict(item.split("=", 1) for item in args.operator_env)
    print(f"{'N':>5} {'synced s':>8} {'healthy s':>9} {'p50 s':>6} {'p99 s':>6} {'idle p99':>8} {'writes/obj':>10} "
          f"{'noop req':>8} {'RSS start/peak/end MiB':>23} {'floor s':>7} {'total/floor':>11}  requests by verb")
    for n in args.sizes:
        # Each run on a control plane of its own: no size (nor the floor) inherits another's backlog.
        with bench_cluster() as cluster:
            result = run_operator(cluster, n, operator_env)
        summary = {key: value for key, value in result.items()
                   if key not in ("requests", "by_resource", "noop_detail", "cpu_by_process")}
        print(f"      (N={n}, the operator's part: {summary})", flush=True)
        with bench_cluster() as cluster:
            floor, floor_cpu = run_floor(cluster, n)
        rss = "/".join(f"{value:.0f}" for value in result["rss"])
        verbs = " ".join(f"{verb}={count}" for verb, count in sorted(result["requests"].items()))
        print(f"{n:>5} {result['total']:>8.1f} {result['healthy']:>9.1f} {result['p50']:>6.2f} "
              f"{result['p99']:>6.2f} "
              f"{result['idle_p99']:>8.2f} {result['writes_per_object']:>10.1f} {result['noop_requests']:>8} "
              f"{rss:>23} {floor:>7.1f} {result['total'] / floor:>10.2f}x  {verbs}", flush=True)
        per_object = ", ".join(f"{key} {count / n:.2f}" for key, count in sorted(result["by_resource"].items())
                               if not key.startswith("watch "))
        print(f"      per object: {per_object}; no-op resync requests: {dict(result['noop_detail']) or 0}; "
              f"operator CPU until synced {result['cpu']:.1f}s ({1000 * result['cpu'] / n:.0f} ms/object), "
              f"waiting on its QPS limit {result['throttled']:.1f}s; "
              f"deleting all {n + IDLE_PROBES}: {result['deleted']:.1f}s",
              flush=True)
        print(f"      until synced: {cpu_summary(result['cpu_by_process'], result['total'])}", flush=True)
        print(f"      floor:        {cpu_summary(floor_cpu, floor)}", flush=True)
    print("baseline 'floor': a plain KubeClient (8 threads) creating each ModelDeployment with its 5 children "
          "and a status write, no operator; requests: the operator's ServiceAccount in the apiserver's audit log")


if __name__ == "__main__":
    main()
