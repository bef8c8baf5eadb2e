"""A real Prometheus (Debian's ``prometheus`` binary) for the sandbox and the provider tests.

    with Sandbox() as sb, sandbox_prometheus(sb) as prom, sb.run_operator():
        spec["rollout"]["analysis"]["provider"] = {"type": "prometheus", "address": prom.url}

    with PrometheusServer(static=[StaticTarget("127.0.0.2:8002", {"revision": "r1"})]) as prom:
        prom.query("up")

It listens on 127.0.0.1:<free port> with a temporary TSDB and scrapes every second. Pods come
from a ``file_sd_configs`` file that a background thread keeps in sync with the sandbox
kubelet's *ready* pods (``<address>:8002`` labelled ``namespace``, ``revision``, ``pod``: what
the PodMonitor / relabelling of docs/analysis.md produces in a cluster); static targets are a
plain ``static_configs`` job. ``close()`` stops the process and removes the TSDB.
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import json
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from modeldeploy.render.ports import METRICS_PORT
from modeldeploy_sandbox.kubelet import PodProcesses

INSTALL_HINT = "apt-get install -y --no-install-recommends prometheus"
POD_JOB = "sandbox-pods"


def find_prometheus(path: str | None = None) -> str | None:
    """``path``, else ``$PROMETHEUS``, else ``prometheus`` on PATH, else Debian's /usr/bin/prometheus."""
    for candidate in (path, os.environ.get("PROMETHEUS")):
        if candidate:
            return candidate if Path(candidate).is_file() else shutil.which(candidate)
    found = shutil.which("prometheus")
    if found:
        return found
    return "/usr/bin/prometheus" if Path("/usr/bin/prometheus").is_file() else None


@dataclasses.dataclass(frozen=True)
class StaticTarget:
    address: str  # host:port
    labels: Mapping[str, str] = dataclasses.field(default_factory=dict)


def _free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def pod_targets(pods: Sequence[PodProcesses]) -> list[dict[str, Any]]:
    """file_sd entries for the ready pods, in a stable order (so an unchanged set is not rewritten)."""
    entries = [
        {"targets": [f"{p.address}:{METRICS_PORT}"],
         "labels": {"namespace": p.namespace, "revision": p.revision or "", "pod": p.name}}
        for p in pods if p.ready
    ]
    return sorted(entries, key=lambda e: e["targets"][0])


class PrometheusServer:
    """See the module docstring. ``pods``: a callable returning the pods to scrape (the kubelet's)."""

    def __init__(
        self,
        *,
        static: Sequence[StaticTarget] = (),
        pods: Callable[[], Sequence[PodProcesses]] | None = None,
        binary: str | None = None,
        host: str = "127.0.0.1",
        scrape_interval: str = "1s",
        sync_interval: float = 0.2,
        ready_timeout: float = 30.0,
    ) -> None:
        found = find_prometheus(binary)
        if found is None:
            raise FileNotFoundError(f"no prometheus binary ({INSTALL_HINT})")
        self.binary, self.host, self.scrape_interval = found, host, scrape_interval
        self.static, self.pods = list(static), pods
        self.sync_interval, self.ready_timeout = sync_interval, ready_timeout
        self.workdir = Path(tempfile.mkdtemp(prefix="modeldeploy-prometheus-"))
        self.sd_file = self.workdir / "pods.json"
        self.log_path = self.workdir / "prometheus.log"
        self.url = ""
        self.proc: subprocess.Popen[bytes] | None = None
        self._written: list[dict[str, Any]] | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.sync_errors: list[str] = []

    # ----- lifecycle -----

    def start(self) -> PrometheusServer:
        atexit.register(self.close)  # a caller that forgets close() must not leak the process
        try:
            self._write_targets([])
            self.sync()  # targets known before the first scrape
            (self.workdir / "prometheus.yml").write_text(self.config())
            for _ in range(3):  # the free port can be taken between probing and binding: retry
                if self._launch():
                    break
            else:
                raise RuntimeError(f"prometheus did not start:\n{self.log_tail()}")
            if self.pods is not None:
                self._thread = threading.Thread(target=self._sync_loop, name="prometheus-sd", daemon=True)
                self._thread.start()
        except BaseException:
            self.close()
            raise
        return self

    def _launch(self) -> bool:
        port = _free_port(self.host)
        self.url = f"http://{self.host}:{port}"
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [self.binary, f"--config.file={self.workdir / 'prometheus.yml'}",
                 f"--storage.tsdb.path={self.workdir / 'data'}", f"--web.listen-address={self.host}:{port}",
                 "--storage.tsdb.retention.time=1h", "--log.level=warn"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        deadline = time.monotonic() + self.ready_timeout
        while not self.ready():
            if self.proc.poll() is not None:
                return False  # exited: e.g. "address already in use"; the caller retries
            if time.monotonic() > deadline:
                raise TimeoutError(f"prometheus not ready after {self.ready_timeout}s:\n{self.log_tail()}")
            time.sleep(0.1)
        return True

    def stop(self) -> None:
        """Stop the process (SIGTERM, SIGKILL after 10 s); the TSDB stays until close()."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def close(self) -> None:
        self.stop()
        atexit.unregister(self.close)
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> PrometheusServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # ----- configuration and targets -----

    def config(self) -> str:
        # JSON is YAML: no YAML writer needed, and quoting is right for any label value.
        jobs: list[dict[str, Any]] = []
        if self.pods is not None:
            jobs.append({"job_name": POD_JOB, "scrape_interval": self.scrape_interval,
                         "file_sd_configs": [{"files": [str(self.sd_file)], "refresh_interval": "1s"}]})
        if self.static:
            jobs.append({"job_name": "static", "scrape_interval": self.scrape_interval,
                         "static_configs": [{"targets": [t.address], "labels": dict(t.labels)} for t in self.static]})
        config = {"global": {"scrape_interval": self.scrape_interval, "scrape_timeout": self.scrape_interval,
                             "evaluation_interval": self.scrape_interval},
                  "scrape_configs": jobs}
        return json.dumps(config, indent=2)

    def sync(self) -> None:
        """Write the ready pods to the file_sd file if they changed."""
        if self.pods is None:
            return
        entries = pod_targets(self.pods())
        if entries != self._written:
            self._write_targets(entries)

    def _write_targets(self, entries: list[dict[str, Any]]) -> None:
        # Write-then-rename: Prometheus watches the file and must never read half of it.
        tmp = self.sd_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(entries))
        tmp.replace(self.sd_file)
        self._written = entries

    def _sync_loop(self) -> None:
        while not self._stop.wait(self.sync_interval):
            try:
                self.sync()
            except Exception as error:  # keep syncing; the error is kept for diagnostics
                self.sync_errors = [*self.sync_errors[-9:], f"{type(error).__name__}: {error}"]

    # ----- HTTP API -----

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    def api(self, path: str, **params: str) -> Any:
        """``GET /api/v1/<path>``'s ``data``."""
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        with urllib.request.urlopen(f"{self.url}/api/v1/{path}{query}", timeout=5) as response:
            body = json.loads(response.read())
        if body.get("status") != "success":
            raise RuntimeError(f"prometheus {path}: {body.get('error')}")
        return body["data"]

    def query(self, promql: str) -> list[dict[str, Any]]:
        """An instant query's vector result (``[{"metric": {...}, "value": [t, "v"]}, ...]``)."""
        data = self.api("query", query=promql)
        return list(data["result"]) if data.get("resultType") == "vector" else []

    def healthy_targets(self) -> set[str]:
        """Addresses (host:port) of the targets whose last scrape succeeded."""
        active = self.api("targets", state="active")["activeTargets"]
        return {t["labels"].get("instance", "") for t in active if t.get("health") == "up"}

    def wait_for_targets(self, addresses: Sequence[str], timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while not set(addresses) <= self.healthy_targets():
            if time.monotonic() > deadline:
                raise TimeoutError(f"prometheus never scraped {sorted(addresses)}:\n{self.log_tail()}")
            time.sleep(0.2)

    def log_tail(self, limit: int = 2000) -> str:
        with contextlib.suppress(OSError):
            return self.log_path.read_text(errors="replace")[-limit:]
        return ""


@contextlib.contextmanager
def sandbox_prometheus(sb: Any, **options: Any) -> Iterator[PrometheusServer]:
    """A Prometheus scraping the sandbox's ready pods (``sb``: a :class:`~.cluster.Sandbox`)."""
    with PrometheusServer(pods=sb.kubelet.pods, **options) as server:
        yield server
