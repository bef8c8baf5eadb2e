"""One sandbox pod: its directories and address, its init containers then its containers as real
processes, and the pod status a kubelet would write (phase, conditions, container statuses).
"""

from __future__ import annotations

import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from modeldeploy_sandbox.container_runner import Backoff, ContainerRunner, rfc3339
from modeldeploy_sandbox.network import loopback_for
from modeldeploy_sandbox.probes import ReadinessProbe
from modeldeploy_sandbox.process import Launch, plan_launch
from modeldeploy_sandbox.quantities import parse_quantity

PROBE_PERIOD_S = 0.2
# A kubelet backs emptyDir `medium: Memory` and Secret volumes with tmpfs; the sandbox uses the host's.
TMPFS_ROOT = Path("/dev/shm")


def memory_backed(volume: Mapping[str, Any]) -> bool:
    return (volume.get("emptyDir") or {}).get("medium") == "Memory" or "secret" in volume


class PodRunner:
    """Runs one pod bound to a sandbox node. Not thread-safe: the kubelet's loop drives it.

    ``pod_ip`` is the pod's cluster IP (what status reports); its processes listen on its loopback twin.
    """

    def __init__(
        self,
        pod: Mapping[str, Any],
        *,
        pod_ip: str,
        host_ip: str,
        root: Path,
        backoff: Backoff,
        python: str = sys.executable,
        probe_period: float = PROBE_PERIOD_S,
        cluster_env: Mapping[str, str] | None = None,
    ) -> None:
        meta, spec = pod["metadata"], pod.get("spec") or {}
        self.namespace, self.name, self.uid = meta.get("namespace", "default"), meta["name"], meta.get("uid", "")
        self.spec: Mapping[str, Any] = spec
        self.pod_ip, self.host_ip = pod_ip, host_ip
        self.address, self.root, self.python = loopback_for(pod_ip), root, python
        self.cluster_env = dict(cluster_env or {})
        volumes = spec.get("volumes") or []
        # Memory-backed volumes live on tmpfs, outside `root` (which is disk): see remove_files.
        self.memory_root = Path(tempfile.mkdtemp(prefix=f"modeldeploy-pod-{self.uid}-", dir=TMPFS_ROOT)) \
            if any(memory_backed(v) for v in volumes) else None
        self.volumes = {str(v["name"]): (self.memory_root if memory_backed(v) and self.memory_root else root)
                        / "volumes" / str(v["name"]) for v in volumes}
        for directory in self.volumes.values():
            directory.mkdir(parents=True, exist_ok=True)
        self.started_at = time.time()
        self.stop_deadline: float | None = None
        label = f"{self.name}_{self.namespace}({self.uid})"
        policy = str(spec.get("restartPolicy") or "Always")

        def runner(container: Mapping[str, Any], init: bool) -> ContainerRunner:
            probe = None if init else ReadinessProbe(container, self.address, probe_period)
            memory = ((container.get("resources") or {}).get("limits") or {}).get("memory")
            return ContainerRunner(
                container,
                init=init,
                plan=self._plan,
                backoff=backoff,
                restart_policy=policy,
                pod_label=label,
                probe=probe,
                memory_limit=int(parse_quantity(memory)) if memory is not None else None,
            )

        self.init_containers = [runner(c, True) for c in spec.get("initContainers") or []]
        self.containers = [runner(c, False) for c in spec.get("containers") or []]
        self._transitions: dict[str, tuple[str, str]] = {}

    def _plan(self, container: Mapping[str, Any], attempt: int) -> Launch:
        return plan_launch(
            container,
            volumes=self.volumes,
            address=self.address,
            pod_dir=self.root,
            attempt=attempt,
            python=self.python,
            cluster_env=self.cluster_env,
        )

    # ----- lifecycle -----

    @property
    def initialized(self) -> bool:
        return all(c.done for c in self.init_containers)

    @property
    def ready(self) -> bool:
        return self.initialized and self.stop_deadline is None and all(c.ready for c in self.containers)

    def all_runners(self) -> list[ContainerRunner]:
        return [*self.init_containers, *self.containers]

    def pids(self) -> list[int]:
        return [c.process.pid for c in self.all_runners() if c.process is not None and c.running]

    def step(self, now: float) -> None:
        if self.stop_deadline is not None:
            self._step_stopping(now)
            return
        pending = next((c for c in self.init_containers if not c.done), None)
        if pending is not None:  # init containers run one at a time, in order
            pending.step(now)
            if not pending.done:
                return
            if not self.initialized:
                return  # the next init container starts on the next step
        for container in self.containers:
            container.step(now)

    def stop(self, grace: float, now: float) -> None:
        """Begin termination: SIGTERM now, SIGKILL once ``grace`` has passed (see :meth:`step`)."""
        if self.stop_deadline is None:
            self.stop_deadline = now + grace
            for container in self.all_runners():
                if container.running and container.process is not None:
                    container.process.signal(signal.SIGTERM)

    def _step_stopping(self, now: float) -> None:
        assert self.stop_deadline is not None
        for container in self.all_runners():
            if container.process is not None and container.process.poll() is None and now >= self.stop_deadline:
                container.process.signal(signal.SIGKILL)

    @property
    def stopped(self) -> bool:
        return all(c.process is None or c.process.poll() is not None for c in self.all_runners())

    def force_kill(self) -> None:
        """SIGKILL whatever still runs and reap it (bounded); used by close()."""
        for container in self.all_runners():
            if container.process is not None:
                container.process.kill_and_reap(0.0)

    def remove_files(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)
        if self.memory_root is not None:
            shutil.rmtree(self.memory_root, ignore_errors=True)

    # ----- status -----

    def _condition(self, kind: str, ok: bool, reason: str | None, message: str | None, now: float) -> dict[str, Any]:
        status = "True" if ok else "False"
        previous = self._transitions.get(kind)
        if previous is None or previous[0] != status:
            self._transitions[kind] = (status, rfc3339(now))
        condition: dict[str, Any] = {
            "type": kind,
            "status": status,
            "lastProbeTime": None,
            "lastTransitionTime": self._transitions[kind][1],
        }
        if not ok and reason:
            condition["reason"], condition["message"] = reason, message
        return condition

    def status(self, now: float) -> dict[str, Any]:
        initialized = self.initialized
        incomplete = [c.name for c in self.init_containers if not c.done]
        unready = [c.name for c in self.containers if not c.ready]
        started = initialized and all(c.attempts > 0 for c in self.containers)
        conditions = [
            self._condition(
                "Initialized",
                initialized,
                "ContainersNotInitialized",
                f"containers with incomplete status: [{' '.join(incomplete)}]",
                now,
            ),
            self._condition(
                "Ready",
                not unready and initialized,
                "ContainersNotReady",
                f"containers with unready status: [{' '.join(unready)}]",
                now,
            ),
            self._condition(
                "ContainersReady",
                not unready and initialized,
                "ContainersNotReady",
                f"containers with unready status: [{' '.join(unready)}]",
                now,
            ),
            self._condition("PodScheduled", True, None, None, now),
        ]
        return {
            "phase": "Running" if started else "Pending",
            "conditions": conditions,
            "hostIP": self.host_ip,
            "hostIPs": [{"ip": self.host_ip}],
            "podIP": self.pod_ip,
            "podIPs": [{"ip": self.pod_ip}],
            "startTime": rfc3339(self.started_at),
            "initContainerStatuses": [c.status(now) for c in self.init_containers],
            "containerStatuses": [c.status(now) for c in self.containers],
        }

