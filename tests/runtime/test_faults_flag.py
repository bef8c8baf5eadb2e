"""Fault injection is off in production: MODELSERVER_FAULT_* act only with MODELSERVER_TEST_FAULTS=1."""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from modelserver.faults import Faults
from modelserver.server import ServerConfig

from .conftest import ThreadedServer, fixed_graph, save_model
from .test_process import free_port, wait_ready

ALL_FAULTS = {"MODELSERVER_FAULT_LATENCY_MS": "25", "MODELSERVER_FAULT_ERROR_RATE": "1",
              "MODELSERVER_FAULT_LOAD_FAIL": "1", "MODELSERVER_FAULT_CRASH_AFTER_S": "1",
              "MODELSERVER_FAULT_METADATA_REDIRECT": "http://127.0.0.1:9/stolen",
              "MODELSERVER_FAULT_METADATA_BYTES": "4096", "MODELSERVER_FAULT_METRICS_STATUS": "403"}


def test_fault_variables_without_the_test_flag_are_ignored(capsys: pytest.CaptureFixture[str]) -> None:
    faults = Faults.from_env(ALL_FAULTS)
    assert faults == Faults() and not faults.active and not faults.load_fail and faults.crash_after_s == 0
    assert not faults.metadata_faulty and faults.metadata_answer(b'{"name":"m"}') == (200, b'{"name":"m"}', b"")
    warning = capsys.readouterr().err
    assert "fault injection is off" in warning and "MODELSERVER_FAULT_LOAD_FAIL" in warning


def test_the_test_flag_turns_them_on() -> None:
    faults = Faults.from_env({**ALL_FAULTS, "MODELSERVER_TEST_FAULTS": "1"})
    assert (faults.latency_ms, faults.error_rate, faults.load_fail, faults.crash_after_s) == (25.0, 1.0, True, 1.0)
    assert faults.metadata_answer(b'{"name":"m"}') == (302, b"", b"http://127.0.0.1:9/stolen")
    assert faults.metrics_status == 403


def test_the_metadata_padding_fault_keeps_the_answer_json_of_the_asked_size() -> None:
    padded = Faults.from_env({"MODELSERVER_FAULT_METADATA_BYTES": "4096", "MODELSERVER_TEST_FAULTS": "1"})
    status, body, location = padded.metadata_answer(b'{"name":"m","inputs":[]}')
    assert (status, len(body), location) == (200, 4096, b"")
    assert json.loads(body)["name"] == "m" and json.loads(body)["inputs"] == []


def test_a_production_server_with_a_stray_load_fail_variable_still_serves(tmp_path: Path) -> None:
    save_model(fixed_graph(), tmp_path / "fixed" / "1" / "model.onnx")
    http_port = free_port()
    env = {key: value for key, value in os.environ.items() if key != "MODELSERVER_TEST_FAULTS"}
    cmd = [sys.executable, "-m", "modelserver", "serve", "--model-repository", str(tmp_path), "--host", "127.0.0.1",
           "--http-port", str(http_port), "--grpc-port", str(free_port()), "--metrics-port", str(free_port()),
           "--intra-op-threads", "1", "--drain-timeout", "5"]
    proc = subprocess.Popen(cmd, env={**env, "MODELSERVER_FAULT_LOAD_FAIL": "1"}, stderr=subprocess.PIPE, text=True)
    try:
        wait_ready(proc, http_port)  # with the flag this process exits 1 (test_process.py)
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    assert "ignoring MODELSERVER_FAULT_LOAD_FAIL" in err


@pytest.mark.parametrize("faults", [Faults(metadata_redirect="http://127.0.0.1:9/stolen"),
                                    Faults(metadata_bytes=2**20 + 1)], ids=["redirect", "padded"])
def test_the_metadata_faults_shape_what_the_server_answers(model_repository: Path, faults: Faults) -> None:
    config = ServerConfig(model_repository=model_repository, host="127.0.0.1", http_port=0, grpc_port=0,
                          metrics_port=0, intra_op_threads=1, drain_timeout_s=5, faults=faults)
    server = ThreadedServer(config)
    running = server.start()
    try:
        connection = http.client.HTTPConnection("127.0.0.1", running.handle.http_port, timeout=10)
        connection.request("GET", "/v2/models/fixed")
        metadata = connection.getresponse()
        body = metadata.read()
        connection.request("GET", "/v2/health/ready")  # the same keep-alive connection: still well framed
        ready = connection.getresponse()
        ready.read()
    finally:
        server.stop()
    if faults.metadata_redirect:
        assert (metadata.status, metadata.getheader("Location"), body) == (302, faults.metadata_redirect, b"")
    else:
        assert metadata.status == 200 and int(metadata.getheader("Content-Length") or 0) == len(body) == 2**20 + 1
        assert json.loads(body)["name"] == "fixed"
    assert ready.status == 200
