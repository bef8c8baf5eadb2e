"""Fake pods: real HTTP /metrics endpoints on loopback addresses, exporting with modelserver's own
exporter (modelserver.metrics.ServerMetrics), so names, labels and format are the runtime's."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from modelserver.metrics import ServerMetrics


class FakePod:
    def __init__(self, host: str) -> None:
        self.metrics = ServerMetrics()
        self.answer = 200  # another status: the page is refused (e.g. 403 from a proxy in the pod)
        pod = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = pod.metrics.exposition() if pod.answer == 200 else b"denied"
                self.send_response(pod.answer)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer((host, 0), Handler)
        self.endpoint = f"{host}:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def serve(self, model: str, ok: int = 0, failed: int = 0, seconds: float = 0.01, queue_us: int = 0) -> None:
        """Record `ok` successful and `failed` failed requests of `seconds` each."""
        stats = self.metrics.stats(model, 1)
        for _ in range(ok):
            stats.observe_success(int(seconds * 1e9), 1)
        for _ in range(failed):
            stats.observe_failure("INVALID_ARG", int(seconds * 1e9))
        if queue_us:
            stats.observe_execution(queue_us * 1000, 0)

    def restart(self) -> None:
        self.metrics = ServerMetrics()  # a restarted container: every counter from zero

    def stop(self) -> None:
        if self.thread.is_alive():
            self.server.shutdown()
            self.server.server_close()


@pytest.fixture
def pods() -> Iterator[list[FakePod]]:
    started = [FakePod(f"127.0.0.{i}") for i in (2, 3, 4)]
    yield started
    for pod in started:
        pod.stop()


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])
