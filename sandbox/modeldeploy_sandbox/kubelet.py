"""The sandbox kubelet: the kubelet of the sandbox's fake Nodes, against a real kube-apiserver.

    with Kubelet(admin_client, default_nodes()) as kubelet:
        ...   # pods the real kube-scheduler binds to these nodes run as real processes
        kubelet.pods()   # [PodProcesses(namespace, name, pod_ip, address, pids, ready, revision), ...]

What it does, as a kubelet does:

- registers its Nodes (labels, taints, capacity; status Ready) and renews their Leases in
  ``kube-node-lease``, so the node lifecycle controller keeps them Ready;
- runs every pod bound to one of its nodes: the init containers (``modelserver fetch``) one after the
  other, then the containers (``modelserver serve``) as real processes listening on the loopback twin
  of the pod's IP (:mod:`.network`); the pod IP comes from the node's ``spec.podCIDR``;
- writes pod status: phase, conditions, Ready from the readiness probe, restarts with back-off and
  CrashLoopBackOff, exit codes and messages, OOMKilled past the memory limit;
- finishes pod deletion: SIGTERM, SIGKILL after the grace period, then the final delete (grace 0).

The real controllers do the rest: the ReplicaSet controller makes pods, the scheduler binds them,
the EndpointSlice controller publishes the ready ones. It polls the API every ``interval`` seconds
and writes a pod's status only when it changed. ``close()`` stops every process.
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import dataclasses
import datetime
import logging
import shutil
import sys
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from modeldeploy.kubeapi import KubeApiError, KubeClient, NotFound
from modeldeploy_sandbox.addresses import PodAddressPool
from modeldeploy_sandbox.container_runner import Backoff, rfc3339
from modeldeploy_sandbox.nodes import SandboxNode, default_nodes
from modeldeploy_sandbox.pod_runner import PROBE_PERIOD_S, PodRunner
from modeldeploy_sandbox.process import tail

log = logging.getLogger("modeldeploy_sandbox.kubelet")

LEASE_RENEW_S = 10.0  # the kubelet renews every 10 s; the lease lasts 40 s
NODE_STATUS_S = 60.0
MAX_ERRORS_KEPT = 50
REGISTER_TIMEOUT_S = 30.0


@dataclasses.dataclass(frozen=True)
class PodProcesses:
    """A running sandbox pod as the kubelet sees it."""

    namespace: str
    name: str
    uid: str
    node: str
    pod_ip: str
    address: str  # where its processes listen: the loopback twin of pod_ip
    pids: tuple[int, ...]
    ready: bool
    revision: str | None


def _projected_keys(source: Mapping[str, Any], data: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(key, file path) of a Secret or ConfigMap volume: its `items` that exist, else every key."""
    items = source.get("items")
    if not items:
        return [(key, key) for key in data]
    return [(str(item["key"]), str(item["path"])) for item in items if item["key"] in data]


def _uid(obj: Mapping[str, Any]) -> str:
    return str(obj["metadata"].get("uid", ""))


def _deleting(obj: Mapping[str, Any]) -> bool:
    return bool(obj["metadata"].get("deletionTimestamp"))


class Kubelet:
    """See the module docstring. Start with :meth:`start` or ``with``; always :meth:`close`."""

    def __init__(
        self,
        kube: KubeClient,
        nodes: Sequence[SandboxNode] | None = None,
        *,
        kubelet_version: str = "v0.0.0",
        interval: float = 0.1,
        grace_seconds: float = 5.0,
        backoff: Backoff | None = None,
        probe_period: float = PROBE_PERIOD_S,
        python: str = sys.executable,
        workdir: Path | None = None,
    ) -> None:
        if not 0 < interval <= 1:
            raise ValueError("interval must be in (0, 1] seconds")
        self.kube = kube
        self.nodes = {node.name: node for node in (nodes or default_nodes())}
        self.kubelet_version = kubelet_version
        self.interval, self.grace_seconds = interval, grace_seconds
        self.backoff, self.probe_period, self.python = backoff or Backoff(), probe_period, python
        self._own_workdir = workdir is None
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="modeldeploy-kubelet-"))
        self._pools: dict[str, PodAddressPool] = {}
        self._runners: dict[str, PodRunner] = {}
        self._terminating: dict[str, PodRunner] = {}
        self._node_of: dict[str, str] = {}
        self._written: dict[str, dict[str, Any]] = {}  # pod uid -> last status written
        self._revisions: dict[str, str | None] = {}
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_lease = 0.0
        self._last_node_status = 0.0
        self.errors: list[str] = []  # the last API/runtime errors of the loop, for test diagnostics
        self.ticks = 0

    # ----- lifecycle -----

    def start(self) -> Kubelet:
        self.register_nodes()
        atexit.register(self._kill_everything)  # a test that forgets close() must not leak processes
        self._thread = threading.Thread(target=self._run, name="sandbox-kubelet", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop the loop, terminate every pod's processes (SIGTERM, SIGKILL after the grace) and reap them."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)
        with self._lock:
            now = time.time()
            for uid, runner in list(self._runners.items()):
                runner.stop(min(self.grace_seconds, 2.0), now)
                self._terminating[uid] = runner
            self._runners.clear()
            deadline = time.monotonic() + min(self.grace_seconds, 2.0) + 0.5
            while self._terminating and time.monotonic() < deadline:
                for uid, runner in list(self._terminating.items()):
                    runner.step(time.time())
                    if runner.stopped:
                        self._forget(uid, runner)
                time.sleep(0.05)
        self._kill_everything()
        atexit.unregister(self._kill_everything)
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def _kill_everything(self) -> None:
        with self._lock:
            for uid, runner in [*self._runners.items(), *self._terminating.items()]:
                runner.force_kill()
                self._forget(uid, runner)
            self._runners.clear()
            self._terminating.clear()

    def __enter__(self) -> Kubelet:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    # ----- nodes -----

    def register_nodes(self) -> None:
        """Create the Nodes, post Ready, renew their Leases; wait for their podCIDRs and untainting."""
        for node in self.nodes.values():
            with contextlib.suppress(KubeApiError):  # already there (a restarted kubelet)
                self.kube.create(node.manifest())
        self._heartbeat(force=True)
        deadline = time.monotonic() + REGISTER_TIMEOUT_S
        while True:
            pending = [name for name in self.nodes if not self._node_usable(name)]
            if not pending:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"nodes {pending} got no podCIDR or kept their not-ready taint for "
                                   f"{REGISTER_TIMEOUT_S:.0f}s: is kube-controller-manager running?")
            time.sleep(0.1)

    def _node_usable(self, name: str) -> bool:
        node = self.kube.get("v1", "Node", None, name) or {}
        spec = node.get("spec") or {}
        cidr = spec.get("podCIDR")
        if not cidr:
            return False
        self._pools.setdefault(name, PodAddressPool(cidr))
        # TaintNodesByCondition put node.kubernetes.io/not-ready on at creation; the controller lifts it.
        return not any(t.get("key") == "node.kubernetes.io/not-ready" for t in spec.get("taints") or [])

    def _heartbeat(self, force: bool = False) -> None:
        now = time.time()
        if force or now - self._last_lease >= LEASE_RENEW_S:
            renew = datetime.datetime.now(datetime.UTC)
            for node in self.nodes.values():
                lease = node.lease(renew)
                try:
                    self.kube.merge_patch("coordination.k8s.io/v1", "Lease", "kube-node-lease", node.name,
                                          {"spec": lease["spec"]})
                except NotFound:
                    self.kube.create(lease)
            self._last_lease = now
        if force or now - self._last_node_status >= NODE_STATUS_S:
            for node in self.nodes.values():
                self.kube.merge_patch("v1", "Node", None, node.name,
                                      {"status": node.status(rfc3339(now), self.kubelet_version)},
                                      subresource="status")
            self._last_node_status = now

    # ----- introspection (thread-safe) -----

    def pods(self) -> list[PodProcesses]:
        """The pods running on the sandbox nodes (terminating ones excluded)."""
        with self._lock:
            return [
                PodProcesses(r.namespace, r.name, uid, self._node_of.get(uid, ""), r.pod_ip, r.address,
                             tuple(r.pids()), r.ready, self._revisions.get(uid))
                for uid, r in self._runners.items()
            ]

    def pod(self, namespace: str, name: str) -> PodProcesses | None:
        return next((p for p in self.pods() if (p.namespace, p.name) == (namespace, name)), None)

    def all_pids(self, namespace: str | None = None) -> list[int]:
        """Every live process (of one namespace's pods, if given), terminating pods included."""
        with self._lock:
            return [pid for r in [*self._runners.values(), *self._terminating.values()]
                    if namespace is None or r.namespace == namespace for pid in r.pids()]

    def logs(self, namespace: str, name: str, container: str, lines: int = 20) -> str:
        """The tail of a container's current (or last) attempt's log, like ``kubectl logs --tail``."""
        with self._lock:
            runner = next((r for r in self._runners.values() if (r.namespace, r.name) == (namespace, name)), None)
            found = next((c for c in runner.all_runners() if c.name == container), None) if runner else None
            if found is None or found.process is None:
                return ""
            return tail(found.process.launch.log_path, lines=lines, limit=64 * 1024)

    def allocated_ips(self, namespace: str | None = None) -> set[str]:
        """Pod IPs handed out to running or terminating pods (of one namespace, if given)."""
        with self._lock:
            return {r.pod_ip for r in [*self._runners.values(), *self._terminating.values()]
                    if namespace is None or r.namespace == namespace}

    def terminating(self) -> int:
        with self._lock:
            return len(self._terminating)

    # ----- the loop -----

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                with self._lock:
                    self.sync()
            except Exception as error:  # the loop must survive API hiccups; the error is kept for tests
                log.warning("sandbox kubelet sync failed: %s", error, exc_info=True)
                self.errors = [*self.errors[-MAX_ERRORS_KEPT + 1 :], f"{type(error).__name__}: {error}"]
            self.ticks += 1

    def sync(self) -> None:
        """One pass: start newly bound pods, stop deleted ones, step processes, write statuses."""
        now = time.time()
        self._heartbeat()
        # Bound pods only (as a kubelet's field selector): a thousand Pending ones cost nothing here.
        answer = self.kube.request("GET", "/api/v1/pods", query=[("fieldSelector", "spec.nodeName!=")])
        pods = [{"apiVersion": "v1", "kind": "Pod", **p} for p in answer.get("items") or []
                if (p.get("spec") or {}).get("nodeName") in self.nodes]
        live = {_uid(p): p for p in pods if not _deleting(p)}
        for pod in live.values():
            self._admit(pod, now)
        for uid in [uid for uid in self._runners if uid not in live]:
            runner = self._runners.pop(uid)
            runner.stop(self._grace_of(runner), now)
            self._terminating[uid] = runner
        for uid, runner in self._runners.items():
            runner.step(now)
            self._write_status(live[uid], runner.status(now))
        for uid, runner in list(self._terminating.items()):
            runner.step(now)
            if runner.stopped:
                self._forget(uid, runner)
                self._complete_deletion(runner.namespace, runner.name)
        for pod in pods:  # deleting pods this kubelet never ran end at once
            uid = _uid(pod)
            if _deleting(pod) and uid not in self._runners and uid not in self._terminating:
                self._complete_deletion(pod["metadata"]["namespace"], pod["metadata"]["name"])

    def _grace_of(self, runner: PodRunner) -> float:
        wanted = runner.spec.get("terminationGracePeriodSeconds")
        return min(self.grace_seconds, float(30 if wanted is None else wanted))

    def _forget(self, uid: str, runner: PodRunner) -> None:
        self._terminating.pop(uid, None)
        self._written.pop(uid, None)
        self._revisions.pop(uid, None)
        node = self._node_of.pop(uid, None)
        if node in self._pools:
            self._pools[node].release(runner.pod_ip)
        runner.remove_files()

    def _admit(self, pod: Mapping[str, Any], now: float) -> None:
        """Start a pod newly bound to one of our nodes."""
        uid = _uid(pod)
        if uid in self._runners or uid in self._terminating:
            return
        node_name = str(pod["spec"]["nodeName"])
        pool = self._pools.get(node_name)
        pod_ip = pool.allocate() if pool is not None else None
        if pool is None or pod_ip is None:
            self.errors = [*self.errors[-MAX_ERRORS_KEPT + 1 :], f"no free pod IP on node {node_name}"]
            return
        try:
            runner = PodRunner(pod, pod_ip=pod_ip, host_ip=self.nodes[node_name].internal_ip,
                               root=self.workdir / uid, backoff=self.backoff, python=self.python,
                               probe_period=self.probe_period, cluster_env=self._cluster_env())
        except BaseException:
            pool.release(pod_ip)
            raise
        self._node_of[uid] = node_name
        self._revisions[uid] = (pod["metadata"].get("labels") or {}).get("modeldeploy.dev/revision")
        self._runners[uid] = runner
        self._mount_secrets(pod, runner)
        self._mount_projected(pod, runner)
        runner.step(now)

    def _mount_secrets(self, pod: Mapping[str, Any], runner: PodRunner) -> None:
        """Secret volumes, as a kubelet mounts them: one file per key (the data is base64 in the API), or
        only the volume's `items`, each at its `path`."""
        namespace = pod["metadata"].get("namespace", "default")
        for volume in (pod.get("spec") or {}).get("volumes") or []:
            if "configMap" in volume:  # ConfigMap volumes likewise (their data is plain text)
                config_map = self.kube.get("v1", "ConfigMap", namespace, volume["configMap"]["name"]) or {}
                texts = config_map.get("data") or {}
                for key, path in _projected_keys(volume["configMap"], texts):
                    (runner.volumes[volume["name"]] / path).write_text(texts[key], encoding="utf-8")
            if "secret" not in volume:
                continue
            secret = self.kube.get("v1", "Secret", namespace, volume["secret"]["secretName"]) or {}
            encoded = secret.get("data") or {}
            for key, path in _projected_keys(volume["secret"], encoded):
                (runner.volumes[volume["name"]] / path).write_bytes(base64.b64decode(encoded[key]))

    def _cluster_env(self) -> dict[str, str]:
        """KUBERNETES_SERVICE_HOST/PORT: the real API server (the sandbox has no Service routing)."""
        url = urllib.parse.urlsplit(self.kube.host)
        if url.hostname is None:
            return {}
        port = url.port or (443 if url.scheme == "https" else 80)
        return {"KUBERNETES_SERVICE_HOST": url.hostname, "KUBERNETES_SERVICE_PORT": str(port)}

    def _mount_projected(self, pod: Mapping[str, Any], runner: PodRunner) -> None:
        """Projected volumes as a kubelet writes them: a ServiceAccount token bound to the pod (TokenRequest),
        ConfigMap keys and the pod's namespace. The token is not refreshed: sandbox pods live minutes."""
        meta, spec = pod["metadata"], pod.get("spec") or {}
        namespace = meta.get("namespace", "default")
        for volume in spec.get("volumes") or []:
            for source in (volume.get("projected") or {}).get("sources") or []:
                directory = runner.volumes[volume["name"]]
                if "serviceAccountToken" in source:
                    wanted = source["serviceAccountToken"]
                    account = spec.get("serviceAccountName") or "default"
                    request: dict[str, Any] = {
                        "expirationSeconds": int(wanted.get("expirationSeconds", 3600)),
                        "boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": meta["name"],
                                           "uid": meta.get("uid", "")}}
                    if wanted.get("audience"):
                        request["audiences"] = [wanted["audience"]]
                    answer = self.kube.request(
                        "POST", f"/api/v1/namespaces/{namespace}/serviceaccounts/{account}/token",
                        body={"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": request})
                    (directory / str(wanted["path"])).write_text(answer["status"]["token"])
                elif "configMap" in source:
                    config_map = self.kube.get("v1", "ConfigMap", namespace, source["configMap"]["name"]) or {}
                    data = config_map.get("data") or {}
                    for item in source["configMap"].get("items") or [{"key": k, "path": k} for k in data]:
                        if item["key"] in data:
                            (directory / str(item["path"])).write_text(data[item["key"]])
                elif "downwardAPI" in source:
                    for item in source["downwardAPI"].get("items") or []:
                        if (item.get("fieldRef") or {}).get("fieldPath") == "metadata.namespace":
                            (directory / str(item["path"])).write_text(namespace)

    def _complete_deletion(self, namespace: str, name: str) -> None:
        body = {"apiVersion": "v1", "kind": "DeleteOptions", "gracePeriodSeconds": 0}
        with contextlib.suppress(NotFound):
            self.kube.request("DELETE", f"/api/v1/namespaces/{namespace}/pods/{name}", body=body)

    def _write_status(self, pod: Mapping[str, Any], status: dict[str, Any]) -> None:
        uid = _uid(pod)
        if self._written.get(uid) == status:
            return
        meta = pod["metadata"]
        # Keep the scheduler's PodScheduled condition's times: replace the whole status as a kubelet does.
        try:
            self.kube.merge_patch("v1", "Pod", meta["namespace"], meta["name"], {"status": status},
                                  subresource="status")
        except NotFound:
            return  # deleted meanwhile: the next pass stops it
        self._written[uid] = status
