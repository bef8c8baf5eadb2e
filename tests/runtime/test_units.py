"""Pure pieces: config.pbtxt, repository scan, BYTES encoding, faults, metrics exposition."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from hypothesis import given
from hypothesis import strategies as st

from modelserver.config_pbtxt import ConfigError, parse_config
from modelserver.datatypes import deserialize_bytes, serialize_bytes
from modelserver.errors import InvalidInput
from modelserver.faults import Faults
from modelserver.metrics import ServerMetrics
from modelserver.repository import RepositoryError, scan_repository
from modelserver.session import select_providers

from .conftest import ADD_SUB_CONFIG, build_repository


def test_config_reads_batching_and_instances() -> None:
    s = parse_config(ADD_SUB_CONFIG + "\ninstance_group [{ count: 2 }]\n")
    assert s.present
    assert s.max_batch_size == 8
    assert s.dynamic_batching
    assert s.preferred_batch_sizes == (8,)
    assert s.max_queue_delay_us == 20000
    assert s.instance_count == 3  # 1 + 2 across both groups


def test_config_without_dynamic_batching_means_no_server_batching() -> None:
    s = parse_config('name: "m"\nmax_batch_size: 4\n# a comment\nsome_future_field: 7\n')
    assert (s.max_batch_size, s.dynamic_batching, s.instance_count) == (4, False, None)


def test_config_syntax_error_is_reported() -> None:
    with pytest.raises(ConfigError, match=r"config\.pbtxt"):
        parse_config("max_batch_size: {")


def test_repository_scan(tmp_path: Path) -> None:
    build_repository(tmp_path)
    (tmp_path / "add_sub" / "notes").mkdir()  # non-numeric dir inside a model: ignored
    entries = {e.name: e for e in scan_repository(tmp_path)}
    assert sorted(entries) == ["add_sub", "fixed", "gather", "gather_batched", "types"]
    assert list(entries["add_sub"].versions) == [1, 2]
    assert entries["add_sub"].latest == 2
    assert entries["add_sub"].settings.max_batch_size == 8
    assert not entries["types"].settings.present


def test_repository_missing_dir(tmp_path: Path) -> None:
    with pytest.raises(RepositoryError):
        scan_repository(tmp_path / "nope")


@given(st.lists(st.text(max_size=20), max_size=20))
def test_bytes_roundtrip(values: list[str]) -> None:
    arr = np.array(values, dtype=object)
    back = deserialize_bytes("x", serialize_bytes(arr), len(values))
    assert list(back) == values


@pytest.mark.parametrize(
    ("buf", "count"),
    [
        (b"\x05\x00\x00\x00ab", 1),  # element longer than the buffer
        (b"\x01\x00\x00\x00a", 2),  # fewer elements than the shape says
        (b"\x01\x00\x00\x00a\x00", 1),  # trailing bytes
        (b"\x02\x00\x00\x00\xff\xfe", 1),  # not UTF-8
        (b"\x01\x00", 1),  # truncated length prefix
    ],
)
def test_bytes_malformed(buf: bytes, count: int) -> None:
    with pytest.raises(InvalidInput, match="'x'"):
        deserialize_bytes("x", buf, count)


def test_device_selection() -> None:
    available = ort.get_available_providers()
    assert select_providers("cpu") == ["CPUExecutionProvider"]
    if "CUDAExecutionProvider" in available:
        assert select_providers("auto")[0] == "CUDAExecutionProvider"
    else:
        assert select_providers("auto") == ["CPUExecutionProvider"]
        with pytest.raises(RuntimeError, match="CUDA"):
            select_providers("cuda")


def test_faults_from_env() -> None:
    f = Faults.from_env(
        {
            "MODELSERVER_TEST_FAULTS": "1",
            "MODELSERVER_FAULT_LATENCY_MS": "25",
            "MODELSERVER_FAULT_ERROR_RATE": "1.5",
            "MODELSERVER_FAULT_LOAD_FAIL": "1",
        }
    )
    assert (f.latency_ms, f.error_rate, f.load_fail, f.active) == (25.0, 1.0, True, True)
    assert not Faults.from_env({}).active


def test_metrics_exposition_uses_triton_names() -> None:
    m = ServerMetrics()
    st_ = m.stats("m", 3)
    st_.observe_success(2_000_000, batch=4)  # 2 ms
    st_.observe_failure("REJECTED", 1_000)
    st_.observe_execution(queue_ns=5_000, compute_ns=1_500_000, batch_size=4)  # inference_count: executed samples
    text = m.exposition().decode()
    assert "# TYPE nv_inference_request_success counter" in text
    assert "_total" not in text
    assert 'nv_inference_request_success{model="m",version="3"} 1.0' in text
    assert 'nv_inference_request_failure{model="m",reason="REJECTED",version="3"} 1.0' in text
    assert 'nv_inference_count{model="m",version="3"} 4.0' in text
    assert 'nv_inference_exec_count{model="m",version="3"} 1.0' in text
    assert 'nv_inference_request_duration_us{model="m",version="3"} 2001.0' in text
    assert 'nv_inference_queue_duration_us{model="m",version="3"} 5.0' in text
    assert 'nv_inference_compute_infer_duration_us{model="m",version="3"} 1500.0' in text
    assert 'nv_inference_request_duration_seconds_bucket{le="0.001",model="m",version="3"} 1.0' in text
    assert 'nv_inference_request_duration_seconds_bucket{le="0.0025",model="m",version="3"} 2.0' in text
    assert 'nv_inference_request_duration_seconds_count{model="m",version="3"} 2.0' in text
