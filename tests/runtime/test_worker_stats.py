"""--workers without processes: counters summed across workers, the worker-count defaults, the
readiness gate of one worker."""

from __future__ import annotations

import argparse
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from modelserver.cli import build_parser
from modelserver.metrics import ServerMetrics
from modelserver.server import ServerConfig
from modelserver.worker_stats import merge, snapshot
from modelserver.workers import READY_MARKER, default_workers, intra_op_threads_per_worker, resolve_workers

from .conftest import ThreadedServer, fixed_graph, save_model


def _events(metrics: ServerMetrics, part: int) -> None:
    """A fixed sequence of requests, executions and cache lookups; ``part`` picks half of them
    (0 or 1), or all of them (-1)."""
    events = [
        ("ok", "m", 1, 120_000, 1), ("ok", "m", 1, 3_000_000, 4), ("fail", "m", 1, 50_000, "REJECTED"),
        ("exec", "m", 1, 40_000, 4), ("exec", "m", 1, 10_000, 1), ("ok", "other", 2, 900, 1),
        ("fail", "m", 1, 70_000, "BACKEND"), ("exec", "other", 2, 5_000, 2), ("cache", "m", 1, 700, True),
        ("cache", "m", 1, 900, False), ("ok", "m", 1, 2_000_000_000, 1), ("exec", "m", 1, 30_000, 4),
    ]  # fmt: skip
    for i, (kind, model, version, ns, arg) in enumerate(events):
        if part >= 0 and i % 2 != part:
            continue
        st = metrics.stats(model, version)
        st.cache_enabled = model == "m"
        if kind == "ok":
            st.observe_success(ns, int(arg))
        elif kind == "fail":
            st.observe_failure(str(arg), ns)
        elif kind == "exec":
            st.observe_execution(ns // 2, ns, requests=2, batch_size=int(arg), input_ns=ns // 10, output_ns=ns // 5)
        else:
            st.observe_cache(bool(arg), ns)


def test_counters_of_two_workers_sum_to_those_of_one_process() -> None:
    one = ServerMetrics()
    _events(one, -1)
    workers = [ServerMetrics(), ServerMetrics()]
    _events(workers[0], 0)
    _events(workers[1], 1)
    total = ServerMetrics()
    for w in workers:
        merge(total, snapshot(w))
    # Same exposition, byte for byte: every nv_* series, label and value of the single process.
    assert total.exposition() == one.exposition()
    assert b'nv_inference_request_failure{model="m",reason="BACKEND",version="1"} 1.0' in total.exposition()
    key = ("m", "1")
    assert total.models[key].batch_stats == one.models[key].batch_stats
    assert total.models[key].last_inference_ms == max(w.models[key].last_inference_ms for w in workers)


def test_snapshot_survives_json_between_processes() -> None:
    from modelserver import jsonio

    source = ServerMetrics()
    _events(source, -1)
    total = ServerMetrics()
    merge(total, jsonio.loads(jsonio.dumps(snapshot(source))))
    assert total.exposition() == source.exposition()


@pytest.mark.parametrize(
    ("limit", "cpus", "expected"),
    [(None, 8, 1), (2.0, 8, 2), (2.5, 8, 2), (0.5, 8, 1), (16.0, 4, 4), (1.0, 1, 1)],
)
def test_default_workers_follow_the_cpu_limit(limit: float | None, cpus: int, expected: int) -> None:
    assert default_workers(limit, cpus) == expected


def test_intra_op_threads_fit_the_cores() -> None:
    assert intra_op_threads_per_worker(2, 2) == 1
    assert intra_op_threads_per_worker(2, 8) == 4
    assert intra_op_threads_per_worker(4, 2) == 1


def _serve_args(*extra: str) -> argparse.Namespace:
    return build_parser().parse_args(["serve", "--model-repository", "/m", "--device", "cpu", *extra])


def test_workers_flag_and_explicit_model_control() -> None:
    assert resolve_workers(_serve_args("--workers", "3")) == 3
    # Model load/unload would reach one process only: the default falls back to one worker ...
    assert resolve_workers(_serve_args("--model-control-mode", "explicit")) == 1
    # ... and asking for more is refused, naming both flags.
    with pytest.raises(ValueError, match=r"--workers.*--model-control-mode explicit"):
        resolve_workers(_serve_args("--model-control-mode", "explicit", "--workers", "2"))
    with pytest.raises(SystemExit):
        build_parser().parse_args(["serve", "--model-repository", "/m", "--workers", "0"])


def _ready_status(port: int) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/health/ready", timeout=5) as r:
            return int(r.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def test_a_worker_is_ready_only_once_the_supervisor_says_all_are(tmp_path: Path) -> None:
    save_model(fixed_graph(), tmp_path / "repo" / "fixed" / "1" / "model.onnx")
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    config = ServerConfig(
        model_repository=tmp_path / "repo", host="127.0.0.1", http_port=0, grpc_port=0, metrics_port=0,
        worker_dir=run_dir, worker_index=3,
    )  # fmt: skip
    srv = ThreadedServer(config)
    running = srv.start()
    try:
        assert (run_dir / "ready-3").exists()  # this worker told the supervisor
        assert (run_dir / "worker-3.sock").exists()  # and serves its counters there
        assert _ready_status(running.handle.http_port) == 400  # but the others may still be loading
        (run_dir / READY_MARKER).touch()
        assert _ready_status(running.handle.http_port) == 200
        (run_dir / READY_MARKER).unlink()  # the supervisor is stopping
        assert _ready_status(running.handle.http_port) == 400
    finally:
        srv.stop()
