"""A real Prometheus (Debian's ``prometheus`` binary) for the sandbox and the provider tests.

    with Sandbox(cluster) as sb, sandbox_prometheus(sb) as prom, sb.run_operator():
        spec["rollout"]["analysis"]["provider"] = {"type": "prometheus", "address": prom.url}

    with PrometheusServer(static=[StaticTarget("127.0.0.2:8002", {"revision": "r1"})]) as prom:
        prom.query("up")

It listens on 127.0.0.1:<free port> with a temporary TSDB and scrapes every second. Pods are found
as in a cluster, from the real kube-apiserver: ``kubernetes_sd_configs`` (role ``pod``, with a
kubeconfig) and the relabelling of docs/analysis.md (keep modeldeploy's pods' ``metrics`` port; copy
``namespace``, ``pod`` and the ``modeldeploy.dev/revision`` label into ``revision``). Debian's package
is built without the Kubernetes service discovery (its config parser does not know
``kubernetes_sd_configs``), so with that binary the same targets and labels come from a
``file_sd_configs`` file that a thread here writes from the apiserver's pod list (:func:`pod_targets`,
what that discovery and relabelling produce). Either way the targets are pod IPs, reached through the
sandbox's pod network proxy (``proxy_url``) as over a cluster network. Static targets are a plain
``static_configs`` job. ``close()`` stops the process and removes the TSDB.
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import functools
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
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from modeldeploy.kubeapi import KubeClient
from modeldeploy.render.labels import MANAGED_BY, MANAGED_BY_LABEL, REVISION_LABEL

if TYPE_CHECKING:
    from modeldeploy_sandbox.sandbox import Sandbox

INSTALL_HINT = "apt-get install -y --no-install-recommends prometheus"
POD_JOB = "modeldeploy-models"


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


@dataclasses.dataclass(frozen=True)
class PodDiscovery:
    """Where Prometheus finds pods (a kubeconfig for the apiserver) and how it reaches them (a proxy)."""

    kubeconfig: Path
    proxy_url: str | None = None
    namespaces: tuple[str, ...] = ()  # none: every namespace


def _free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@functools.cache
def supports_kubernetes_sd(binary: str) -> bool:
    """Whether this Prometheus build has the Kubernetes service discovery (Debian's has not).

    Asked of ``promtool`` from the same installation; without one, assumed (upstream builds have it).
    """
    promtool = Path(binary).with_name("promtool")
    if not promtool.is_file():
        return True
    with tempfile.NamedTemporaryFile("w", suffix=".yml") as config:
        probe = {"job_name": "probe", "kubernetes_sd_configs": [{"role": "pod"}]}
        config.write(json.dumps({"scrape_configs": [probe]}))
        config.flush()
        result = subprocess.run([str(promtool), "check", "config", config.name], capture_output=True, text=True,
                                timeout=30, check=False)
    return "kubernetes_sd_configs not found" not in result.stdout + result.stderr


def pod_targets(pods: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """file_sd entries for ``pods`` (API objects): what ``kubernetes_sd_configs`` role pod and the relabelling
    of :func:`pod_job` keep of them. Sorted, so that an unchanged set is not rewritten."""
    entries = []
    for pod in pods:
        meta, status = pod["metadata"], pod.get("status") or {}
        labels = meta.get("labels") or {}
        if labels.get(MANAGED_BY_LABEL) != MANAGED_BY or not status.get("podIP"):
            continue
        for container in (pod.get("spec") or {}).get("containers") or []:
            for port in container.get("ports") or []:
                if port.get("name") == "metrics":
                    entries.append({"targets": [f"{status['podIP']}:{port['containerPort']}"],
                                    "labels": {"namespace": meta["namespace"], "pod": meta["name"],
                                               "revision": labels.get(REVISION_LABEL, "")}})
    return sorted(entries, key=lambda e: e["targets"][0])


def pod_job(discovery: PodDiscovery, scrape_interval: str) -> dict[str, Any]:
    """The scrape job of docs/analysis.md ("With a plain scrape configuration"), for ``discovery``."""
    sd: dict[str, Any] = {"role": "pod", "kubeconfig_file": str(discovery.kubeconfig)}
    if discovery.namespaces:
        sd["namespaces"] = {"names": list(discovery.namespaces)}
    job: dict[str, Any] = {
        "job_name": POD_JOB, "scrape_interval": scrape_interval, "kubernetes_sd_configs": [sd],
        "relabel_configs": [
            {"source_labels": ["__meta_kubernetes_pod_label_app_kubernetes_io_managed_by"], "regex": "modeldeploy",
             "action": "keep"},
            {"source_labels": ["__meta_kubernetes_pod_container_port_name"], "regex": "metrics", "action": "keep"},
            {"source_labels": ["__meta_kubernetes_namespace"], "target_label": "namespace"},
            {"source_labels": ["__meta_kubernetes_pod_name"], "target_label": "pod"},
            {"source_labels": ["__meta_kubernetes_pod_label_modeldeploy_dev_revision"], "target_label": "revision"},
        ],
    }
    if discovery.proxy_url:
        job["proxy_url"] = discovery.proxy_url
    return job


def file_sd_job(discovery: PodDiscovery, scrape_interval: str, sd_file: Path) -> dict[str, Any]:
    """:func:`pod_job` for a build without the Kubernetes discovery: the targets come from ``sd_file``."""
    job: dict[str, Any] = {"job_name": POD_JOB, "scrape_interval": scrape_interval,
                           "file_sd_configs": [{"files": [str(sd_file)], "refresh_interval": "1s"}]}
    if discovery.proxy_url:
        job["proxy_url"] = discovery.proxy_url
    return job


class PrometheusServer:
    """See the module docstring. ``pods``: discover and scrape the pods of a cluster (see :class:`PodDiscovery`)."""

    def __init__(
        self,
        *,
        static: Sequence[StaticTarget] = (),
        pods: PodDiscovery | None = None,
        binary: str | None = None,
        host: str = "127.0.0.1",
        scrape_interval: str = "1s",
        ready_timeout: float = 30.0,
        sync_interval: float = 0.25,
    ) -> None:
        found = find_prometheus(binary)
        if found is None:
            raise FileNotFoundError(f"no prometheus binary ({INSTALL_HINT})")
        self.binary, self.host, self.scrape_interval = found, host, scrape_interval
        self.static, self.pods = list(static), pods
        self.ready_timeout, self.sync_interval = ready_timeout, sync_interval
        self.workdir = Path(tempfile.mkdtemp(prefix="modeldeploy-prometheus-"))
        self.log_path = self.workdir / "prometheus.log"
        self.sd_file = self.workdir / "pods.json"
        self.url = ""
        self.proc: subprocess.Popen[bytes] | None = None
        # How pods are discovered: "kubernetes_sd" by Prometheus itself, or "file_sd" written here.
        self.discovery = "" if pods is None else ("kubernetes_sd" if supports_kubernetes_sd(found) else "file_sd")
        self.sync_errors: list[str] = []
        self._written: list[dict[str, Any]] | None = None
        self._kube: KubeClient | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ----- lifecycle -----

    def start(self) -> PrometheusServer:
        atexit.register(self.close)  # a caller that forgets close() must not leak the process
        try:
            if self.discovery == "file_sd":
                assert self.pods is not None
                self._kube = KubeClient.from_kubeconfig(self.pods.kubeconfig, timeout=10.0)
                self.sync()  # targets known before the first scrape
                self._thread = threading.Thread(target=self._sync_loop, name="prometheus-sd", daemon=True)
                self._thread.start()
            (self.workdir / "prometheus.yml").write_text(self.config())
            for _ in range(3):  # the free port can be taken between probing and binding: retry
                if self._launch():
                    break
            else:
                raise RuntimeError(f"prometheus did not start:\n{self.log_tail()}")
        except BaseException:
            self.close()
            raise
        return self

    def _launch(self, port: int | None = None) -> bool:
        port = port or _free_port(self.host)
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
        if self._kube is not None:
            self._kube.close()
            self._kube = None
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def outage(self) -> None:
        """Kill the server process only (an outage: the TSDB, the port and the pod discovery stay);
        :meth:`recover` brings it back at the same URL."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def recover(self) -> None:
        port = int(self.url.rsplit(":", 1)[1])
        if not self._launch(port):
            raise RuntimeError(f"prometheus did not start again on port {port}:\n{self.log_tail()}")

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

    # ----- configuration -----

    def config(self) -> str:
        # JSON is YAML: no YAML writer needed, and quoting is right for any label value.
        jobs: list[dict[str, Any]] = []
        if self.pods is not None:
            jobs.append(pod_job(self.pods, self.scrape_interval) if self.discovery == "kubernetes_sd"
                        else file_sd_job(self.pods, self.scrape_interval, self.sd_file))
        if self.static:
            jobs.append({"job_name": "static", "scrape_interval": self.scrape_interval,
                         "static_configs": [{"targets": [t.address], "labels": dict(t.labels)} for t in self.static]})
        config = {"global": {"scrape_interval": self.scrape_interval, "scrape_timeout": self.scrape_interval,
                             "evaluation_interval": self.scrape_interval},
                  "scrape_configs": jobs}
        return json.dumps(config, indent=2)

    def sync(self) -> None:
        """file_sd mode: write the pods the apiserver lists (as :func:`pod_targets`) if they changed."""
        if self._kube is None or self.pods is None:
            return
        selector = {MANAGED_BY_LABEL: MANAGED_BY}
        pods = ([p for ns in self.pods.namespaces for p in self._kube.list("v1", "Pod", ns, selector)]
                if self.pods.namespaces else self._kube.list("v1", "Pod", None, selector))
        entries = pod_targets(pods)
        if entries != self._written:
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
def sandbox_prometheus(sb: Sandbox, **options: Any) -> Iterator[PrometheusServer]:
    """A Prometheus scraping the pods of a :class:`~.sandbox.Sandbox`'s namespace, found through the apiserver
    with the admin kubeconfig and reached through the cluster's pod network proxy."""
    discovery = PodDiscovery(sb.cluster.control_plane.kubeconfig, sb.cluster.network.url, (sb.namespace,))
    with PrometheusServer(pods=discovery, **options) as server:
        yield server
