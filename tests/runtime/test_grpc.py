"""The gRPC front end, driven by tritonclient.grpc (unchanged)."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import numpy as np
import pytest
import tritonclient.grpc as tg
from tritonclient.grpc import service_pb2 as pb
from tritonclient.grpc import service_pb2_grpc as pb_grpc
from tritonclient.utils import InferenceServerException

from .conftest import RunningServer


@pytest.fixture
def client(server: RunningServer) -> Iterator[tg.InferenceServerClient]:
    c = tg.InferenceServerClient(server.grpc_url)
    yield c
    c.close()


@pytest.fixture
def stub(server: RunningServer) -> Iterator[pb_grpc.GRPCInferenceServiceStub]:
    with grpc.insecure_channel(server.grpc_url) as ch:
        yield pb_grpc.GRPCInferenceServiceStub(ch)


def add_sub_inputs(a: np.ndarray, b: np.ndarray) -> list[tg.InferInput]:
    ins = [tg.InferInput("INPUT0", list(a.shape), "FP32"), tg.InferInput("INPUT1", list(b.shape), "FP32")]
    ins[0].set_data_from_numpy(a)
    ins[1].set_data_from_numpy(b)
    return ins


def test_health_metadata_config(client: tg.InferenceServerClient) -> None:
    assert client.is_server_live()
    assert client.is_server_ready()
    assert client.get_server_metadata().name == "modelserver"
    assert client.is_model_ready("add_sub")
    assert client.is_model_ready("add_sub", "1")
    meta = client.get_model_metadata("add_sub")
    assert list(meta.versions) == ["1", "2"]
    assert [(t.name, t.datatype, list(t.shape)) for t in meta.inputs] == [
        ("INPUT0", "FP32", [-1, 4]),
        ("INPUT1", "FP32", [-1, 4]),
    ]
    cfg = client.get_model_config("add_sub").config
    assert cfg.max_batch_size == 8
    assert cfg.dynamic_batching.max_queue_delay_microseconds == 20000
    assert list(cfg.input[0].dims) == [4]


def test_infer_versions_and_requested_outputs(client: tg.InferenceServerClient) -> None:
    a = np.arange(12, dtype=np.float32).reshape(3, 4)
    b = np.ones((3, 4), dtype=np.float32)
    res = client.infer("add_sub", add_sub_inputs(a, b))
    np.testing.assert_allclose(res.as_numpy("OUTPUT0"), a + b + 100)
    np.testing.assert_allclose(res.as_numpy("OUTPUT1"), a - b)
    res = client.infer(
        "add_sub", add_sub_inputs(a, b), model_version="1", outputs=[tg.InferRequestedOutput("OUTPUT1")], request_id="x"
    )
    np.testing.assert_allclose(res.as_numpy("OUTPUT1"), a - b)
    assert res.as_numpy("OUTPUT0") is None
    assert res.get_response().model_version == "1"
    assert res.get_response().id == "x"


def test_infer_all_datatypes(client: tg.InferenceServerClient) -> None:
    data: dict[str, tuple[np.ndarray, str]] = {
        "F16": (np.array([1.5, -2.0], dtype=np.float16), "FP16"),
        "I64": (np.array([5, -6, 7], dtype=np.int64), "INT64"),
        "B": (np.array([True, False]), "BOOL"),
        "S": (np.array(["é".encode(), b"x", b""], dtype=object), "BYTES"),
    }
    inputs = []
    for name, (arr, dt) in data.items():
        inp = tg.InferInput(name, list(arr.shape), dt)
        inp.set_data_from_numpy(arr)
        inputs.append(inp)
    res = client.infer("types", inputs)
    np.testing.assert_array_equal(res.as_numpy("F16_OUT"), data["F16"][0])
    np.testing.assert_array_equal(res.as_numpy("I64_OUT"), data["I64"][0] + 1)
    np.testing.assert_array_equal(res.as_numpy("B_OUT"), ~data["B"][0])
    assert list(res.as_numpy("S_OUT")) == list(data["S"][0])


def test_typed_contents_instead_of_raw(stub: pb_grpc.GRPCInferenceServiceStub) -> None:
    req = pb.ModelInferRequest(model_name="fixed")
    t = req.inputs.add(name="X", datatype="FP32", shape=[2, 3])
    t.contents.fp32_contents.extend([1, 2, 3, 4, 5, 6])
    resp = stub.ModelInfer(req)
    assert np.frombuffer(resp.raw_output_contents[0], dtype=np.float32).tolist() == [6.0, 15.0]


def status_of(fn) -> tuple[grpc.StatusCode, str]:  # type: ignore[no-untyped-def]
    with pytest.raises(InferenceServerException) as info:
        fn()
    return info.value.status(), str(info.value)


def test_errors(client: tg.InferenceServerClient) -> None:
    a = np.ones((1, 4), dtype=np.float32)
    code, msg = status_of(lambda: client.infer("add_sub", add_sub_inputs(a, a)[:1]))
    assert code == "StatusCode.INVALID_ARGUMENT" and "INPUT1" in msg
    code, msg = status_of(lambda: client.infer("add_sub", add_sub_inputs(a, np.ones((1, 3), np.float32))))
    assert code == "StatusCode.INVALID_ARGUMENT" and "INPUT1" in msg
    code, msg = status_of(lambda: client.infer("nope", add_sub_inputs(a, a)))
    assert code == "StatusCode.NOT_FOUND"
    code, msg = status_of(lambda: client.infer("add_sub", add_sub_inputs(a, a), model_version="5"))
    assert code == "StatusCode.NOT_FOUND"
    code, msg = status_of(lambda: client.get_model_metadata("nope"))
    assert code == "StatusCode.NOT_FOUND"
    idx = tg.InferInput("IDX", [1], "INT64")
    idx.set_data_from_numpy(np.array([99], dtype=np.int64))
    code, msg = status_of(lambda: client.infer("gather", [idx]))
    assert code == "StatusCode.INVALID_ARGUMENT"


def test_message_too_large(stub: pb_grpc.GRPCInferenceServiceStub) -> None:
    req = pb.ModelInferRequest(model_name="fixed")
    req.inputs.add(name="X", datatype="FP32", shape=[2, 3])
    req.raw_input_contents.append(b"\0" * (1024 * 1024 + 10))
    with pytest.raises(grpc.RpcError) as info:
        stub.ModelInfer(req)
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
