"""The operator's own HTTP requests: no redirects, capped bodies, no raw error bodies in messages, and a
Prometheus only from the admin's allow-list. Real HTTP servers on 127.0.0.1."""

from __future__ import annotations

import http.server
import json
from collections.abc import Iterator
from typing import Any

import pytest

from modeldeploy import outbound
from modeldeploy.api.spec import Provider
from modeldeploy.gates import run_gates
from modeldeploy.metrics import MetricsUnavailable, PrometheusProvider, RefusedProvider, RevisionTarget, provider_for
from modeldeploy.metrics.allowlist import allowed
from modeldeploy.metrics.direct import DirectProvider
from modeldeploy.metrics.prometheus import QueryError

from ..answering_server import Answer, Start, answering_servers

SECRET_PAGE = b"<html>internal admin page: password=hunter2</html>"


@pytest.fixture
def serve(monkeypatch: pytest.MonkeyPatch) -> Iterator[Start]:
    """serve(answer) -> (base URL, paths requested so far)."""
    for var in ("http_proxy", "HTTP_PROXY"):
        monkeypatch.delenv(var, raising=False)
    yield from answering_servers()


def reply(status: int, body: bytes = b"", headers: dict[str, str] | None = None, *,
          length: bool = True) -> Answer:
    def answer(handler: http.server.BaseHTTPRequestHandler) -> None:
        handler.send_response(status)
        if length:
            handler.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            handler.send_header(key, value)
        handler.end_headers()
        handler.wfile.write(body)
    return answer


def test_a_redirect_is_not_followed(serve: Any) -> None:
    target, target_paths = serve(reply(200, SECRET_PAGE))
    origin, _ = serve(reply(302, headers={"Location": f"{target}/admin"}))
    with pytest.raises(outbound.Redirected, match=r"answered a redirect \(HTTP 302\), which is not followed"):
        outbound.request("GET", f"{origin}/metrics", max_bytes=1024, timeout=5)
    assert target_paths == []


@pytest.mark.parametrize("length", [True, False])
def test_an_answer_over_the_cap_is_refused(serve: Any, length: bool) -> None:
    url, _ = serve(reply(200, b"x" * 5000, length=length))
    with pytest.raises(outbound.TooLarge, match="limit of 4096"):
        outbound.request("GET", url, max_bytes=4096, timeout=5)
    assert outbound.request("GET", url, max_bytes=5000, timeout=5) == b"x" * 5000


def test_an_error_body_never_reaches_the_message(serve: Any) -> None:
    url, _ = serve(reply(500, SECRET_PAGE))
    with pytest.raises(outbound.HttpStatus) as raised:
        outbound.request("GET", f"{url}/x?token=abc", max_bytes=4096, timeout=5)
    assert str(raised.value) == f"{url}/x answered HTTP 500"  # no body, no query
    assert raised.value.body == SECRET_PAGE  # kept for callers that parse it


def test_nothing_listening_is_unreachable() -> None:
    with pytest.raises(outbound.Unreachable):
        outbound.request("GET", "http://127.0.0.1:9/", max_bytes=10, timeout=2)


def test_the_direct_scraper_ignores_redirects_and_floods(serve: Any) -> None:
    target, target_paths = serve(reply(200, b"nv_inference_request_success 1\n"))
    redirecting, _ = serve(reply(301, headers={"Location": f"{target}/metrics"}))
    flooding, _ = serve(reply(200, b"#" * (outbound.METRICS_BODY_LIMIT + 1), length=False))
    scraper = DirectProvider()
    assert scraper._scrape(redirecting.removeprefix("http://"), "m") == (
        f"{redirecting}/metrics answered a redirect (HTTP 301), which is not followed")
    assert scraper._scrape(flooding.removeprefix("http://"), "m") == (
        f"{flooding}/metrics answered more than the limit of {outbound.METRICS_BODY_LIMIT} bytes")
    assert target_paths == []


def test_prometheus_errors_are_excerpted_and_sanitised(serve: Any) -> None:
    error = {"status": "error", "errorType": "bad_data", "error": "parse error\n\x1b[31m" + "y" * 500}
    url, _ = serve(reply(400, json.dumps(error).encode()))
    with pytest.raises(QueryError) as raised:
        PrometheusProvider(url).query("up")
    message = str(raised.value)
    assert message.startswith(f"up: {url}/api/v1/query answered HTTP 400: bad_data: parse error [31m")
    assert "\n" not in message and "\x1b" not in message and len(message) < 400


def test_a_prometheus_redirect_makes_metrics_unavailable(serve: Any) -> None:
    target, target_paths = serve(reply(200, b'{"status":"success","data":{"resultType":"scalar","result":[0,"1"]}}'))
    url, _ = serve(reply(307, headers={"Location": f"{target}/api/v1/query"}))
    with pytest.raises(MetricsUnavailable, match="not followed"):
        PrometheusProvider(url).sample(RevisionTarget("ml", "resnet", "resnet-a", "resnet"), 30, {})
    assert target_paths == []


def _gates_against(url: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    from types import SimpleNamespace

    import modeldeploy.gates as gates

    monkeypatch.setattr(gates, "HTTP_PORT", int(url.rsplit(":", 1)[1]))
    pods = [SimpleNamespace(ready=True, address="127.0.0.1")]
    observed = SimpleNamespace(pods_of=lambda revision: pods, name="resnet", namespace="ml")
    spec = SimpleNamespace(rollout=SimpleNamespace(gates=SimpleNamespace(signature=True, smoke_test=None)),
                           model=SimpleNamespace(name=None), access=None)
    return run_gates(None, observed, spec, "resnet-a", "resnet-b")  # type: ignore[arg-type]


def test_gates_report_the_status_code_not_the_body(serve: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    url, _ = serve(reply(500, SECRET_PAGE))
    result = _gates_against(url, monkeypatch)
    assert result is not None and not result.passed
    assert result.message == f"gates: {url}/v2/models/resnet answered HTTP 500"


def _metadata_of(size: int) -> bytes:
    """A model metadata answer (as modelserver's) padded to exactly `size` bytes of JSON."""
    tensors = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 4]}],
               "outputs": [{"name": "y", "datatype": "FP32", "shape": [-1, 2]}]}
    head = json.dumps({"name": "resnet", **tensors, "padding": ""}).encode()
    body = head[:-2] + b" " * (size - len(head)) + head[-2:]
    assert len(body) == size and json.loads(body)["inputs"] == tensors["inputs"]
    return body


@pytest.mark.parametrize("length", [True, False])
def test_model_metadata_over_one_mib_fails_the_gates_naming_the_limit(serve: Any, monkeypatch: pytest.MonkeyPatch,
                                                                      length: bool) -> None:
    assert outbound.METADATA_BODY_LIMIT == 2**20
    url, paths = serve(reply(200, _metadata_of(outbound.METADATA_BODY_LIMIT + 1), length=length))
    result = _gates_against(url, monkeypatch)
    assert paths == ["/v2/models/resnet"]  # refused at the canary's answer: the stable is not asked
    assert result is not None and not result.passed
    assert result.message.startswith(f"gates: {url}/v2/models/resnet answered ")
    assert f"limit of {2**20}" in result.message, result.message


def test_model_metadata_just_under_one_mib_passes_the_gates(serve: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    url, paths = serve(reply(200, _metadata_of(outbound.METADATA_BODY_LIMIT - 1)))
    result = _gates_against(url, monkeypatch)
    assert paths == ["/v2/models/resnet"] * 2  # canary and stable (one server plays both)
    assert result is not None and result.passed, result


@pytest.mark.parametrize("code", [429, 503])
def test_a_busy_or_unavailable_pod_is_asked_again_not_failed(code: int, serve: Any,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    url, paths = serve(reply(code, b'{"error": "cannot verify the bearer token now"}'))
    assert _gates_against(url, monkeypatch) is None  # None: retried while the deadline runs
    assert paths  # the pod was asked


@pytest.mark.parametrize("address,ok", [
    ("http://prometheus.monitoring:9090", True),
    ("http://prometheus.monitoring:9090/", True),
    ("http://prometheus.monitoring:9091", False),
    ("https://prometheus.monitoring:9090", False),
    ("http://prometheus.monitoring.evil.example:9090", False),
    ("http://user:pw@prometheus.monitoring:9090", False),
    ("http://thanos.example/api", True),
    ("http://thanos.example:8080/api/v2", True),
    ("http://thanos.example/apis", False),
    ("http://169.254.169.254/latest/meta-data", False),
])
def test_allow_list_matching(address: str, ok: bool) -> None:
    assert allowed(address, ["http://prometheus.monitoring:9090", "http://thanos.example/api"]) is ok


def test_provider_for_refuses_an_address_outside_the_allow_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELDEPLOY_PROMETHEUS_ADDRESSES", "http://prometheus.monitoring:9090")
    refused = provider_for(Provider(type="prometheus", address="http://169.254.169.254"))
    assert isinstance(refused, RefusedProvider)
    with pytest.raises(MetricsUnavailable, match="not in the operator's Prometheus allow-list"):
        refused.is_online()
    assert isinstance(provider_for(Provider(type="prometheus", address="http://prometheus.monitoring:9090")),
                      PrometheusProvider)
    monkeypatch.delenv("MODELDEPLOY_PROMETHEUS_ADDRESSES")
    assert isinstance(provider_for(Provider(type="prometheus", address="http://prometheus.monitoring:9090")),
                      RefusedProvider)  # an empty list allows none
