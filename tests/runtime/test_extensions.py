"""Triton's extensions besides inference, on the shared server (model control mode none):
statistics, repository index and refused load/unload, logging, shared-memory status, and a
clean UNIMPLEMENTED (one log line, no traceback) for what modelserver does not support."""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import grpc
import numpy as np
import pytest
import tritonclient.grpc as tg
import tritonclient.http as th
from tritonclient.grpc import service_pb2 as pb
from tritonclient.grpc import service_pb2_grpc as pb_grpc
from tritonclient.utils import InferenceServerException

from .conftest import RunningServer
from .test_batching_metrics import sample, scrape

MODELS = ("add_sub", "types", "fixed", "gather", "gather_batched")


def rest(server: RunningServer, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(f"http://{server.http_url}{path}", data=data, method=method)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            raw = resp.read()
            return resp.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


@pytest.fixture
def stub(server: RunningServer) -> Iterator[pb_grpc.GRPCInferenceServiceStub]:
    with grpc.insecure_channel(server.grpc_url) as ch:
        yield pb_grpc.GRPCInferenceServiceStub(ch)


def add_sub_infer(client: th.InferenceServerClient, version: str, rows: int) -> None:
    ins = [th.InferInput("INPUT0", [rows, 4], "FP32"), th.InferInput("INPUT1", [rows, 4], "FP32")]
    for i in ins:
        i.set_data_from_numpy(np.ones((rows, 4), dtype=np.float32))
    client.infer("add_sub", ins, model_version=version)


# -- statistics ----------------------------------------------------------------------------


def test_statistics_count_requests_like_triton(server: RunningServer) -> None:
    client = th.InferenceServerClient(server.http_url)
    try:
        before = client.get_inference_statistics("add_sub", "1")["model_stats"][0]
        add_sub_infer(client, "1", 3)
        add_sub_infer(client, "1", 2)
        with pytest.raises(InferenceServerException):  # wrong datatype: a failure, not executed
            bad = th.InferInput("INPUT0", [1, 4], "INT32")
            bad.set_data_from_numpy(np.ones((1, 4), dtype=np.int32))
            client.infer("add_sub", [bad], model_version="1")
        after = client.get_inference_statistics("add_sub", "1")["model_stats"][0]
    finally:
        client.close()

    def delta(*path: str) -> int:
        a: Any = after
        b: Any = before
        for p in path:
            a, b = a[p], b[p]
        return int(a - b)

    assert (after["name"], after["version"]) == ("add_sub", "1")
    assert delta("inference_stats", "success", "count") == 2
    assert delta("inference_stats", "fail", "count") == 1
    assert delta("inference_stats", "success", "ns") > 0
    assert delta("inference_count") == 5  # samples, not requests
    assert 1 <= delta("execution_count") <= 2
    for stage in ("queue", "compute_input", "compute_infer", "compute_output"):
        assert delta("inference_stats", stage, "count") == 2  # only executed requests
    assert delta("inference_stats", "compute_infer", "ns") > 0
    assert after["last_inference"] >= before["last_inference"] and after["last_inference"] > 0
    assert {b["batch_size"] for b in after["batch_stats"]} & {2, 3, 5}


def test_statistics_url_forms_and_errors(server: RunningServer, stub: pb_grpc.GRPCInferenceServiceStub) -> None:
    status, every = rest(server, "GET", "/v2/models/stats")
    assert status == 200
    assert {(m["name"], m["version"]) for m in every["model_stats"]} == {
        ("add_sub", "1"), ("add_sub", "2"), *((m, "1") for m in MODELS[1:])
    }  # fmt: skip
    status, one = rest(server, "GET", "/v2/models/add_sub/stats")
    assert status == 200 and [m["version"] for m in one["model_stats"]] == ["1", "2"]
    status, v2 = rest(server, "GET", "/v2/models/add_sub/versions/2/stats")
    assert status == 200 and [m["version"] for m in v2["model_stats"]] == ["2"]
    # Triton answers 400 / INVALID_ARGUMENT for a model or version it does not serve.
    status, err = rest(server, "GET", "/v2/models/nope/stats")
    assert status == 400 and err["error"] == "requested model 'nope' is not available"
    status, err = rest(server, "GET", "/v2/models/add_sub/versions/9/stats")
    assert status == 400 and "version is not available for model 'add_sub'" in err["error"]

    resp = stub.ModelStatistics(pb.ModelStatisticsRequest(name="add_sub", version="2"))
    assert [(m.name, m.version) for m in resp.model_stats] == [("add_sub", "2")]
    with pytest.raises(grpc.RpcError) as info:
        stub.ModelStatistics(pb.ModelStatisticsRequest(name="nope"))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT


# -- repository ----------------------------------------------------------------------------


def test_repository_index_and_control_mode_none(server: RunningServer, stub: pb_grpc.GRPCInferenceServiceStub) -> None:
    status, index = rest(server, "POST", "/v2/repository/index", {})
    assert status == 200
    assert sorted((r["name"], r["version"], r["state"]) for r in index) == sorted(
        [("add_sub", "1", "READY"), ("add_sub", "2", "READY"), *((m, "1", "READY") for m in MODELS[1:])]
    )
    assert all(set(r) == {"name", "version", "state"} for r in index)  # as Triton: no empty "reason"
    status, ready = rest(server, "POST", "/v2/repository/index", {"ready": True})
    assert status == 200 and len(ready) == len(index)
    status, err = rest(server, "POST", "/v2/repository/index", {"ready": "yes"})
    assert status == 400 and "'ready'" in err["error"]

    # Mode none (Triton's default): load and unload are refused, and nothing changes.
    for action in ("load", "unload"):
        status, err = rest(server, "POST", f"/v2/repository/models/add_sub/{action}", {})
        assert status == 503, err  # Triton's status and wording, plus how to enable it
        assert err["error"].startswith("explicit model load / unload is not allowed")
        assert "--model-control-mode explicit" in err["error"]
    with pytest.raises(grpc.RpcError) as info:
        stub.RepositoryModelUnload(pb.RepositoryModelUnloadRequest(model_name="add_sub"))
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    assert stub.ModelReady(pb.ModelReadyRequest(name="add_sub")).ready
    names = {m.name for m in stub.RepositoryIndex(pb.RepositoryIndexRequest(ready=True)).models}
    assert names == set(MODELS)


# -- logging -------------------------------------------------------------------------------


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    level = root.level
    yield
    root.setLevel(level)
    for h in root.handlers:
        for f in list(h.filters):
            if getattr(f, "name", "") == "modelserver.log_settings":
                h.removeFilter(f)


def test_log_settings_rest_and_grpc(
    server: RunningServer, stub: pb_grpc.GRPCInferenceServiceStub, restore_logging: None
) -> None:
    client = th.InferenceServerClient(server.http_url)
    try:
        settings = client.get_log_settings()
        assert set(settings) == {"log_file", "log_info", "log_warning", "log_error", "log_verbose_level", "log_format"}
        updated = client.update_log_settings({"log_info": False, "log_verbose_level": 0})
        assert updated["log_info"] is False and updated["log_warning"] is True
        assert logging.getLogger().level == logging.WARNING  # the settings drive the logging tree
        with pytest.raises(InferenceServerException, match="log_verbose_level"):
            client.update_log_settings({"log_verbose_level": -1})
        with pytest.raises(InferenceServerException, match="log_file"):
            client.update_log_settings({"log_file": "/tmp/x.log"})
        with pytest.raises(InferenceServerException, match="log_colour"):
            client.update_log_settings({"log_colour": True})
        assert client.get_log_settings()["log_info"] is False  # a refused update changes nothing
    finally:
        client.close()
    gclient = tg.InferenceServerClient(server.grpc_url)
    try:
        resp = gclient.update_log_settings({"log_info": True}, as_json=True)
        assert resp["settings"]["log_info"] == {"bool_param": True}
        assert logging.getLogger().level == logging.INFO
        assert gclient.get_log_settings(as_json=True)["settings"]["log_verbose_level"] == {"uint32_param": 0}
    finally:
        gclient.close()


# -- shared memory and unsupported calls -----------------------------------------------------


def test_shared_memory_status_with_no_region(server: RunningServer, stub: pb_grpc.GRPCInferenceServiceStub) -> None:
    for kind in ("systemsharedmemory", "cudasharedmemory"):
        assert rest(server, "GET", f"/v2/{kind}/status") == (200, [])
        status, err = rest(server, "GET", f"/v2/{kind}/region/r0/status")
        assert status == 404 and "Unable to find" in err["error"] and "'r0'" in err["error"]
        assert rest(server, "POST", f"/v2/{kind}/unregister", {}) == (200, None)
        status, err = rest(server, "POST", f"/v2/{kind}/region/r0/register", {"key": "/k", "byte_size": 64})
        assert status == 400 and "not supported" in err["error"]
    assert len(stub.SystemSharedMemoryStatus(pb.SystemSharedMemoryStatusRequest()).regions) == 0
    with pytest.raises(grpc.RpcError) as info:
        stub.SystemSharedMemoryStatus(pb.SystemSharedMemoryStatusRequest(name="r0"))
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    assert len(stub.CudaSharedMemoryStatus(pb.CudaSharedMemoryStatusRequest()).regions) == 0
    client = th.InferenceServerClient(server.http_url)
    try:
        assert client.get_system_shared_memory_status() == []
        client.unregister_system_shared_memory()
    finally:
        client.close()


def test_unsupported_rpcs_are_clean_unimplemented(
    server: RunningServer, stub: pb_grpc.GRPCInferenceServiceStub, caplog: pytest.LogCaptureFixture
) -> None:
    calls = [
        (stub.SystemSharedMemoryRegister, pb.SystemSharedMemoryRegisterRequest(name="r", key="/k", byte_size=8)),
        (stub.CudaSharedMemoryRegister, pb.CudaSharedMemoryRegisterRequest(name="r", byte_size=8)),
    ]
    caplog.set_level(logging.INFO, logger="modelserver")
    for method, request in calls:
        caplog.clear()
        with pytest.raises(grpc.RpcError) as info:
            method(request)
        assert info.value.code() == grpc.StatusCode.UNIMPLEMENTED
        assert "not supported" in (info.value.details() or "")
        records = [r for r in caplog.records if r.name.startswith(("modelserver", "grpc"))]
        assert len(records) == 1, [r.getMessage() for r in records]
        assert records[0].levelno == logging.INFO and records[0].exc_info is None


# -- metrics ---------------------------------------------------------------------------------


def test_every_failure_reason_series_exists_at_zero(server: RunningServer) -> None:
    text = scrape(server)
    for model in MODELS:
        for reason in ("REJECTED", "CANCELED", "BACKEND", "OTHER"):
            line = [
                ln for ln in text.splitlines()
                if ln.startswith("nv_inference_request_failure{")
                and f'model="{model}"' in ln and f'reason="{reason}"' in ln
            ]  # fmt: skip
            assert line, (model, reason)
    assert sample(text, "nv_inference_request_failure", model="types", reason="CANCELED") == 0
    for name in ("nv_inference_compute_input_duration_us", "nv_inference_compute_output_duration_us"):
        assert f"# TYPE {name} counter" in text
        assert all(f'{name}{{model="{m}",version="1"}}' in text for m in MODELS)
    assert 'nv_cache_num_hits_per_model{model="add_sub"' not in text  # no response_cache in its config


def test_trace_settings_read_off_and_refuse_changes(server: RunningServer) -> None:
    status, settings = rest(server, "GET", "/v2/trace/setting")
    assert status == 200 and settings["trace_level"] == ["OFF"]
    assert rest(server, "POST", "/v2/trace/setting", {"trace_level": ["OFF"]}) == (200, settings)
    status, err = rest(server, "POST", "/v2/trace/setting", {"trace_level": ["TIMESTAMPS"]})
    assert status == 400 and "'trace_level'" in err["error"]
    client = tg.InferenceServerClient(server.grpc_url)
    try:
        got = client.get_trace_settings(as_json=True)["settings"]
        assert got["trace_level"] == {"value": ["OFF"]}
        with pytest.raises(InferenceServerException, match="trace_rate"):
            client.update_trace_settings(settings={"trace_rate": "5"})
    finally:
        client.close()
