"""``modelserver serve --workers 2`` as a real command: requests spread over both processes,
/metrics summed across them with a single process's series, SIGTERM drains every worker, a
crashed worker stops the server with a non-zero exit."""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import pytest

from modelserver import jsonio

from .conftest import fixed_graph, save_model
from .test_process import free_port, stop_process, wait_ready

pytestmark = pytest.mark.timeout(90)
BODY = json.dumps({"inputs": [{"name": "X", "datatype": "FP32", "shape": [2, 3], "data": [1, 2, 3, 4, 5, 6]}]})


@dataclass
class Workers:
    proc: subprocess.Popen[str]
    http_port: int
    metrics_port: int
    pids: list[int]
    run_dir: Path
    log: list[dict[str, Any]]


def _start(repo: Path, *extra: str, env: dict[str, str] | None = None) -> Workers:
    metrics_port = free_port()
    cmd = [
        sys.executable, "-m", "modelserver", "serve", "--model-repository", str(repo), "--host", "127.0.0.1",
        "--http-port", "0", "--grpc-port", "0", "--metrics-port", str(metrics_port), "--drain-timeout", "10",
        "--workers", "2", *extra,
    ]  # fmt: skip
    proc = subprocess.Popen(
        cmd, env={**os.environ, "MODELSERVER_TEST_FAULTS": "1", **(env or {})}, stderr=subprocess.PIPE, text=True
    )
    log: list[dict[str, Any]] = []
    assert proc.stderr is not None
    for line in proc.stderr:  # port 0: the supervisor picks the shared port and logs it
        if line.startswith("{"):
            log.append(json.loads(line))
            if log[-1]["msg"] == "workers started":
                break
    else:
        raise AssertionError(f"supervisor exited with {proc.wait()} before starting workers")
    started = log[-1]
    threading.Thread(target=_collect, args=(proc, log), daemon=True).start()
    w = Workers(proc, started["http_port"], metrics_port, started["pids"], Path(started["run_dir"]), log)
    try:
        wait_ready(proc, w.http_port)
    except BaseException:
        _end(w)  # no server left behind by a failed start
        raise
    return w


def _collect(proc: subprocess.Popen[str], log: list[dict[str, Any]]) -> None:
    assert proc.stderr is not None
    for line in proc.stderr:
        if line.startswith("{"):
            log.append(json.loads(line))


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    save_model(fixed_graph(), tmp_path / "fixed" / "1" / "model.onnx")
    return tmp_path


@pytest.fixture
def workers(repo: Path) -> Iterator[Workers]:
    w = _start(repo)
    yield w
    _end(w)


def _end(w: Workers) -> None:
    stop_process(w.proc)


def _infer_on_new_connection(port: int) -> list[float]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("POST", "/v2/models/fixed/infer", BODY, {"Content-Type": "application/json"})
        resp = conn.getresponse()
        body = resp.read()
        assert resp.status == 200, body
        return list(json.loads(body)["outputs"][0]["data"])
    finally:
        conn.close()


def _worker_counters(run_dir: Path, index: int) -> list[dict[str, Any]]:
    """What one worker reports on its stats socket (the supervisor sums these)."""
    import asyncio

    async def fetch() -> list[dict[str, Any]]:
        connector = aiohttp.UnixConnector(path=str(run_dir / f"worker-{index}.sock"))
        async with aiohttp.ClientSession(connector=connector) as session, session.get("http://w/stats") as r:
            rows: list[dict[str, Any]] = jsonio.loads(await r.read())
            return rows

    return asyncio.run(fetch())


def _scrape(port: int) -> str:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", "/metrics")
        return conn.getresponse().read().decode()
    finally:
        conn.close()


def _value(text: str, series: str) -> float:
    m = re.search(rf"^{re.escape(series)} (\S+)$", text, re.M)
    assert m is not None, f"{series} missing from\n{text}"
    return float(m.group(1))


def _series(text: str) -> set[str]:
    """Every sample's name and labels, without its value, and every HELP/TYPE line."""
    return {line.rsplit(" ", 1)[0] if not line.startswith("#") else line for line in text.splitlines() if line}


def test_requests_spread_over_both_workers_and_metrics_sum_them(workers: Workers, repo: Path) -> None:
    sent = 40  # fresh connections, one after the other: the supervisor hands them out in turn
    for _ in range(sent):
        assert _infer_on_new_connection(workers.http_port) == [6.0, 15.0]
    per_worker = [sum(row["success"] for row in _worker_counters(workers.run_dir, i)) for i in range(2)]
    assert per_worker == [sent // 2, sent // 2]  # both processes served requests, evenly
    text = _scrape(workers.metrics_port)
    assert _value(text, 'nv_inference_request_success{model="fixed",version="1"}') == sent
    assert _value(text, 'nv_inference_exec_count{model="fixed",version="1"}') == sent
    assert _value(text, 'nv_inference_request_duration_seconds_count{model="fixed",version="1"}') == sent
    assert _value(text, 'nv_inference_request_failure{model="fixed",reason="REJECTED",version="1"}') == 0
    # The statistics extension, answered by one worker, sums every worker's counters as well.
    for _ in range(4):  # fresh connections: whichever worker answers
        conn = http.client.HTTPConnection("127.0.0.1", workers.http_port, timeout=10)
        conn.request("GET", "/v2/models/fixed/stats")
        stats = json.loads(conn.getresponse().read())["model_stats"][0]
        conn.close()
        assert stats["inference_stats"]["success"]["count"] == sent
        assert stats["execution_count"] == sent

    # The same traffic on one process gives the very same series (names, labels, HELP/TYPE lines).
    single = _start_single(repo)
    try:
        for _ in range(sent):
            _infer_on_new_connection(single.http_port)
        single_text = _scrape(single.metrics_port)
    finally:
        _end(single)
    assert _series(text) == _series(single_text)
    assert sorted(n for n in _series(text) if n.startswith("# TYPE nv_")) == sorted(
        n for n in _series(single_text) if n.startswith("# TYPE nv_")
    )


def _start_single(repo: Path) -> Workers:
    http_port, metrics_port = free_port(), free_port()
    cmd = [
        sys.executable, "-m", "modelserver", "serve", "--model-repository", str(repo), "--host", "127.0.0.1",
        "--http-port", str(http_port), "--grpc-port", str(free_port()), "--metrics-port", str(metrics_port),
        "--workers", "1",
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    wait_ready(proc, http_port)
    return Workers(proc, http_port, metrics_port, [proc.pid], Path(), [])


def _connections(pid: int, port: int) -> int:
    """Established connections to ``port`` that process ``pid`` has accepted (holds as a socket)."""
    established = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "01":
                established.add(fields[9])
    held = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:  # closed meanwhile
            continue
        held += target.startswith("socket:[") and target[8:-1] in established
    return held


def test_sigterm_drains_the_in_flight_requests_of_every_worker(repo: Path) -> None:
    w = _start(repo, env={"MODELSERVER_FAULT_LATENCY_MS": "3000"})
    try:
        results: list[list[float] | BaseException] = []

        def call() -> None:
            try:
                results.append(_infer_on_new_connection(w.http_port))
            except BaseException as exc:
                results.append(exc)

        threads = [threading.Thread(target=call) for _ in range(16)]
        for t in threads:
            t.start()
        # Every request accepted by a worker (each holds its connection), both workers busy.
        deadline = time.monotonic() + 2.5
        while time.monotonic() < deadline:
            accepted = [_connections(pid, w.http_port) for pid in w.pids]
            if sum(accepted) == 16 and min(accepted) > 0:
                break
            time.sleep(0.02)
        else:
            pytest.fail(f"requests not accepted by both workers in time: {accepted}")
        w.proc.send_signal(signal.SIGTERM)
        for t in threads:
            t.join(30)
        assert results == [[6.0, 15.0]] * 16
        assert w.proc.wait(30) == 0
        for pid in w.pids:  # every worker is gone, not orphaned
            assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text()
        msgs = [(e["logger"], e["msg"]) for e in w.log]
        assert msgs.count(("modelserver.server", "draining")) == 2
        assert msgs.count(("modelserver.server", "stopped")) == 2
        assert ("modelserver.workers", "stopped") in msgs
        assert not w.run_dir.exists()  # the run directory is cleaned up
    finally:
        _end(w)


def test_a_crashed_worker_stops_the_server_with_a_nonzero_exit(workers: Workers) -> None:
    victim, survivor = workers.pids
    os.kill(victim, signal.SIGKILL)
    assert workers.proc.wait(30) == 1  # killed by a signal: exit 1, so the kubelet restarts the container
    crashed = [e for e in workers.log if e["msg"] == "worker exited; stopping the others"]
    assert crashed and crashed[0]["pid"] == victim and crashed[0]["code"] == -signal.SIGKILL
    assert not Path(f"/proc/{survivor}").exists() or "zombie" in Path(f"/proc/{survivor}/status").read_text()
    assert any(e["msg"] == "draining" for e in workers.log)  # the survivor drained rather than being killed


def test_a_worker_that_fails_to_start_fails_the_server(tmp_path: Path) -> None:
    (tmp_path / "broken" / "1").mkdir(parents=True)
    (tmp_path / "broken" / "1" / "model.onnx").write_bytes(b"not an onnx model")
    cmd = [
        sys.executable, "-m", "modelserver", "serve", "--model-repository", str(tmp_path), "--host", "127.0.0.1",
        "--http-port", "0", "--grpc-port", "0", "--metrics-port", str(free_port()), "--workers", "2",
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert "broken" in proc.stderr and "startup failed" in proc.stderr


def test_grpc_is_served_by_the_workers_too(workers: Workers) -> None:
    import tritonclient.grpc as tg

    grpc_port = next(e["grpc_port"] for e in workers.log if e["msg"] == "workers started")
    client = tg.InferenceServerClient(f"127.0.0.1:{grpc_port}")
    x = tg.InferInput("X", [2, 3], "FP32")
    x.set_data_from_numpy(np.arange(6, dtype=np.float32).reshape(2, 3))
    np.testing.assert_allclose(client.infer("fixed", [x]).as_numpy("Y"), [3.0, 12.0])
    assert client.is_server_ready()
    stats = client.get_inference_statistics("fixed", as_json=True)["model_stats"][0]
    assert int(stats["inference_stats"]["success"]["count"]) == 1  # summed over both workers: exactly this call
