"""Reconcile benchmark: N ModelDeployments created at once on the emulated API.

Prints per-object create -> Ready latency (p50/p99), total time, operator API writes per object,
writes on a no-op resync, and operator RSS; and beside them the kmock floor — the same number of
raw API requests, issued by a plain client without the operator, as the named baseline.

    python bench/reconcile.py            # N = 50 and 200
    python bench/reconcile.py --sizes 20
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from modeldeploy.kubeapi import KubeClient
from modeldeploy.sandbox.emulator_server import EmulatorHandle, running_emulator
from modeldeploy.sandbox.modeldeploy_operator import running_modeldeploy

NAMESPACE = "bench"
MD = "serving.modeldeploy.dev/v1alpha1/modeldeployments"
DEPLOYMENTS = "apps/v1/deployments"


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def model_deployment(index: int) -> dict:  # type: ignore[type-arg]
    return {
        "apiVersion": "serving.modeldeploy.dev/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": f"model-{index:04d}", "namespace": NAMESPACE},
        "spec": {
            "model": {"uri": f"https://models.example/m{index}/model.onnx", "digest": "sha256:" + "ab" * 32},
            "rollout": {"strategy": "immediate"},
        },
    }


class InstantController(threading.Thread):
    """Stands in for the deployment controller + kubelet: every Deployment is ready at once."""

    def __init__(self, emulator: EmulatorHandle) -> None:
        super().__init__(daemon=True)
        self.emulator, self.stop_flag = emulator, threading.Event()

    def run(self) -> None:
        while not self.stop_flag.wait(0.05):
            for item in self.emulator.list(DEPLOYMENTS, NAMESPACE):
                replicas = item["spec"].get("replicas", 1)
                if (item.get("status") or {}).get("readyReplicas") != replicas:
                    status = {"replicas": replicas, "readyReplicas": replicas, "availableReplicas": replicas}
                    self.emulator.patch(
                        DEPLOYMENTS, NAMESPACE, item["metadata"]["name"], {"status": status}, subresource="status"
                    )


def is_ready(obj: dict) -> bool:  # type: ignore[type-arg]
    return any(c["type"] == "Ready" and c["status"] == "True" for c in (obj.get("status") or {}).get("conditions", []))


def run_operator(n: int) -> dict[str, float]:
    with running_emulator() as emulator:
        rss_before = rss_mib()
        with running_modeldeploy(emulator.url, resync_seconds=2.0):
            controller = InstantController(emulator)
            controller.start()
            emulator.reset_counts()
            created: dict[str, float] = {}
            started = time.perf_counter()
            for index in range(n):
                obj = model_deployment(index)
                created[obj["metadata"]["name"]] = time.perf_counter()
                emulator.create(obj)
            ready_at: dict[str, float] = {}
            deadline = started + 600
            while len(ready_at) < n and time.perf_counter() < deadline:
                for item in emulator.list(MD, NAMESPACE):
                    name = item["metadata"]["name"]
                    if name not in ready_at and is_ready(item):
                        ready_at[name] = time.perf_counter()
                time.sleep(0.02)
            total = time.perf_counter() - started
            time.sleep(1.0)  # the last transitions' writes land
            # The emulator does not count its own handle's requests (this script, the stand-in controller).
            operator_writes = emulator.writes()
            requests = sum(emulator.counts().values())
            emulator.reset_counts()
            time.sleep(4.5)  # two resync periods with nothing changed
            noop_writes = emulator.writes()
            controller.stop_flag.set()
            rss_after = rss_mib()
        latencies = sorted(ready_at[name] - created[name] for name in ready_at)
    return {
        "n": n,
        "ready": len(ready_at),
        "p50": statistics.median(latencies),
        "p99": latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))],
        "total": total,
        "writes_per_object": operator_writes / n,
        "noop_writes": noop_writes,
        "requests": max(requests, 0),
        "rss_mib": rss_after - rss_before,
    }


def run_floor(n: int, requests: int) -> float:
    """The same number of raw API requests (creates + reads), no operator: what kmock itself costs."""
    with running_emulator() as emulator:
        kube = KubeClient(emulator.url)
        per_object = max(1, requests // n)
        started = time.perf_counter()

        def one(index: int) -> None:
            obj = model_deployment(index)
            kube.create(obj)
            for _ in range(per_object - 1):
                kube.get(obj["apiVersion"], obj["kind"], NAMESPACE, obj["metadata"]["name"])

        with ThreadPoolExecutor(max_workers=6) as pool:  # asyncio.to_thread's default on 2 cores
            list(pool.map(one, range(n)))
        elapsed = time.perf_counter() - started
        kube.close()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[50, 200])
    args = parser.parse_args()
    print(
        f"{'N':>5} {'ready':>6} {'p50 s':>7} {'p99 s':>7} {'total s':>8} {'writes/obj':>10} "
        f"{'noop writes':>11} {'RSS MiB':>8} {'requests':>9} {'floor s':>8} {'total/floor':>11}"
    )
    for n in args.sizes:
        result = run_operator(n)
        floor = run_floor(n, int(result["requests"]))
        print(
            f"{n:>5} {int(result['ready']):>6} {result['p50']:>7.2f} {result['p99']:>7.2f} {result['total']:>8.2f} "
            f"{result['writes_per_object']:>10.1f} {int(result['noop_writes']):>11} {result['rss_mib']:>8.1f} "
            f"{int(result['requests']):>9} {floor:>8.2f} {result['total'] / floor:>10.1f}x"
        )
    print("baseline 'floor': the operator's request count issued raw by a KubeClient (6 threads), no operator")


if __name__ == "__main__":
    main()
