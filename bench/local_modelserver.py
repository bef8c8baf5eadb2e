"""A `modelserver serve` subprocess on 127.0.0.1 for the latency benches (access.py, response_cache.py):
started, waited for until ready, timed one keep-alive request at a time, stopped."""

from __future__ import annotations

import http.client
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from modeldeploy_sandbox.controlplane import free_port

HOST = "127.0.0.1"
ROOT = Path(__file__).resolve().parent.parent
READY_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class LocalModelserver:
    process: subprocess.Popen[bytes]
    conn: http.client.HTTPConnection  # one keep-alive connection: sequential requests
    metrics_port: int

    def timed(self, path: str, body: bytes, headers: dict[str, str]) -> float:
        """Seconds for one POST, answer read; a non-200 answer is an error (the bench measures successes)."""
        t0 = time.perf_counter()
        self.conn.request("POST", path, body, headers)
        answer = self.conn.getresponse()
        data = answer.read()
        elapsed = time.perf_counter() - t0
        if answer.status != 200:
            raise RuntimeError(f"{path}: HTTP {answer.status}: {data[:200]!r}")
        return elapsed


@contextmanager
def modelserver(repo: Path, extra: Sequence[str] = ()) -> Iterator[LocalModelserver]:
    """modelserver serving `repo` with one ORT thread (and `extra` flags), ready; stopped on exit."""
    http_port, metrics_port = free_port(HOST), free_port(HOST)
    cmd = [sys.executable, "-m", "modelserver.cli", "serve", "--model-repository", str(repo), "--host", HOST,
           "--http-port", str(http_port), "--grpc-port", str(free_port(HOST)), "--metrics-port", str(metrics_port),
           "--intra-op-threads", "1", "--log-level", "warning", *extra]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "runtime-image"), "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(cmd, env=env)
    conn = http.client.HTTPConnection(HOST, http_port, timeout=30)
    try:
        _wait_ready(process, conn)
        yield LocalModelserver(process, conn, metrics_port)
    finally:
        conn.close()
        process.terminate()
        process.wait(timeout=30)


def _wait_ready(process: subprocess.Popen[bytes], conn: http.client.HTTPConnection) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while True:
        try:
            conn.request("GET", "/v2/health/ready")
            answer = conn.getresponse()
            answer.read()
            if answer.status == 200:
                return
        except OSError:
            conn.close()
        if time.monotonic() > deadline or process.poll() is not None:
            raise RuntimeError("modelserver did not become ready")
        time.sleep(0.2)


def pct_ms(values: list[float], q: float) -> float:
    """The q-th percentile of `values` (seconds), in milliseconds."""
    return float(np.percentile(values, q)) * 1e3
