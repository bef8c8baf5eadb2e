"""What the operator does with hostile answers to its own requests, on the real control plane.

- an allowed Prometheus answering HTTP 500 with a secret-looking body: the analysis holds and says
  "answered HTTP 500", and the body reaches no status field and no Event;
- a canary pod whose model metadata redirects or floods (modelserver's test-only
  MODELSERVER_FAULT_METADATA_* faults): the gates do not follow the redirect (its target is never
  reached), refuse the oversize answer at the 1 MiB metadata cap, and roll the canary back saying so.

The operator runs as its own process with the chart's ServiceAccount; pods are real modelserver
processes of the sandbox kubelet, reached through the sandbox's pod network.
"""

from __future__ import annotations

import http.server
import json
from collections.abc import Iterator
from typing import Any

import pytest

from modeldeploy_sandbox.sandbox import Sandbox, model_deployment
from modeldeploy_sandbox.waiting import wait_until

from ..answering_server import Start, answering_servers

MARKER = "password=hunter2 <script>"
METADATA_CAP = 2**20  # the operator's cap on model metadata answers (outbound.METADATA_BODY_LIMIT)


@pytest.fixture
def serve() -> Iterator[Start]:
    """serve(answer) -> (base URL on 127.0.0.1, the paths asked so far)."""
    yield from answering_servers()


def _reply(handler: http.server.BaseHTTPRequestHandler, status: int, body: bytes) -> None:
    handler.send_response(status)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


def _stable_then_canary(sandbox: Sandbox, name: str, rollout: dict[str, Any],
                        canary_env: dict[str, str] | None = None) -> str:
    """`name` healthy on model 1 (its stable revision returned), then model 2 as a canary."""
    def spec(seed: int) -> dict[str, Any]:
        return model_deployment(name, sandbox.artifacts.linear(f"{name}/{seed}/model.onnx", seed=seed),
                                strategy="canary", rollout={"strategy": "canary", **rollout})

    sandbox.apply(spec(1))
    stable = str(sandbox.wait_for_phase(name, "Healthy", 90)["stableRevision"])
    canary = spec(2)
    if canary_env:
        canary["spec"]["runtime"] = {"env": [{"name": key, "value": value} for key, value in canary_env.items()]}
    sandbox.apply(canary)
    return stable


def test_a_prometheus_error_body_reaches_no_status_and_no_event(sandbox: Sandbox, serve: Any) -> None:
    def failing(handler: http.server.BaseHTTPRequestHandler) -> None:
        if handler.path == "/-/ready":
            _reply(handler, 200, b"Prometheus Server is Ready.")
        else:
            _reply(handler, 500, f"<html>internal error, {MARKER}</html>".encode())

    address, paths = serve(failing)
    _stable_then_canary(sandbox, "errors", {
        "steps": [{"weight": 50, "pause": "2s"}], "progressDeadlineSeconds": 120,
        "analysis": {"provider": {"type": "prometheus", "address": address}, "interval": "2s"}})

    def held() -> str | None:
        return next((e["message"] for e in sandbox.events("errors")
                     if e.get("reason") == "MetricsUnavailable" and "HTTP 500" in e.get("message", "")), None)

    message = str(wait_until(held, 90, message="a MetricsUnavailable Event naming the HTTP status"))
    assert f"{address}/api/v1/query answered HTTP 500" in message, message
    assert any(path.startswith("/api/v1/query?") for path in paths)  # the error body was really served
    status = sandbox.wait_for("errors", lambda s: any(c.get("reason") == "MetricsUnavailable"
                                                      for c in s.get("conditions") or []), 30, "analysis holds")
    assert status["phase"] == "Progressing", status  # held: neither promoted nor rolled back
    events = sandbox.kube.list("v1", "Event", sandbox.namespace)
    for text in (json.dumps(status), json.dumps(events)):
        assert "hunter2" not in text and "<script>" not in text and "<html>" not in text


@pytest.mark.parametrize("fault,refusal", [
    ("redirect", "answered a redirect (HTTP 302), which is not followed"),
    ("flood", f"answered {METADATA_CAP + 1} bytes, over the limit of {METADATA_CAP}"),
])
def test_a_canary_whose_metadata_redirects_or_floods_is_rolled_back(sandbox: Sandbox, serve: Any, fault: str,
                                                                    refusal: str) -> None:
    target, target_paths = serve(lambda handler: _reply(handler, 200, b'{"name": "stolen"}'))
    env = ({"MODELSERVER_FAULT_METADATA_REDIRECT": f"{target}/stolen"} if fault == "redirect"
           else {"MODELSERVER_FAULT_METADATA_BYTES": str(METADATA_CAP + 1)})
    stable = _stable_then_canary(sandbox, "hostile", {
        "steps": [{"weight": 50, "pause": "2s"}], "progressDeadlineSeconds": 120,
        "gates": {"signature": True}}, env)
    status = sandbox.wait_for("hostile", lambda s: s.get("rejectedRevisions"), 90, "the canary rolled back")
    (rejected,) = status["rejectedRevisions"]
    assert rejected["reason"] == "GateFailed", rejected
    assert rejected["message"].startswith("gates: http://10.244."), rejected  # the canary pod's own IP
    assert "/v2/models/" in rejected["message"] and refusal in rejected["message"], rejected
    assert status["stableRevision"] == stable and status.get("canaryRevision") is None, status
    assert target_paths == []
