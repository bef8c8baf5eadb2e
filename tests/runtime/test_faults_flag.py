"""Fault injection is off in production: MODELSERVER_FAULT_* act only with MODELSERVER_TEST_FAULTS=1."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from modelserver.faults import Faults

from .conftest import fixed_graph, save_model
from .test_process import free_port, wait_ready

ALL_FAULTS = {"MODELSERVER_FAULT_LATENCY_MS": "25", "MODELSERVER_FAULT_ERROR_RATE": "1",
              "MODELSERVER_FAULT_LOAD_FAIL": "1", "MODELSERVER_FAULT_CRASH_AFTER_S": "1"}


def test_fault_variables_without_the_test_flag_are_ignored(capsys: pytest.CaptureFixture[str]) -> None:
    faults = Faults.from_env(ALL_FAULTS)
    assert faults == Faults() and not faults.active and not faults.load_fail and faults.crash_after_s == 0
    warning = capsys.readouterr().err
    assert "fault injection is off" in warning and "MODELSERVER_FAULT_LOAD_FAIL" in warning


def test_the_test_flag_turns_them_on() -> None:
    faults = Faults.from_env({**ALL_FAULTS, "MODELSERVER_TEST_FAULTS": "1"})
    assert (faults.latency_ms, faults.error_rate, faults.load_fail, faults.crash_after_s) == (25.0, 1.0, True, 1.0)


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
