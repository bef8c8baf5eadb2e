"""PromQL text of the prometheus provider, and its answers to a misbehaving server (no Prometheus needed)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from modeldeploy.metrics import MetricsUnavailable, PrometheusProvider, RevisionTarget
from modeldeploy.metrics.prometheus import builtin_queries, render_query, window

TARGET = RevisionTarget("ml", "resnet", "resnet-a41d0", "resnet")


def test_window_rounds_up_to_whole_seconds() -> None:
    assert (window(30), window(29.2), window(0.1)) == ("30s", "30s", "1s")


def test_builtin_queries_select_namespace_revision_and_model() -> None:
    queries = builtin_queries(TARGET, 30)
    sel = 'namespace="ml",revision="resnet-a41d0",model="resnet"'
    assert queries["success"] == f"sum(increase(nv_inference_request_success{{{sel}}}[30s]))"
    assert queries["p99"] == ("histogram_quantile(0.99, sum by (le) "
                              f"(rate(nv_inference_request_duration_seconds_bucket{{{sel}}}[30s])))")
    odd = RevisionTarget("ml", "x", "r", 'we"ird\\')
    assert 'model="we\\"ird\\\\"' in builtin_queries(odd, 5)["failure"]


def test_custom_query_placeholders() -> None:
    text = 'max(x{namespace="{{namespace}}",deployment="{{name}}",revision="{{revision}}"}[{{interval}}])'
    assert render_query(text, TARGET, 12.5) == 'max(x{namespace="ml",deployment="resnet",revision="resnet-a41d0"}[13s])'


class Misbehaving(BaseHTTPRequestHandler):
    mode = "ok"

    def do_GET(self) -> None:
        if self.mode == "slow":
            time.sleep(1.5)
        status, body = {
            "ok": (200, {"status": "success", "data": {"resultType": "vector", "result": [
                {"metric": {}, "value": [0, "5"]}]}}),
            "error": (500, {"status": "error", "error": "boom"}),
            "garbage": (200, "not json"),
            "matrix": (200, {"status": "success", "data": {"resultType": "matrix", "result": []}}),
        }.get(self.mode, (200, {}))
        payload = (body if isinstance(body, str) else json.dumps(body)).encode()
        self.send_response(status)
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def fake() -> Iterator[tuple[PrometheusProvider, type[Misbehaving]]]:
    handler = type("Handler", (Misbehaving,), {"mode": "ok"})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield PrometheusProvider(f"http://127.0.0.1:{server.server_address[1]}", timeout=0.5), handler
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("mode", ["error", "garbage", "slow"])
def test_errors_and_timeouts_make_metrics_unavailable(fake: tuple[PrometheusProvider, type[Misbehaving]],
                                                      mode: str) -> None:
    """No answer is no data, not an inconclusive interval: the analysis holds (MetricsUnavailable)."""
    provider, handler = fake
    assert provider.sample(TARGET, 30, {}) is not None
    handler.mode = mode
    with pytest.raises(MetricsUnavailable):
        provider.sample(TARGET, 30, {})


def test_non_instant_results_have_no_value(fake: tuple[PrometheusProvider, type[Misbehaving]]) -> None:
    provider, handler = fake
    handler.mode = "matrix"
    assert provider.query("x[5m]") is None
    assert provider.sample(TARGET, 30, {}) is None
