"""The real command line: start-up, structured logs, SIGTERM drain, load failures, fault injection."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tritonclient.grpc as tg
import tritonclient.http as th
from tritonclient.utils import InferenceServerException

from modelserver.cli import build_parser, main
from modelserver.faults import Faults
from modelserver.server import ServerConfig

from .conftest import RunningServer, ThreadedServer, fixed_graph, save_model

pytestmark = pytest.mark.timeout(60)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def small_repo(tmp_path: Path) -> Path:
    save_model(fixed_graph(), tmp_path / "fixed" / "1" / "model.onnx")
    return tmp_path


def start(repo: Path, env: dict[str, str] | None = None) -> tuple[subprocess.Popen[str], int, int]:
    http_port, grpc_port, metrics_port = free_port(), free_port(), free_port()
    cmd = [
        sys.executable, "-m", "modelserver", "serve", "--model-repository", str(repo), "--host", "127.0.0.1",
        "--http-port", str(http_port), "--grpc-port", str(grpc_port), "--metrics-port", str(metrics_port),
        "--intra-op-threads", "1", "--drain-timeout", "10",
    ]  # fmt: skip
    # Fault injection takes effect only with the test-only flag (modelserver.faults).
    proc = subprocess.Popen(cmd, env={**os.environ, "MODELSERVER_TEST_FAULTS": "1", **(env or {})},
                            stderr=subprocess.PIPE, text=True)
    return proc, http_port, grpc_port


def wait_ready(proc: subprocess.Popen[str], port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/health/ready", timeout=1) as r:
                if r.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError):
            pass
        time.sleep(0.1)
    raise TimeoutError("server not ready")


def stop_process(proc: subprocess.Popen[Any]) -> None:
    """SIGTERM (the server drains), SIGKILL if it is not gone in 30 s."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def infer_fixed(port: int) -> np.ndarray:
    c = th.InferenceServerClient(f"127.0.0.1:{port}", network_timeout=30)
    x = th.InferInput("X", [2, 3], "FP32")
    x.set_data_from_numpy(np.ones((2, 3), dtype=np.float32))
    try:
        return c.infer("fixed", [x]).as_numpy("Y")
    finally:
        c.close()


def test_sigterm_drains_in_flight_requests_then_exits_0(small_repo: Path) -> None:
    proc, port, grpc_port = start(small_repo, {"MODELSERVER_FAULT_LATENCY_MS": "1500"})
    try:
        wait_ready(proc, port)
        result: dict[str, Any] = {}

        def call() -> None:
            try:
                result["y"] = infer_fixed(port)
            except Exception as exc:
                result["error"] = exc

        def call_grpc() -> None:
            try:
                c = tg.InferenceServerClient(f"127.0.0.1:{grpc_port}")
                x = tg.InferInput("X", [2, 3], "FP32")
                x.set_data_from_numpy(np.full((2, 3), 2.0, dtype=np.float32))
                result["g"] = c.infer("fixed", [x], client_timeout=30).as_numpy("Y")
            except Exception as exc:
                result["grpc_error"] = exc

        threads = [threading.Thread(target=call), threading.Thread(target=call_grpc)]
        for t in threads:
            t.start()
        time.sleep(0.6)  # both requests are now sleeping inside the server
        proc.send_signal(signal.SIGTERM)
        for t in threads:
            t.join(20)
        assert "error" not in result and "grpc_error" not in result, result
        np.testing.assert_allclose(result["y"], [3.0, 3.0])
        np.testing.assert_allclose(result["g"], [6.0, 6.0])
        assert proc.wait(20) == 0
        with pytest.raises((ConnectionError, urllib.error.URLError)):
            urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/health/live", timeout=2)
        assert proc.stderr is not None
        logs = [json.loads(line) for line in proc.stderr.read().splitlines() if line.startswith("{")]
        msgs = [entry["msg"] for entry in logs]
        assert "ready" in msgs and "draining" in msgs and "stopped" in msgs
        assert all({"ts", "level", "logger", "msg"} <= set(entry) for entry in logs)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_load_fail_fault_exits_nonzero(small_repo: Path) -> None:
    proc, _, _ = start(small_repo, {"MODELSERVER_FAULT_LOAD_FAIL": "1"})
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 1
    assert "MODELSERVER_FAULT_LOAD_FAIL" in err
    assert "fixed" in err


def test_broken_model_exits_nonzero(tmp_path: Path) -> None:
    (tmp_path / "broken" / "1").mkdir(parents=True)
    (tmp_path / "broken" / "1" / "model.onnx").write_bytes(b"not an onnx model")
    code = main(["serve", "--model-repository", str(tmp_path), "--host", "127.0.0.1",
                 "--http-port", "0", "--grpc-port", "0", "--metrics-port", "0"])  # fmt: skip
    assert code == 1


def test_empty_repository_exits_nonzero(tmp_path: Path) -> None:
    code = main(["serve", "--model-repository", str(tmp_path), "--host", "127.0.0.1",
                 "--http-port", "0", "--grpc-port", "0", "--metrics-port", "0"])  # fmt: skip
    assert code == 1


def test_cli_flags_and_fetch_subcommand() -> None:
    args = build_parser().parse_args(
        [
            "serve",
            "--model-repository",
            "/m",
            "--max-request-bytes",
            "2Mi",
            "--device",
            "cpu",
            "--max-batch-size",
            "16",
            "--max-queue-delay-us",
            "500",
        ]
    )
    assert (args.max_request_bytes, args.device, args.max_batch_size, args.max_queue_delay_us) == (
        2 * 1024 * 1024, "cpu", 16, 500,
    )  # fmt: skip
    assert (args.host, args.http_port, args.grpc_port, args.metrics_port) == ("0.0.0.0", 8000, 8001, 8002)
    with pytest.raises(SystemExit) as info:
        build_parser().parse_args(["fetch", "--help"])
    assert info.value.code == 0


def test_injected_errors_and_latency(small_repo: Path) -> None:
    config = ServerConfig(
        model_repository=small_repo, host="127.0.0.1", http_port=0, grpc_port=0, metrics_port=0,
        faults=Faults(latency_ms=50, error_rate=1.0),
    )  # fmt: skip
    srv = ThreadedServer(config)
    running = srv.start()
    try:
        t0 = time.monotonic()
        with pytest.raises(InferenceServerException) as info:
            infer_fixed(running.handle.http_port)
        assert time.monotonic() - t0 >= 0.05
        assert info.value.status() == "500"
        with urllib.request.urlopen(running.metrics_url) as r:
            text = r.read().decode()
        assert 'nv_inference_request_failure{model="fixed",reason="injected",version="1"} 1.0' in text
    finally:
        srv.stop()


def test_not_ready_until_warmed_up(small_repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from modelserver import models
    from modelserver.session import ModelSession
    from modelserver.warmup import WarmupSample

    (small_repo / "fixed" / "config.pbtxt").write_text(
        'model_warmup [{ name: "zeros" batch_size: 1 inputs { key: "X" value: '
        "{ data_type: TYPE_FP32 dims: [2, 3] zero_data: true } } }]\n"
    )
    warmed = threading.Event()
    release = threading.Event()
    original = models.run_warmup

    def slow_warmup(session: ModelSession, samples: list[WarmupSample]) -> None:
        release.wait(10)  # hold the warm-up until the test has looked at readiness
        original(session, samples)
        assert [s.name for s in samples] == ["zeros"]
        warmed.set()

    monkeypatch.setattr(models, "run_warmup", slow_warmup)
    config = ServerConfig(model_repository=small_repo, host="127.0.0.1", http_port=0, grpc_port=0, metrics_port=0)
    srv = ThreadedServer(config)
    srv.thread.start()
    try:
        deadline = time.monotonic() + 10
        while not srv.handle.http_port and time.monotonic() < deadline:
            time.sleep(0.02)
        base = f"http://127.0.0.1:{srv.handle.http_port}"

        def status(path: str) -> int:
            try:
                with urllib.request.urlopen(base + path, timeout=5) as r:
                    return int(r.status)
            except urllib.error.HTTPError as exc:
                return int(exc.code)

        assert status("/v2/health/live") == 200
        assert status("/v2/health/ready") == 400
        assert status("/v2/models/fixed/ready") == 400
        assert not warmed.is_set()
        release.set()
        assert srv.ready.wait(10)
        assert warmed.is_set()
        assert status("/v2/health/ready") == 200
        assert status("/v2/models/fixed/ready") == 200
    finally:
        release.set()
        srv.stop()


def test_port_in_use_exits_nonzero(small_repo: Path, server: RunningServer) -> None:
    code = main(["serve", "--model-repository", str(small_repo), "--host", "127.0.0.1",
                 "--http-port", str(server.handle.http_port), "--grpc-port", "0", "--metrics-port", "0"])  # fmt: skip
    assert code == 1
    code = main(["serve", "--model-repository", str(small_repo), "--host", "127.0.0.1",
                 "--http-port", "0", "--grpc-port", str(server.handle.grpc_port), "--metrics-port", "0"])  # fmt: skip
    assert code == 1
