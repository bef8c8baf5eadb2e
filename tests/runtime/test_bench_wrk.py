"""bench/runtime_wrk.py: wrk's output parser, and the Lua script posting OIP JSON to a live
modelserver through the real ``wrk`` (the Debian package; CI installs it, a missing one fails)."""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
from pathlib import Path
from types import ModuleType

import pytest

from .conftest import RunningServer
from .test_batching_metrics import sample, scrape

BENCH = Path(__file__).resolve().parents[2] / "bench" / "runtime_wrk.py"

WRK_OUTPUT = """Running 4s test @ http://127.0.0.1:8000/v2/models/mlp/infer
  2 threads and 8 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.34ms    3.01ms  67.36ms   96.12%
    Req/Sec     2.63k   300.00     3.10k    70.00%
  Latency Distribution
     50%  850us
     75%    1.10ms
     90%    1.60ms
     99%   2.50s
  20917 requests in 4.00s, 5.12MB read
  Socket errors: connect 0, read 1, write 0, timeout 2
  Non-2xx or 3xx responses: 4
Requests/sec:   5229.30
Transfer/sec:      1.28MB
"""


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_runtime_wrk", BENCH)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules["bench_runtime_wrk"] = mod
    spec.loader.exec_module(mod)
    return mod


def test_parse_wrk(bench: ModuleType) -> None:
    rps, p50, p99, errors = bench.parse_wrk(WRK_OUTPUT)
    assert rps == pytest.approx(5229.3)
    assert p50 == pytest.approx(0.85) and p99 == pytest.approx(2500.0)
    assert errors == 4 + 3
    with pytest.raises(ValueError, match="cannot parse"):
        bench.parse_wrk("wrk: connection refused")


def test_ratios_take_the_median_per_client(bench: ModuleType) -> None:
    P = bench.Point
    points = [
        P("wrk", "modelserver", "mlp", 8, 300.0, 1, 1, 0),
        P("wrk", "modelserver", "mlp", 8, 100.0, 1, 1, 0),
        P("wrk", "triton", "mlp", 8, 100.0, 1, 1, 0),
        P("raw", "modelserver", "mlp", 8, 50.0, 1, 1, 0),
    ]
    assert bench.ratios(points, "wrk", "mlp", 8) == pytest.approx(2.0)
    assert bench.ratios(points, "raw", "mlp", 8) is None  # no Triton point for that client


def test_lua_script_posts_oip_json_to_modelserver(bench: ModuleType, server: RunningServer, tmp_path: Path) -> None:
    assert shutil.which("wrk") is not None, "wrk is missing: apt-get install wrk (.ci/run installs it)"
    body = {
        "inputs": [
            {"name": "INPUT0", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]},
            {"name": "INPUT1", "shape": [1, 4], "datatype": "FP32", "data": [1, 1, 1, 1]},
        ]
    }
    path = tmp_path / "body.json"
    path.write_text(json.dumps(body))
    before = sample(scrape(server), "nv_inference_request_success", model="add_sub", version="2")
    rps, p50, p99, errors = bench.run_wrk(f"http://{server.http_url}/v2/models/add_sub/infer", path, 2, 1.0)
    after = sample(scrape(server), "nv_inference_request_success", model="add_sub", version="2")
    assert errors == 0 and rps > 0 and 0 < p50 <= p99
    assert after - before >= rps * 0.5  # the requests wrk counted were real successful inferences
