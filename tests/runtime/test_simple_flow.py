"""tritonclient's "simple" example flow, unchanged, against modelserver.

Triton's examples use a model named ``simple``: two INT32 ``[-1, 16]`` inputs (max batch 8),
OUTPUT0 = INPUT0 + INPUT1 and OUTPUT1 = INPUT0 - INPUT1. The model is generated here as ONNX;
each test drives one flavour of the example with tritonclient: HTTP and gRPC, sync, async
(gevent pool / callbacks), asyncio clients and gRPC streaming, including the statistics
check the examples end with.
"""

from __future__ import annotations

import asyncio
import queue
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.grpc.aio as grpcaio
import tritonclient.http as httpclient
import tritonclient.http.aio as httpaio
from onnx import TensorProto, helper
from tritonclient.utils import InferenceServerException

from modelserver.faults import Faults
from modelserver.server import ServerConfig

from .conftest import RunningServer, ThreadedServer, save_model, vi

SIMPLE_CONFIG = """
name: "simple"
max_batch_size: 8
input [
  { name: "INPUT0" data_type: TYPE_INT32 dims: [ 16 ] },
  { name: "INPUT1" data_type: TYPE_INT32 dims: [ 16 ] }
]
output [
  { name: "OUTPUT0" data_type: TYPE_INT32 dims: [ 16 ] },
  { name: "OUTPUT1" data_type: TYPE_INT32 dims: [ 16 ] }
]
"""


def simple_graph() -> Any:
    nodes = [
        helper.make_node("Add", ["INPUT0", "INPUT1"], ["OUTPUT0"]),
        helper.make_node("Sub", ["INPUT0", "INPUT1"], ["OUTPUT1"]),
    ]
    return helper.make_graph(
        nodes,
        "simple",
        [vi("INPUT0", TensorProto.INT32, ["N", 16]), vi("INPUT1", TensorProto.INT32, ["N", 16])],
        [vi("OUTPUT0", TensorProto.INT32, ["N", 16]), vi("OUTPUT1", TensorProto.INT32, ["N", 16])],
    )


def build_simple_repository(root: Path) -> Path:
    save_model(simple_graph(), root / "simple" / "1" / "model.onnx")
    (root / "simple" / "config.pbtxt").write_text(SIMPLE_CONFIG)
    return root


@pytest.fixture(scope="module")
def simple_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    repo = build_simple_repository(tmp_path_factory.mktemp("simple-repo"))
    config = ServerConfig(
        model_repository=repo,
        host="127.0.0.1",
        http_port=0,
        grpc_port=0,
        metrics_port=0,
        intra_op_threads=1,
        drain_timeout_s=5,
        faults=Faults(),
        model_control_mode="explicit",  # simple_*_model_control examples load/unload
    )
    srv = ThreadedServer(config)
    yield srv.start()
    srv.stop()


INPUT0 = np.arange(start=0, stop=16, dtype=np.int32).reshape(1, 16)
INPUT1 = np.ones(shape=(1, 16), dtype=np.int32)


def check_sum_diff(out0: np.ndarray | None, out1: np.ndarray | None, a: np.ndarray = INPUT0) -> None:
    assert out0 is not None and out1 is not None
    assert out0.dtype == np.int32 and out0.shape == a.shape
    np.testing.assert_array_equal(out0, a + INPUT1)
    np.testing.assert_array_equal(out1, a - INPUT1)


# -- HTTP --------------------------------------------------------------------------------


def http_inputs(module: Any = httpclient) -> list[Any]:
    inputs = [module.InferInput("INPUT0", [1, 16], "INT32"), module.InferInput("INPUT1", [1, 16], "INT32")]
    inputs[0].set_data_from_numpy(INPUT0, binary_data=False)  # the example mixes JSON and binary
    inputs[1].set_data_from_numpy(INPUT1, binary_data=True)
    return inputs


def http_outputs(module: Any = httpclient) -> list[Any]:
    return [
        module.InferRequestedOutput("OUTPUT0", binary_data=True),
        module.InferRequestedOutput("OUTPUT1", binary_data=False),
    ]


def test_http_sync_infer_and_statistics(simple_server: RunningServer) -> None:
    client = httpclient.InferenceServerClient(url=simple_server.http_url)
    try:
        assert client.is_server_live() and client.is_server_ready() and client.is_model_ready("simple")
        assert "statistics" in client.get_server_metadata()["extensions"]
        assert client.get_model_metadata("simple")["inputs"][0] == {
            "name": "INPUT0",
            "datatype": "INT32",
            "shape": [-1, 16],
        }
        assert client.get_model_config("simple")["max_batch_size"] == 8
        for compression in (None, "gzip", "deflate"):
            results = client.infer(
                "simple",
                http_inputs(),
                outputs=http_outputs(),
                query_params={"test_1": 1, "test_2": 2},
                headers={"test": "1"},
                request_compression_algorithm=compression,
                response_compression_algorithm=compression,
            )
            check_sum_diff(results.as_numpy("OUTPUT0"), results.as_numpy("OUTPUT1"))
        statistics = client.get_inference_statistics(model_name="simple")
        assert len(statistics["model_stats"]) == 1
        stat = statistics["model_stats"][0]
        assert (stat["name"], stat["version"]) == ("simple", "1")
        assert stat["inference_stats"]["success"]["count"] >= 3
    finally:
        client.close()


def test_http_async_infer(simple_server: RunningServer) -> None:
    client = httpclient.InferenceServerClient(url=simple_server.http_url, concurrency=4)
    try:
        pending = [
            client.async_infer("simple", http_inputs(), request_id=str(i), outputs=http_outputs()) for i in range(8)
        ]
        for p in pending:
            result = p.get_result()
            check_sum_diff(result.as_numpy("OUTPUT0"), result.as_numpy("OUTPUT1"))
        assert len(client.get_inference_statistics(model_name="simple")["model_stats"]) == 1
    finally:
        client.close()


def test_http_asyncio_client(simple_server: RunningServer) -> None:
    async def flow() -> None:
        client = httpaio.InferenceServerClient(url=simple_server.http_url)
        try:
            results = await asyncio.gather(
                *(client.infer("simple", http_inputs(httpaio), outputs=http_outputs(httpaio)) for _ in range(6))
            )
            for r in results:
                check_sum_diff(r.as_numpy("OUTPUT0"), r.as_numpy("OUTPUT1"))
            stats = await client.get_inference_statistics(model_name="simple")
            assert len(stats["model_stats"]) == 1
        finally:
            await client.close()

    asyncio.run(flow())


def test_http_model_control_and_repository_index(simple_server: RunningServer) -> None:
    client = httpclient.InferenceServerClient(url=simple_server.http_url)
    try:
        assert client.get_model_repository_index() == [{"name": "simple", "version": "1", "state": "READY"}]
        client.unload_model("simple")
        assert not client.is_model_ready("simple")
        with pytest.raises(InferenceServerException):
            client.infer("simple", http_inputs())
        assert client.get_model_repository_index() == [
            {"name": "simple", "version": "1", "state": "UNAVAILABLE", "reason": "unloaded"}
        ]
        client.load_model("simple")
        assert client.is_model_ready("simple")
        results = client.infer("simple", http_inputs(), outputs=http_outputs())
        check_sum_diff(results.as_numpy("OUTPUT0"), results.as_numpy("OUTPUT1"))
        with pytest.raises(InferenceServerException, match="no such model"):
            client.load_model("wrong_model_name")
    finally:
        client.close()


# -- gRPC --------------------------------------------------------------------------------


def grpc_inputs(module: Any = grpcclient, a: np.ndarray = INPUT0) -> list[Any]:
    inputs = [module.InferInput("INPUT0", [1, 16], "INT32"), module.InferInput("INPUT1", [1, 16], "INT32")]
    inputs[0].set_data_from_numpy(a)
    inputs[1].set_data_from_numpy(INPUT1)
    return inputs


def grpc_outputs(module: Any = grpcclient) -> list[Any]:
    return [module.InferRequestedOutput("OUTPUT0"), module.InferRequestedOutput("OUTPUT1")]


def test_grpc_sync_infer_and_statistics(simple_server: RunningServer) -> None:
    client = grpcclient.InferenceServerClient(url=simple_server.grpc_url)
    try:
        assert client.is_server_live() and client.is_server_ready() and client.is_model_ready("simple")
        assert not client.is_model_ready("no_such_model")
        results = client.infer(
            "simple", grpc_inputs(), outputs=grpc_outputs(), headers={"test": "1"}, client_timeout=10,
            compression_algorithm="gzip",
        )  # fmt: skip
        check_sum_diff(results.as_numpy("OUTPUT0"), results.as_numpy("OUTPUT1"))
        statistics = client.get_inference_statistics(model_name="simple")
        assert len(statistics.model_stats) == 1
        assert statistics.model_stats[0].inference_stats.success.count >= 1
        as_json = client.get_inference_statistics(model_name="simple", as_json=True)
        assert as_json["model_stats"][0]["name"] == "simple"
    finally:
        client.close()


def test_grpc_async_infer_with_callbacks(simple_server: RunningServer) -> None:
    client = grpcclient.InferenceServerClient(url=simple_server.grpc_url)
    done: queue.Queue[tuple[Any, Any]] = queue.Queue()

    def callback(user_data: queue.Queue[tuple[Any, Any]], result: Any, error: Any) -> None:
        user_data.put((result, error))

    try:
        for i in range(8):
            client.async_infer(
                "simple", grpc_inputs(), partial(callback, done), request_id=str(i), outputs=grpc_outputs()
            )
        seen = set()
        for _ in range(8):
            result, error = done.get(timeout=30)
            assert error is None, error
            check_sum_diff(result.as_numpy("OUTPUT0"), result.as_numpy("OUTPUT1"))
            seen.add(result.get_response().id)
        assert seen == {str(i) for i in range(8)}
    finally:
        client.close()


def test_grpc_streaming(simple_server: RunningServer) -> None:
    """start_stream / async_stream_infer / stop_stream; a bad request gets an error response
    on the stream and the stream goes on."""
    client = grpcclient.InferenceServerClient(url=simple_server.grpc_url)
    done: queue.Queue[tuple[Any, Any]] = queue.Queue()
    try:
        client.start_stream(callback=partial(lambda q, result, error: q.put((result, error)), done))
        inputs_by_id = {}
        for i in range(6):
            a = INPUT0 + i
            inputs_by_id[str(i)] = a
            client.async_stream_infer("simple", grpc_inputs(a=a), request_id=str(i), outputs=grpc_outputs())
        bad = grpcclient.InferInput("INPUT0", [1, 15], "INT32")
        bad.set_data_from_numpy(np.zeros((1, 15), dtype=np.int32))
        client.async_stream_infer("simple", [bad, grpc_inputs()[1]], request_id="bad")
        client.async_stream_infer("simple", grpc_inputs(a=INPUT0 + 100), request_id="after", outputs=grpc_outputs())
        inputs_by_id["after"] = INPUT0 + 100
        errors, ok = [], set()
        for _ in range(8):
            result, error = done.get(timeout=30)
            if error is not None:
                errors.append(error)
                continue
            rid = result.get_response().id
            check_sum_diff(result.as_numpy("OUTPUT0"), result.as_numpy("OUTPUT1"), inputs_by_id[rid])
            ok.add(rid)
        assert ok == set(inputs_by_id)
        assert len(errors) == 1 and "INPUT0" in str(errors[0])
    finally:
        client.stop_stream()
        client.close()


def test_grpc_asyncio_client_and_stream(simple_server: RunningServer) -> None:
    async def flow() -> None:
        client = grpcaio.InferenceServerClient(url=simple_server.grpc_url)
        try:
            result = await client.infer("simple", grpc_inputs(grpcaio), outputs=grpc_outputs(grpcaio))
            check_sum_diff(result.as_numpy("OUTPUT0"), result.as_numpy("OUTPUT1"))

            async def requests() -> Any:
                for i in range(4):
                    yield {"model_name": "simple", "inputs": grpc_inputs(grpcaio, INPUT0 + i), "request_id": str(i)}

            got = {}
            async for res, error in client.stream_infer(requests()):
                assert error is None, error
                got[res.get_response().id] = res
            assert sorted(got) == ["0", "1", "2", "3"]
            for rid, res in got.items():
                check_sum_diff(res.as_numpy("OUTPUT0"), res.as_numpy("OUTPUT1"), INPUT0 + int(rid))
            stats = await client.get_inference_statistics(model_name="simple")
            assert len(stats.model_stats) == 1
        finally:
            await client.close()

    asyncio.run(flow())


def test_grpc_model_control(simple_server: RunningServer) -> None:
    client = grpcclient.InferenceServerClient(url=simple_server.grpc_url)
    try:
        client.unload_model("simple")
        assert not client.is_model_ready("simple")
        index = client.get_model_repository_index(as_json=True)["models"]
        assert index == [{"name": "simple", "version": "1", "state": "UNAVAILABLE", "reason": "unloaded"}]
        client.load_model("simple")
        assert client.is_model_ready("simple")
        result = client.infer("simple", grpc_inputs(), outputs=grpc_outputs())
        check_sum_diff(result.as_numpy("OUTPUT0"), result.as_numpy("OUTPUT1"))
    finally:
        client.close()
