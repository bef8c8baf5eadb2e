"""HTTP readiness probes against a pod's loopback address (the kubelet's httpGet probe)."""

from __future__ import annotations

import contextlib
import http.client
from collections.abc import Mapping
from typing import Any

PROBE_TIMEOUT_S = 0.5  # loopback: a healthy server answers in milliseconds


def http_get_ok(address: str, port: int, path: str, timeout: float = PROBE_TIMEOUT_S) -> bool:
    """Whether ``GET http://address:port/path`` answers 2xx/3xx (the kubelet's success range)."""
    connection = http.client.HTTPConnection(address, port, timeout=timeout)
    with contextlib.closing(connection):
        try:
            connection.request("GET", path, headers={"User-Agent": "kube-probe/1.30 (modeldeploy-sandbox)"})
            return 200 <= connection.getresponse().status < 400
        except (OSError, http.client.HTTPException):
            return False


def resolve_port(port: Any, container: Mapping[str, Any]) -> int | None:
    """A probe's port: a number, or the name of one of the container's ports."""
    if isinstance(port, int):
        return port
    if isinstance(port, str) and port.isdigit():
        return int(port)
    for declared in container.get("ports") or []:
        if declared.get("name") == port:
            return int(declared["containerPort"])
    return None


class ReadinessProbe:
    """Probes every ``period`` seconds; ready after one success, unready after ``failure_threshold`` failures.

    The pod's own ``periodSeconds`` (5 s) would make the sandbox slow; the sandbox period is short
    and the failure threshold is the container's.
    """

    def __init__(self, container: Mapping[str, Any], address: str, period: float) -> None:
        spec = container.get("readinessProbe") or {}
        http_get = spec.get("httpGet") or {}
        self.enabled = bool(http_get)
        self.address, self.period = address, period
        self.path = str(http_get.get("path") or "/")
        self.port = resolve_port(http_get.get("port"), container)
        self.failure_threshold = int(spec.get("failureThreshold") or 3)
        self.ready = not self.enabled  # no probe: ready as soon as running
        self._failures = 0
        self._next = 0.0

    def reset(self) -> None:
        """A (re)started container begins unready."""
        self.ready, self._failures, self._next = not self.enabled, 0, 0.0

    def step(self, now: float) -> bool:
        if not self.enabled or now < self._next:
            return self.ready
        self._next = now + self.period
        if self.port is not None and http_get_ok(self.address, self.port, self.path):
            self.ready, self._failures = True, 0
        else:
            self._failures += 1
            if not self.ready or self._failures >= self.failure_threshold:
                self.ready = False
        return self.ready
