"""``modeldeploy sandbox up``: the local cluster in the foreground, for a person with kubectl.

It starts a :class:`~.cluster.LocalCluster` (etcd, kube-apiserver, kube-controller-manager, kube-scheduler,
our CRD, the Gateway API CRDs, RuntimeClass ``nvidia``, the sandbox kubelet with its CPU and GPU Nodes),
optionally the operator cluster-wide (``--operator``, as the chart's ServiceAccount), writes the admin
kubeconfig to a known path, prints what it started and how to use it, and waits. Ctrl-C or SIGTERM
stops everything it started (every process, its directories, the kubeconfig it wrote): nothing is left.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType
from typing import TextIO

from modeldeploy_sandbox.binaries import SUPPORTED, ensure_binaries, selected_version
from modeldeploy_sandbox.cluster import LocalCluster
from modeldeploy_sandbox.describe import describe_cluster

DEFAULT_KUBECONFIG = Path("~/.kube/modeldeploy-sandbox.kubeconfig")
READY_LINE = "sandbox is up"  # printed once everything runs; tests and scripts wait for it
WATCH_INTERVAL_S = 1.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``modeldeploy sandbox up ...`` (``parser`` is the ``sandbox`` command's parser)."""
    commands = parser.add_subparsers(dest="sandbox_command", required=True)
    up = commands.add_parser("up", help="start the local cluster and wait (Ctrl-C / SIGTERM stops everything)")
    up.add_argument("--operator", action="store_true", help="also run the operator, cluster-wide")
    up.add_argument("--kubeconfig", type=Path, default=DEFAULT_KUBECONFIG,
                    help=f"where to write the admin kubeconfig (default: {DEFAULT_KUBECONFIG})")
    up.add_argument("--kube-version", choices=SUPPORTED, default=None,
                    help=f"Kubernetes release to run (default: {selected_version()})")
    up.set_defaults(handler=lambda args: sandbox_up(args.kubeconfig.expanduser(), operator=args.operator,
                                                    version=args.kube_version))


@contextlib.contextmanager
def _stop_on_sigterm() -> Iterator[None]:
    """SIGTERM unwinds like Ctrl-C (KeyboardInterrupt), so every ``with`` below cleans up."""
    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _write_kubeconfig(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # it holds the admin's key
    with os.fdopen(descriptor, "w") as handle:
        handle.write(text)


def _remove_if_ours(path: Path, text: str) -> None:
    """The kubeconfig names a server that no longer exists: remove it, unless someone replaced it."""
    with contextlib.suppress(OSError):
        if path.read_text() == text:
            path.unlink()


def _usage(cluster: LocalCluster, kubeconfig: Path) -> list[str]:
    kubectl = cluster.control_plane.binaries.path("kubectl")
    return [
        f"admin kubeconfig: {kubeconfig}",
        f"kubectl (built with the control plane): {kubectl}",
        "use it:",
        f"  {kubectl} --kubeconfig {kubeconfig} get nodes",
        f"  export KUBECONFIG={kubeconfig}; kubectl apply -f samples/ ; kubectl get mdep -A",
        "pods run as real modelserver processes on 127.244.N.K (the loopback twins of their pod IPs)",
        f"logs and certificates: {cluster.directory}",
    ]


def sandbox_up(kubeconfig: Path, *, operator: bool = False, version: str | None = None,
               out: TextIO | None = None) -> int:
    """Run until Ctrl-C / SIGTERM (0), or until a component dies (1)."""
    out = out or sys.stdout
    t0 = time.monotonic()

    def say(text: str) -> None:
        print(text, file=out, flush=True)

    say("modeldeploy sandbox up: starting etcd, kube-apiserver, kube-controller-manager, kube-scheduler and the "
        "sandbox kubelet on 127.0.0.1")
    code = 0
    written = ""
    try:
        with _stop_on_sigterm(), LocalCluster(ensure_binaries(version)) as cluster:
            written = cluster.control_plane.kubeconfig.read_text()
            _write_kubeconfig(kubeconfig, written)
            for line in describe_cluster(cluster):
                say(line)
            with contextlib.ExitStack() as stack:
                if operator:
                    process = stack.enter_context(cluster.operator(None))
                    say(f"operator: cluster-wide, as the chart's ServiceAccount (pid {process.pid}); "
                        f"log {process.log_path}")
                for line in _usage(cluster, kubeconfig):
                    say(line)
                say(f"{READY_LINE} after {time.monotonic() - t0:.1f}s; Ctrl-C or SIGTERM stops everything it started")
                code = _watch(cluster, say)
    except KeyboardInterrupt:
        say("stopping: every process the sandbox started")
    finally:
        if written:
            _remove_if_ours(kubeconfig, written)
    say(f"stopped: nothing of the sandbox is left running ({time.monotonic() - t0:.1f}s in all)")
    return code


def _watch(cluster: LocalCluster, say: Callable[[str], None]) -> int:
    """Sleep until interrupted; 1 if a control-plane component exits on its own meanwhile."""
    while True:
        time.sleep(WATCH_INTERVAL_S)
        dead = [c for c in cluster.control_plane.components.values() if not c.alive()]
        if dead:
            for component in dead:
                say(f"{component.name} exited with code {component.process.returncode}:\n{component.log_tail()}")
            return 1
