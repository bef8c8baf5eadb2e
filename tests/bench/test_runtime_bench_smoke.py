"""Fast checks of bench/runtime.py's pure helpers and its load generator (no model servers)."""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "runtime.py"


@pytest.fixture(scope="module")
def rt() -> ModuleType:
    # bench/ is not a package: load the script as a module (its heavy imports are lazy).
    spec = importlib.util.spec_from_file_location("bench_runtime", BENCH)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules["bench_runtime"] = mod  # dataclasses look the module up while the class is built
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize("q", [0, 1, 25, 50, 90, 99, 100])
def test_percentile_matches_numpy(rt: ModuleType, q: float) -> None:
    values = list(np.random.default_rng(1).exponential(size=257))
    assert rt.percentile(values, q) == pytest.approx(float(np.percentile(values, q)))


def test_percentile_edges(rt: ModuleType) -> None:
    assert math.isnan(rt.percentile([], 50))
    assert rt.percentile([3.0], 99) == 3.0
    assert rt.percentile([4.0, 1.0, 2.0, 3.0], 50) == 2.5  # unsorted input
    with pytest.raises(ValueError):
        rt.percentile([1.0], 101)


def test_summarize_rates_and_latency_units(rt: ModuleType) -> None:
    r = rt.summarize("x", "mlp", 8, 32, [0.001, 0.002, 0.003], 1, 2.0)
    assert r.requests == 3 and r.errors == 1
    assert r.req_per_s == pytest.approx(1.5)
    assert r.samples_per_s == pytest.approx(48.0)
    assert r.p50_ms == pytest.approx(2.0)


def _res(rt: ModuleType, target: str, model: str, c: int, rps: float, p50_s: float, batch: int = 1) -> Any:
    # duration 1 s: req/s == number of latencies
    return rt.summarize(target, model, c, batch, [p50_s] * int(rps), 0, 1.0)


def test_compute_goals_ratios_and_verdicts(rt: ModuleType) -> None:
    results = [
        _res(rt, "modelserver", "mlp", 32, 3000, 0.004),
        _res(rt, "modelserver", "mlp", 1, 500, 0.0003),
        _res(rt, "triton", "mlp", 32, 1500, 0.01),
        _res(rt, "mlserver", "mlp", 32, 1200, 0.02),
        _res(rt, "ort-raw", "mlp", 1, 100, 0.0001, batch=32),  # 3200 samples/s
        _res(rt, "ort-raw", "mlp", 1, 1000, 0.0001),
    ]
    goals = {g.name: g for g in rt.compute_goals(results, ["mlp"])}
    assert goals["req/s c=32 vs triton-python"].value == pytest.approx(2.0)
    assert goals["req/s c=32 vs triton-python"].met is True
    assert goals["req/s c=32 vs mlserver"].value == pytest.approx(2.5)
    assert goals["req/s c=32 vs mlserver"].met is False
    assert goals["samples/s c=32 vs raw ORT batch 32"].value == pytest.approx(3000 / 3200)
    assert goals["samples/s c=32 vs raw ORT batch 32"].met is True
    overhead = goals["p50 overhead c=1 over raw ORT (ms)"]
    assert overhead.value == pytest.approx(0.2)
    assert overhead.met is True  # lower is better


def test_compute_goals_missing_peer_is_not_a_verdict(rt: ModuleType) -> None:
    goals = rt.compute_goals([_res(rt, "modelserver", "cnn", 32, 10, 0.01)], ["cnn"])
    assert all(g.value is None and g.met is None for g in goals)
    assert "n/a" in rt.format_goals(goals)


def test_tables_render_every_result(rt: ModuleType) -> None:
    rows = [_res(rt, "triton", "cnn", 8, 5, 0.002), _res(rt, "ort-raw", "mlp", 1, 7, 0.001, batch=32)]
    rows[0].avg_batch = 3.5
    table = rt.format_table(rows).splitlines()
    assert len(table) == 4 and table[2].startswith("triton") and table[3].startswith("ort-raw")
    assert "224.0" in table[3]  # samples/s = 7 req/s x batch 32
    diag = rt.format_diagnostics(rows).splitlines()
    assert "3.5" in diag[2] and diag[3].split()[3] == "-"


def test_prom_sum_picks_exact_metric_and_model(rt: ModuleType) -> None:
    text = "\n".join(
        [
            "# TYPE nv_inference_count gauge",
            'nv_inference_count{model="mlp",version="1"} 10',
            'nv_inference_count{model="mlp",version="2"} 5',
            'nv_inference_count{model="cnn",version="1"} 99',
            'nv_inference_count_extra{model="mlp",version="1"} 1000',
        ]
    )
    assert rt.prom_sum(text, "nv_inference_count", "mlp") == 15
    assert rt.prom_sum(text, "nv_inference_exec_count", "mlp") == 0


def test_parse_args_quick_defaults(rt: ModuleType) -> None:
    a = rt.parse_args(["--quick", "--skip-triton"])
    assert (a.duration, a.warmup, a.skip_triton, a.skip_mlserver) == (2.0, 0.5, True, False)
    assert rt.parse_args(["--duration", "3"]).duration == 3.0
    with pytest.raises(SystemExit):
        rt.parse_args(["--duration", "0"])


def test_load_generator_against_trivial_server(rt: ModuleType) -> None:
    server = rt.trivial_server()
    spec = rt.MODELS[0]
    with rt.running(server, [], 15):
        r = rt.run_load(
            "client-ceil", spec, f"{server.base}/v2/models/mlp/infer", rt.infer_payload(spec, False), 4, 0.3, 0.1
        )
    assert r.errors == 0 and r.requests > 10
    assert r.req_per_s > 0 and 0 < r.p50_ms <= r.p99_ms
    assert server.proc.poll() is not None  # stopped on exit


def test_parse_http_response_content_length_and_partial(rt: ModuleType) -> None:
    resp = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX: y\r\n\r\nhello"
    assert rt.parse_http_response(resp) == (200, len(resp))
    assert rt.parse_http_response(resp[:-1]) is None  # body incomplete
    assert rt.parse_http_response(resp[:10]) is None  # headers incomplete
    two = resp + b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n"
    assert rt.parse_http_response(two) == (200, len(resp))  # only the first response is consumed


def test_parse_http_response_chunked(rt: ModuleType) -> None:
    resp = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n3;x=1\r\nabc\r\n0\r\n\r\n"
    assert rt.parse_http_response(resp) == (200, len(resp))
    assert rt.parse_http_response(resp[:-2]) is None


def test_parse_http_response_rejects_garbage(rt: ModuleType) -> None:
    with pytest.raises(ValueError):
        rt.parse_http_response(b"garbage\r\n\r\n")
    with pytest.raises(ValueError):
        rt.parse_http_response(b"HTTP/1.1 200 OK\r\n\r\n")  # no length: can't find the end


def test_http_post_bytes(rt: ModuleType) -> None:
    payload = rt.Payload(b"{}", (("Content-Type", "application/json"), ("X-A", "1")))
    host, port, data = rt.http_post_bytes("http://127.0.0.1:8123/v2/models/m/infer", payload)
    assert (host, port) == ("127.0.0.1", 8123)
    assert data.startswith(b"POST /v2/models/m/infer HTTP/1.1\r\n")
    assert b"\r\nX-A: 1\r\n" in data and b"Content-Type: application/json\r\n" in data
    assert b"Content-Length: 2\r\n" in data and data.endswith(b"\r\n\r\n{}")


def test_payloads_json_and_binary(rt: ModuleType) -> None:
    spec = rt.MODELS[0]
    x = rt.sample_input(spec).ravel()
    js = rt.infer_payload(spec, False)
    req = json.loads(js.body)["inputs"][0]
    assert req["shape"] == [1, *spec.input_shape] and np.allclose(req["data"], x)
    binary = rt.infer_payload(spec, True)
    hlen = int(dict(binary.headers)[rt.BINARY_HEADER])
    header = json.loads(binary.body[:hlen])
    assert header["inputs"][0]["parameters"]["binary_data_size"] == x.size * 4
    assert np.array_equal(np.frombuffer(binary.body[hlen:], "<f4"), x)


def test_decode_output_json_and_binary(rt: ModuleType) -> None:
    y = np.arange(10, dtype=np.float32)
    as_json = json.dumps({"outputs": [{"name": "output", "data": y.tolist()}]}).encode()
    assert np.array_equal(rt.decode_output(as_json, None), y)
    head = json.dumps({"outputs": [{"name": "output", "parameters": {"binary_data_size": 40}}]}).encode()
    assert np.array_equal(rt.decode_output(head + y.tobytes(), str(len(head))), y)


@pytest.mark.parametrize("client", ["raw", "aiohttp"])
def test_both_clients_against_trivial_server(rt: ModuleType, client: str) -> None:
    server = rt.trivial_server()
    spec = rt.MODELS[1]
    with rt.running(server, [], 15):
        url = f"{server.base}/v2/models/cnn/infer"
        r = rt.run_load("c", spec, url, rt.infer_payload(spec, False), 3, 0.3, 0.1, client=client)
    assert r.errors == 0 and r.requests > 10 and r.client_cpu_us > 0


def test_best_of_keeps_faster_run_per_point(rt: ModuleType) -> None:
    a = [_res(rt, "ort-raw", "mlp", 1, 100, 0.001), _res(rt, "ort-raw", "mlp", 1, 10, 0.01, batch=32)]
    b = [_res(rt, "ort-raw", "mlp", 1, 50, 0.002), _res(rt, "ort-raw", "mlp", 1, 20, 0.005, batch=32)]
    best = {r.batch: r for r in rt.best_of(a, b)}
    assert len(best) == 2
    assert best[1].req_per_s == 100 and best[32].samples_per_s == 640
