"""Reconcile benchmark: N ModelDeployments created at once on the real local control plane.

The operator runs as its own process with the chart's ServiceAccount (as in the tests); the real
kube-controller-manager makes ReplicaSets and pods, the real kube-scheduler binds them. The sandbox
kubelet is replaced by an instant one (:class:`InstantKubelet`): a bound pod is Running and Ready at once,
with no process, since N modelserver processes would not fit on the machine. So the numbers are the
operator's and the control plane's, not a model server's start-up.

Prints per-object create -> Ready latency (p50/p99), total time, operator API writes per object and
writes on a no-op resync (both counted in the apiserver's audit log, which records the operator's
ServiceAccount), and the operator's RSS; and beside them the named baseline "floor": the same number
of raw API requests as the operator made, issued by a plain KubeClient (6 threads) without the operator.

    python bench/reconcile.py            # N = 50 and 200
    python bench/reconcile.py --sizes 20
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from modeldeploy.kubeapi import KubeClient, NotFound
from modeldeploy_sandbox.cluster import LocalCluster
from modeldeploy_sandbox.container_runner import rfc3339
from modeldeploy_sandbox.controlplane import rss_bytes
from modeldeploy_sandbox.kubelet import Kubelet

NAMESPACE = "bench"
FLOOR_NAMESPACE = "bench-floor"
API_VERSION, KIND = "serving.modeldeploy.dev/v1alpha1", "ModelDeployment"
WRITE_VERBS = {"create", "update", "patch", "delete", "deletecollection"}
RESYNC_SECONDS = 2.0


class InstantKubelet(Kubelet):
    """The sandbox kubelet's node registration and Leases, but pods without processes: Ready at once."""

    def sync(self) -> None:
        self._heartbeat()
        now = rfc3339(time.time())
        for pod in self.kube.list("v1", "Pod"):
            meta, spec = pod["metadata"], pod.get("spec") or {}
            node = spec.get("nodeName")
            if node not in self.nodes:
                continue
            if meta.get("deletionTimestamp"):
                self._complete_deletion(meta["namespace"], meta["name"])
            elif not (pod.get("status") or {}).get("podIP"):
                pod_ip = self._pools[node].allocate()
                if pod_ip is not None:
                    status = ready_status(spec, pod_ip, self.nodes[node].internal_ip, now)
                    try:
                        self.kube.merge_patch("v1", "Pod", meta["namespace"], meta["name"], {"status": status},
                                              subresource="status")
                    except NotFound:
                        self._pools[node].release(pod_ip)


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


def is_ready(obj: Mapping[str, Any]) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True" for c in (obj.get("status") or {}).get("conditions", []))


def delete_model_deployments(kube: KubeClient, namespace: str, timeout: float = 300.0) -> None:
    """Delete them while the operator runs, and wait until it has removed its finalizers.

    Not by deleting the namespace: in namespaced mode the operator's Role lives in that namespace and the
    namespace controller may delete it first; then the operator may no longer remove its finalizer (403)
    and the namespace stays Terminating for good.
    """
    for item in kube.list(API_VERSION, KIND, namespace):
        kube.delete(API_VERSION, KIND, namespace, item["metadata"]["name"])
    deadline = time.monotonic() + timeout
    while kube.list(API_VERSION, KIND, namespace):
        if time.monotonic() > deadline:
            raise TimeoutError(f"ModelDeployments of {namespace} still there after {timeout}s")
        time.sleep(0.2)


def operator_requests(cluster: LocalCluster, since: int) -> tuple[int, int]:
    """(all requests, writes) of the operator's ServiceAccount in the audit log after its first ``since`` events."""
    events = [e for e in cluster.control_plane.audit_events()[since:] if e.get("stage") == "ResponseComplete"]
    return len(events), sum(1 for e in events if e.get("verb") in WRITE_VERBS)


def run_operator(cluster: LocalCluster, n: int) -> dict[str, float]:
    kube = cluster.admin
    cluster.create_namespace(NAMESPACE)
    with cluster.operator([NAMESPACE], env={"MODELDEPLOY_RESYNC_SECONDS": str(RESYNC_SECONDS)}) as operator:
        try:
            rss_before = rss_bytes(operator.pid or 0)
            audit_start = len(cluster.control_plane.audit_events())
            created: dict[str, float] = {}
            started = time.perf_counter()
            for index in range(n):
                obj = model_deployment(index, NAMESPACE)
                created[obj["metadata"]["name"]] = time.perf_counter()
                kube.create(obj)
            ready_at: dict[str, float] = {}
            deadline = started + 600
            while len(ready_at) < n and time.perf_counter() < deadline:
                for item in kube.list(API_VERSION, KIND, NAMESPACE):
                    name = item["metadata"]["name"]
                    if name not in ready_at and is_ready(item):
                        ready_at[name] = time.perf_counter()
                time.sleep(0.05)
            total = time.perf_counter() - started
            time.sleep(1.0)  # the last transitions' writes land in the audit log
            requests, writes = operator_requests(cluster, audit_start)
            quiet_start = len(cluster.control_plane.audit_events())
            time.sleep(2 * RESYNC_SECONDS + 0.5)  # two resync periods with nothing changed
            _, noop_writes = operator_requests(cluster, quiet_start)
            rss_after = rss_bytes(operator.pid or 0)
        finally:
            delete_model_deployments(kube, NAMESPACE)
    cluster.delete_namespace(NAMESPACE, timeout=300)
    latencies = sorted(ready_at[name] - created[name] for name in ready_at) or [float("nan")]
    return {
        "n": n, "ready": len(ready_at),
        "p50": statistics.median(latencies), "p99": latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))],
        "total": total, "writes_per_object": writes / n, "noop_writes": noop_writes, "requests": requests,
        "rss_mib": rss_after / 2**20, "rss_growth_mib": (rss_after - rss_before) / 2**20,
    }


def run_floor(cluster: LocalCluster, n: int, requests: int) -> float:
    """The same number of raw API requests (creates + reads), no operator: what the apiserver itself costs."""
    cluster.create_namespace(FLOOR_NAMESPACE)
    kube = cluster.control_plane.client()
    per_object = max(1, requests // n)
    try:
        started = time.perf_counter()

        def one(index: int) -> None:
            obj = model_deployment(index, FLOOR_NAMESPACE)
            kube.create(obj)
            for _ in range(per_object - 1):
                kube.get(API_VERSION, KIND, FLOOR_NAMESPACE, obj["metadata"]["name"])

        with ThreadPoolExecutor(max_workers=6) as pool:  # asyncio.to_thread's default on 2 cores
            list(pool.map(one, range(n)))
        return time.perf_counter() - started
    finally:
        kube.close()
        cluster.delete_namespace(FLOOR_NAMESPACE, timeout=300)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[50, 200])
    args = parser.parse_args()
    with LocalCluster(kubelet_class=InstantKubelet) as cluster:
        print(f"Kubernetes {cluster.version} local control plane, up in {cluster.started_seconds:.1f}s; "
              "the operator as its own process (chart RBAC), pods Ready at once (no processes)")
        print(f"{'N':>5} {'ready':>6} {'p50 s':>7} {'p99 s':>7} {'total s':>8} {'writes/obj':>10} "
              f"{'noop writes':>11} {'RSS MiB':>8} {'requests':>9} {'floor s':>8} {'total/floor':>11}")
        for n in args.sizes:
            result = run_operator(cluster, n)
            floor = run_floor(cluster, n, int(result["requests"]))
            print(f"{n:>5} {int(result['ready']):>6} {result['p50']:>7.2f} {result['p99']:>7.2f} "
                  f"{result['total']:>8.2f} {result['writes_per_object']:>10.1f} {int(result['noop_writes']):>11} "
                  f"{result['rss_mib']:>8.1f} {int(result['requests']):>9} {floor:>8.2f} "
                  f"{result['total'] / floor:>10.1f}x")
    print("baseline 'floor': the operator's request count issued raw by a KubeClient (6 threads), no operator; "
          "requests and writes: the operator's ServiceAccount in the apiserver's audit log")


if __name__ == "__main__":
    main()
