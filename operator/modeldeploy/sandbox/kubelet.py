"""The sandbox's pod simulator: a kubelet (+ scheduler, + deployment controller on the emulator)
that runs pods as real ``modelserver`` processes on their own loopback addresses.

    with Kubelet(emulator.url, expand_deployments=True) as kubelet:
        ...                              # Deployments labelled managed-by=modeldeploy get real pods
        kubelet.pods()                   # [PodProcesses(namespace, name, address, pids, ready), ...]

Modes:

- ``expand_deployments=True`` — an emulated API server, where no controllers run: the simulator
  also creates/deletes the Deployments' pods and writes the Deployments' status (only on change).
- ``expand_deployments=False`` — a real kube-apiserver + kube-controller-manager (no scheduler, no
  kubelet): the simulator only schedules and runs the pods, binding them through the ``binding``
  subresource, heart-beating its Node, and completing pod deletions (grace 0) after the processes
  are gone.

In both it acts only on objects labelled ``app.kubernetes.io/managed-by=modeldeploy``, polls the API
every ``interval`` seconds (default 0.1) and writes a pod's status only when it changed. Scheduling
is against one Node ``modeldeploy-sandbox`` without GPUs (see :mod:`.scheduling`); containers run
as described in :mod:`.process` and :mod:`.container_runner`. ``close()`` stops every process.
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import logging
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

from modeldeploy.kubeapi import KubeApiError, KubeClient, NotFound
from modeldeploy.render.labels import MANAGED_BY, MANAGED_BY_LABEL
from modeldeploy.sandbox import deployments
from modeldeploy.sandbox.addresses import AddressPool
from modeldeploy.sandbox.container_runner import Backoff, rfc3339
from modeldeploy.sandbox.emulator import SANDBOX_USER_AGENT
from modeldeploy.sandbox.pod_runner import PROBE_PERIOD_S, PodRunner, unschedulable_status
from modeldeploy.sandbox.process import tail
from modeldeploy.sandbox.scheduling import SandboxNode, unschedulable_message

log = logging.getLogger("modeldeploy.sandbox.kubelet")

SELECTOR = f"{MANAGED_BY_LABEL}={MANAGED_BY}"
HEARTBEAT_S = 10.0  # the node lifecycle controller's grace period is 40 s
MAX_ERRORS_KEPT = 50


@dataclasses.dataclass(frozen=True)
class PodProcesses:
    """A running sandbox pod as the simulator sees it."""

    namespace: str
    name: str
    uid: str
    address: str
    pids: tuple[int, ...]
    ready: bool
    revision: str | None


def _uid(obj: Mapping[str, Any]) -> str:
    return str(obj["metadata"].get("uid", ""))


def _deleting(obj: Mapping[str, Any]) -> bool:
    return bool(obj["metadata"].get("deletionTimestamp"))


class Kubelet:
    """See the module docstring. Start with :meth:`start` or ``with``; always :meth:`close`."""

    def __init__(
        self,
        api_url: str,
        *,
        expand_deployments: bool = True,
        namespace: str | None = None,
        node: SandboxNode | None = None,
        interval: float = 0.1,
        grace_seconds: float = 5.0,
        backoff: Backoff | None = None,
        probe_period: float = PROBE_PERIOD_S,
        python: str = sys.executable,
        workdir: Path | None = None,
        addresses: AddressPool | None = None,
    ) -> None:
        if not 0 < interval <= 1:
            raise ValueError("interval must be in (0, 1] seconds")
        self.expand_deployments, self.namespace = expand_deployments, namespace
        self.node = node or SandboxNode()
        self.interval, self.grace_seconds = interval, grace_seconds
        self.backoff, self.probe_period, self.python = backoff or Backoff(), probe_period, python
        self.kube = KubeClient(api_url, user_agent=f"{SANDBOX_USER_AGENT}-kubelet", timeout=10.0)
        self._own_workdir = workdir is None
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="modeldeploy-kubelet-"))
        self.addresses = addresses or AddressPool()
        self._runners: dict[str, PodRunner] = {}
        self._terminating: dict[str, PodRunner] = {}
        self._written: dict[str, dict[str, Any]] = {}  # pod uid -> last status written
        self._unschedulable_since: dict[str, str] = {}
        self._revisions: dict[str, str | None] = {}
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_heartbeat = 0.0
        self.errors: list[str] = []  # the last API/runtime errors of the loop, for test diagnostics
        self.ticks = 0

    # ----- lifecycle -----

    def start(self) -> Kubelet:
        self.register_node()
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
                    if runner.stopped:
                        self._forget(uid, runner)
                time.sleep(0.05)
        self._kill_everything()
        atexit.unregister(self._kill_everything)
        self.kube.close()
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

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # ----- introspection (thread-safe) -----

    def pods(self) -> list[PodProcesses]:
        """The pods running on the sandbox node (terminating ones excluded)."""
        with self._lock:
            return [
                PodProcesses(r.namespace, r.name, r.uid, r.address, tuple(r.pids()), r.ready, self._revisions.get(uid))
                for uid, r in self._runners.items()
            ]

    def pod(self, namespace: str, name: str) -> PodProcesses | None:
        return next((p for p in self.pods() if (p.namespace, p.name) == (namespace, name)), None)

    def all_pids(self) -> list[int]:
        """Every live process, terminating pods included."""
        with self._lock:
            return [pid for r in [*self._runners.values(), *self._terminating.values()] for pid in r.pids()]

    def logs(self, namespace: str, name: str, container: str, lines: int = 20) -> str:
        """The tail of a container's current (or last) attempt's log, like ``kubectl logs --tail``."""
        with self._lock:
            runner = next((r for r in self._runners.values() if (r.namespace, r.name) == (namespace, name)), None)
            found = next((c for c in runner.all_runners() if c.name == container), None) if runner else None
            if found is None or found.process is None:
                return ""
            return tail(found.process.launch.log_path, lines=lines, limit=64 * 1024)

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
        """One pass: controllers (emulator mode), scheduling, processes, statuses."""
        now = time.time()
        pods = self.kube.list("v1", "Pod", self.namespace, SELECTOR)
        live = {_uid(p): p for p in pods if not _deleting(p)}
        found: list[dict[str, Any]] = []
        if self.expand_deployments:
            found = self._deployments()
            self._sync_deployments(found, list(live.values()))
        for pod in live.values():
            self._admit(pod, now)
        for uid in [uid for uid in self._unschedulable_since if uid not in live]:  # gone while Pending
            self._unschedulable_since.pop(uid)
            self._written.pop(uid, None)
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
                if not self.expand_deployments:
                    self._complete_deletion(runner.namespace, runner.name)
        if not self.expand_deployments:
            self._finish_unbound_deletions(pods)
            if now - self._last_heartbeat >= HEARTBEAT_S:
                self.register_node()
        if self.expand_deployments:
            self._write_deployment_statuses(found, list(live.values()))

    def _grace_of(self, runner: PodRunner) -> float:
        wanted = runner.spec.get("terminationGracePeriodSeconds")
        return min(self.grace_seconds, float(30 if wanted is None else wanted))

    def _forget(self, uid: str, runner: PodRunner) -> None:
        self._terminating.pop(uid, None)
        self._written.pop(uid, None)
        self._revisions.pop(uid, None)
        self.addresses.release(runner.address)
        runner.remove_files()

    # ----- scheduling -----

    def _admit(self, pod: Mapping[str, Any], now: float) -> None:
        """Schedule a new pod onto the sandbox node and start it (or mark it Unschedulable)."""
        uid, spec = _uid(pod), pod.get("spec") or {}
        if uid in self._runners or uid in self._terminating:
            return
        node_name = spec.get("nodeName")
        if node_name and node_name != self.node.name:
            return  # another (real) node's pod
        if not node_name:
            message = unschedulable_message(spec, self.node, [r.spec for r in self._runners.values()])
            if message is not None:
                since = self._unschedulable_since.setdefault(uid, rfc3339(now))
                self._write_status(pod, unschedulable_status(message, since))
                return
        address = self.addresses.allocate()
        if address is None:
            self.errors = [*self.errors[-MAX_ERRORS_KEPT + 1 :], "no free loopback address for a pod"]
            return
        try:
            if not node_name:
                self._bind(pod)
            runner = PodRunner(
                pod,
                address=address,
                root=self.workdir / uid,
                backoff=self.backoff,
                python=self.python,
                probe_period=self.probe_period,
            )
        except BaseException:
            self.addresses.release(address)
            raise
        self._unschedulable_since.pop(uid, None)
        self._revisions[uid] = (pod["metadata"].get("labels") or {}).get("modeldeploy.dev/revision")
        self._runners[uid] = runner
        runner.step(now)

    def _bind(self, pod: Mapping[str, Any]) -> None:
        meta = pod["metadata"]
        if self.expand_deployments:  # the emulator has no binding subresource; the field is enough
            self.kube.merge_patch("v1", "Pod", meta["namespace"], meta["name"], {"spec": {"nodeName": self.node.name}})
            return
        binding = {
            "apiVersion": "v1",
            "kind": "Binding",
            "metadata": {"name": meta["name"], "uid": meta.get("uid")},
            "target": {"apiVersion": "v1", "kind": "Node", "name": self.node.name},
        }
        self.kube.request("POST", f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}/binding", body=binding)

    def register_node(self) -> None:
        """Create the sandbox Node if missing and (re)write its status: allocatable, Ready, heartbeat."""
        try:
            self.kube.request("POST", "/api/v1/nodes", body=self.node.manifest())
        except KubeApiError as error:
            if error.status != 409:
                raise
        status = self.node.status(rfc3339(time.time()))
        self.kube.request(
            "PATCH",
            f"/api/v1/nodes/{self.node.name}/status",
            body={"status": status},
            content_type="application/merge-patch+json",
        )
        self._last_heartbeat = time.time()

    # ----- real API server: deletions end with the kubelet -----

    def _complete_deletion(self, namespace: str, name: str) -> None:
        body = {"apiVersion": "v1", "kind": "DeleteOptions", "gracePeriodSeconds": 0}
        with contextlib.suppress(NotFound):
            self.kube.request("DELETE", f"/api/v1/namespaces/{namespace}/pods/{name}", body=body)

    def _finish_unbound_deletions(self, pods: list[dict[str, Any]]) -> None:
        """Deleting pods this node never ran (unschedulable, or gone before we saw them) end at once."""
        for pod in pods:
            uid = _uid(pod)
            if _deleting(pod) and uid not in self._runners and uid not in self._terminating:
                node_name = (pod.get("spec") or {}).get("nodeName")
                if node_name in (None, self.node.name):
                    self._complete_deletion(pod["metadata"]["namespace"], pod["metadata"]["name"])

    # ----- statuses -----

    def _write_status(self, pod: Mapping[str, Any], status: dict[str, Any]) -> None:
        uid = _uid(pod)
        if self._written.get(uid) == status or (uid not in self._written and pod.get("status") == status):
            return
        meta = pod["metadata"]
        try:
            self.kube.json_patch(
                "v1",
                "Pod",
                meta["namespace"],
                meta["name"],
                [{"op": "add", "path": "/status", "value": status}],
                subresource="status",
            )
        except NotFound:
            return  # deleted meanwhile: the next pass stops it
        self._written[uid] = status

    # ----- the deployment controller (emulator mode) -----

    def _ready(self, pod: Mapping[str, Any]) -> bool:
        runner = self._runners.get(_uid(pod))
        return runner is not None and runner.ready

    def _deployments(self) -> list[dict[str, Any]]:
        return [d for d in self.kube.list("apps/v1", "Deployment", self.namespace, SELECTOR) if not _deleting(d)]

    def _sync_deployments(self, found: list[dict[str, Any]], pods: list[dict[str, Any]]) -> None:
        uids = {_uid(d) for d in found}
        for deployment in found:
            owned = [p for p in pods if deployments.owned_by(p, _uid(deployment))]
            plan = deployments.plan_scale(deployment, owned, self._ready)
            for _ in range(plan.create):
                self.kube.create(deployments.new_pod(deployment))
            for name in plan.delete:
                self.kube.delete("v1", "Pod", deployment["metadata"]["namespace"], name)
        # Pods of a Deployment that is gone (the emulator's GC may be off): the GC's job, done here.
        for pod in pods:
            refs = pod["metadata"].get("ownerReferences") or []
            if any(r.get("kind") == "Deployment" for r in refs) and not any(r.get("uid") in uids for r in refs):
                self.kube.delete("v1", "Pod", pod["metadata"]["namespace"], pod["metadata"]["name"])

    def _write_deployment_statuses(self, found: list[dict[str, Any]], pods: list[dict[str, Any]]) -> None:
        # ``found`` was listed at the start of this pass: its status is what the API has now.
        for deployment in found:
            owned = [p for p in pods if deployments.owned_by(p, _uid(deployment))]
            status = deployments.deployment_status(deployment, owned, self._ready)
            if status != (deployment.get("status") or {}):
                meta = deployment["metadata"]
                ops = [{"op": "add", "path": "/status", "value": status}]
                with contextlib.suppress(NotFound):
                    self.kube.json_patch("apps/v1", "Deployment", meta["namespace"], meta["name"], ops, "status")
