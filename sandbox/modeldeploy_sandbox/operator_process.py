"""The operator as its own process, started the way the chart's Deployment starts it.

    with OperatorProcess(kubeconfig, chart_values={"watchNamespaces": ["ml"]}, proxy=network.url) as op:
        op.metrics()      # its /metrics text
        op.log_tail()     # its log

The command is the operator image's entrypoint (``kopf run -m modeldeploy.handlers``) with the
arguments and environment the chart renders for ``chart_values`` (and ``shard=NAME``: that shard's
Deployment, when the values have ``shards``); only the cluster-specific parts
change: ``--standalone`` instead of peering (one replica; ``peering="modeldeploy", priority=N`` runs
a replica that meets its peers in that KopfPeering, as the image's entrypoint does), loopback ports
for metrics and liveness, ``KUBECONFIG`` for the ServiceAccount token the chart's RBAC grants, and
``http_proxy`` into the sandbox's pod network (the operator scrapes pods by their IPs).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

from modeldeploy_sandbox import chart
from modeldeploy_sandbox.controlplane import free_port

READY_TIMEOUT_S = 30.0
# Chart arguments that only make sense in a pod: peering and the pod-address liveness endpoint.
_POD_ONLY_ARGS = ("--peering", "--priority", "--liveness")


class OperatorCrashed(RuntimeError):
    pass


class OperatorProcess:
    def __init__(
        self,
        kubeconfig: Path,
        *,
        chart_values: Mapping[str, Any] | None = None,
        proxy: str | None = None,
        env: Mapping[str, str] | None = None,
        log_path: Path | None = None,
        peering: str | None = None,
        priority: int = 0,
        shard: str | None = None,
    ) -> None:
        self.kubeconfig, self.proxy = kubeconfig, proxy
        self.shard = shard  # with the chart's `shards`: which shard's Deployment to run
        self.peering, self.priority = peering, priority
        self.chart_values = dict(chart_values or {})
        self.extra_env = dict(env or {})
        self.log_path = log_path or Path(tempfile.mkstemp(prefix="modeldeploy-operator-", suffix=".log")[1])
        self.metrics_port = free_port()
        self.liveness_port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    def command(self) -> tuple[list[str], dict[str, str]]:
        container = chart.operator_container(self.chart_values, self.shard)
        args = [str(a) for a in container.get("args") or [] if not str(a).startswith(_POD_ONLY_ARGS)]
        scope = (["--standalone"] if self.peering is None
                 else [f"--peering={self.peering}", f"--priority={self.priority}"])
        argv = [sys.executable, "-m", "kopf", "run", "-m", "modeldeploy.handlers", *scope,
                f"--liveness=http://127.0.0.1:{self.liveness_port}/healthz", *args]
        env = {str(e["name"]): str(e["value"]) for e in container.get("env") or [] if "value" in e}
        env.pop("KOPF_PEERING", None)
        env.update({
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/tmp"),
            "LANG": "C.UTF-8", "PYTHONUNBUFFERED": "1",
            "KUBECONFIG": str(self.kubeconfig),
            "MODELDEPLOY_METRICS_PORT": str(self.metrics_port),
        })
        if self.proxy:
            env.update({"http_proxy": self.proxy, "HTTP_PROXY": self.proxy,
                        "no_proxy": "127.0.0.1,localhost", "NO_PROXY": "127.0.0.1,localhost"})
        env.update(self.extra_env)
        return argv, env

    def start(self) -> OperatorProcess:
        argv, env = self.command()
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                            env=env, start_new_session=True)
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not self._live():
            if self.process.poll() is not None:
                raise OperatorCrashed(f"the operator exited with code {self.process.returncode}:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                self.stop()
                raise OperatorCrashed(f"the operator was not live within {READY_TIMEOUT_S:.0f}s:\n{self.log_tail()}")
            time.sleep(0.1)
        return self

    def _live(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.liveness_port}/healthz", timeout=1) as answer:
                return bool(answer.status == 200)
        except OSError:
            return False

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM (kopf stops its daemons and exits), SIGKILL after ``timeout``; the exit code."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(5)
        return self.process.returncode

    def kill(self) -> None:
        """SIGKILL, as a node failure or an OOM kill would end it: no cleanup at all."""
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(5)

    def __enter__(self) -> OperatorProcess:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def metrics(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as answer:
            return str(answer.read().decode())

    def log_tail(self, lines: int = 40) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""
