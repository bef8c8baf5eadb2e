"""One container of a sandbox pod through its lifecycle: start, exit, restart with back-off.

Its :meth:`ContainerRunner.status` is the container's entry in the pod status, as the kubelet
writes it: ``state`` (waiting / running / terminated), ``lastState``, ``restartCount``, ``ready``.
After a failed exit the container shows ``terminated`` briefly, then ``waiting: CrashLoopBackOff``
with the exit in ``lastState`` until the back-off (base * 2^n, capped) has passed.

A container with ``resources.limits.memory`` is watched as the cgroup's OOM killer would watch it:
once its resident memory passes the limit it is killed and shows ``terminated: OOMKilled``, 137.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Callable, Mapping
from typing import Any

from modeldeploy_sandbox.probes import ReadinessProbe
from modeldeploy_sandbox.process import ContainerProcess, Launch, UnsupportedContainer

START_ERROR_EXIT_CODE = 128  # what container runtimes report when the process cannot be started
OOM_EXIT_CODE = 137  # SIGKILL by the kernel's OOM killer, as runtimes report it
TERMINATED_DISPLAY_S = 0.3  # a failed exit is shown as `terminated` this long before CrashLoopBackOff


def rfc3339(timestamp: float) -> str:
    return datetime.datetime.fromtimestamp(timestamp, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclasses.dataclass(frozen=True)
class Backoff:
    """Crash-loop back-off: ``base * 2**(n-1)`` after the n-th consecutive failure, at most ``cap``.

    The kubelet uses 10 s and 5 min; the sandbox defaults to 1 s and 10 s. A container that ran
    for ``reset_after`` seconds starts again from ``base``.
    """

    base: float = 1.0
    cap: float = 10.0

    @property
    def reset_after(self) -> float:
        return 2 * self.cap

    def delay(self, failures: int) -> float:
        return float(min(self.cap, self.base * 2 ** max(0, failures - 1)))


class ContainerRunner:
    def __init__(
        self,
        spec: Mapping[str, Any],
        *,
        init: bool,
        plan: Callable[[Mapping[str, Any], int], Launch],
        backoff: Backoff,
        restart_policy: str,
        pod_label: str,
        probe: ReadinessProbe | None = None,
        memory_limit: int | None = None,
    ) -> None:
        self.spec, self.name, self.init = spec, str(spec["name"]), init
        self.memory_limit = memory_limit
        self._plan, self._backoff, self._restart_policy = plan, backoff, restart_policy
        self._pod_label = pod_label  # "<name>_<namespace>(<uid>)" as in the kubelet's messages
        self.probe = probe
        self.process: ContainerProcess | None = None
        self.attempts = 0
        self.restart_count = 0
        self.done = False  # exited for good: an init container that completed, or no restart wanted
        self.ready = False
        self._state: dict[str, Any] = {"waiting": {"reason": "PodInitializing"}}
        self._last_state: dict[str, Any] = {}
        self._failures = 0
        self._restart_at: float | None = None
        self._exited_at = 0.0

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.finished_at is None

    def step(self, now: float) -> None:
        if self.process is not None and self.process.finished_at is None:
            code = self.process.poll()
            if code is None and self.memory_limit is not None and self.process.rss() > self.memory_limit:
                self.process.kill_and_reap(0.0)
                self._exited(OOM_EXIT_CODE, "", self.process.started_at, now, reason="OOMKilled")
            elif code is None:
                if self.probe is not None:
                    self.ready = self.probe.step(now)
                return
            else:
                self._exited(code, self.process.message(code), self.process.started_at, now)
        if not self.done and (self._restart_at is None or now >= self._restart_at) and not self.running:
            self._start(now)

    def _start(self, now: float) -> None:
        if self.attempts > 0:
            self.restart_count += 1
            if "terminated" in self._state:
                self._last_state = {"terminated": self._state["terminated"]}
        self.attempts += 1
        self._restart_at = None
        try:
            self.process = ContainerProcess(self._plan(self.spec, self.attempts))
        except (UnsupportedContainer, OSError) as error:
            self.process = None
            self._exited(START_ERROR_EXIT_CODE, str(error), now, now, reason="StartError")
            return
        if self.probe is not None:
            self.probe.reset()
        self.ready = self.probe is None and not self.init
        self._state = {"running": {"startedAt": rfc3339(self.process.started_at)}}

    def _exited(self, code: int, message: str, started: float, now: float, reason: str | None = None) -> None:
        self.ready = False
        terminated: dict[str, Any] = {
            "exitCode": code,
            "reason": reason or ("Completed" if code == 0 else "Error"),
            "startedAt": rfc3339(started),
            "finishedAt": rfc3339(now),
        }
        if message:
            terminated["message"] = message
        if self.process is not None:
            terminated["containerID"] = f"sandbox://{self.process.pid}"
        self._state = {"terminated": terminated}
        self._exited_at = now
        if code == 0 and (self.init or self._restart_policy != "Always"):
            self.done, self.ready = True, self.init
            return
        if self._restart_policy == "Never" and not self.init:
            self.done = True
            return
        if now - started >= self._backoff.reset_after:
            self._failures = 0
        self._failures += 1
        self._restart_at = now + self._backoff.delay(self._failures)

    def status(self, now: float) -> dict[str, Any]:
        state, last = self._state, self._last_state
        backing_off = self._restart_at is not None and not self.running
        if backing_off and now - self._exited_at >= TERMINATED_DISPLAY_S:
            assert self._restart_at is not None
            delay = self._backoff.delay(self._failures)
            state = {
                "waiting": {
                    "reason": "CrashLoopBackOff",
                    "message": f"back-off {delay:g}s restarting failed container={self.name} pod={self._pod_label}",
                }
            }
            last = {"terminated": self._state["terminated"]}
        status: dict[str, Any] = {
            "name": self.name,
            "image": str(self.spec.get("image") or ""),
            "imageID": "",
            "ready": self.ready,
            "restartCount": self.restart_count,
            "started": self.running,
            "state": state,
            "lastState": last,
        }
        if self.process is not None:
            status["containerID"] = f"sandbox://{self.process.pid}"
        return status
