"""Start time and memory of the local control plane, against the floor of any control plane.

Baseline ("floor"): etcd + kube-apiserver alone, from nothing to /readyz, measured in the same run
with the same binaries. Measured: the whole control plane (+ kube-controller-manager and
kube-scheduler healthy, the ServiceAccount controller working), and the whole LocalCluster the tests
and the demo use (+ our CRD, the Gateway API CRDs, RuntimeClass nvidia, four Nodes Ready with their
podCIDRs). Goal: the control plane up in <= 10 s once the binaries are cached.

    .venv/bin/python bench/controlplane.py [--runs 3]
"""

from __future__ import annotations

import argparse
import statistics
import time

from modeldeploy_sandbox.binaries import ensure_binaries
from modeldeploy_sandbox.cluster import LocalCluster
from modeldeploy_sandbox.controlplane import ControlPlane

MIB = 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    binaries = ensure_binaries()
    floor, plane, whole, stop = [], [], [], []
    rss: dict[str, int] = {}
    for _ in range(args.runs):
        with ControlPlane(binaries, controllers=False) as bare:
            floor.append(bare.started_seconds)
        with ControlPlane(binaries) as full:
            plane.append(full.started_seconds)
            rss = full.rss()
        cluster = LocalCluster(binaries).start()
        whole.append(cluster.started_seconds)
        started = time.monotonic()
        cluster.stop()
        stop.append(time.monotonic() - started)
    median = statistics.median
    base = median(floor)

    def line(what: str, seconds: float) -> str:
        return f"  {what:<42} {seconds:6.2f} s = {seconds / base:.2f}x floor"

    print(f"Kubernetes {binaries.version}, median of {args.runs} runs")
    print(f"  {'floor: etcd + kube-apiserver ready':<42} {base:6.2f} s")
    goal = "met" if median(plane) <= 10 else "missed"
    print(line("control plane (4 components) ready", median(plane)) + f"  (goal <= 10 s: {goal})")
    print(line("LocalCluster (CRDs, RuntimeClass, nodes)", median(whole)))
    print(f"  {'LocalCluster stop (everything gone)':<42} {median(stop):6.2f} s")
    memory = ", ".join(f"{name} {value / MIB:.0f} MiB" for name, value in rss.items())
    print(f"  resident memory after start: {memory}; total {sum(rss.values()) / MIB:.0f} MiB")

if __name__ == "__main__":
    main()
