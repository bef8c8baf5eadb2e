"""The REST front end, driven by tritonclient.http (unchanged) and by raw HTTP for bad requests."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator

import numpy as np
import pytest
import tritonclient.http as th
from tritonclient.utils import InferenceServerException

from .conftest import RunningServer


@pytest.fixture
def client(server: RunningServer) -> Iterator[th.InferenceServerClient]:
    c = th.InferenceServerClient(server.http_url)
    yield c
    c.close()


def raw(
    server: RunningServer, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", server.handle.http_port, timeout=10)
    conn.request(method, path, body=body, headers=headers or {})
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    return resp.status, data


def add_sub_inputs(a: np.ndarray, b: np.ndarray, *, binary: tuple[bool, bool] = (True, True)) -> list[th.InferInput]:
    ins = [th.InferInput("INPUT0", list(a.shape), "FP32"), th.InferInput("INPUT1", list(b.shape), "FP32")]
    ins[0].set_data_from_numpy(a, binary_data=binary[0])
    ins[1].set_data_from_numpy(b, binary_data=binary[1])
    return ins


def test_health_and_server_metadata(client: th.InferenceServerClient) -> None:
    assert client.is_server_live()
    assert client.is_server_ready()
    meta = client.get_server_metadata()
    assert meta["name"] == "modelserver"
    assert "binary_tensor_data" in meta["extensions"]


def test_model_metadata_and_readiness(client: th.InferenceServerClient) -> None:
    meta = client.get_model_metadata("add_sub")
    assert meta["versions"] == ["1", "2"]
    assert meta["platform"] == "onnxruntime_onnx"
    assert meta["inputs"] == [
        {"name": "INPUT0", "datatype": "FP32", "shape": [-1, 4]},
        {"name": "INPUT1", "datatype": "FP32", "shape": [-1, 4]},
    ]
    assert [o["name"] for o in meta["outputs"]] == ["OUTPUT0", "OUTPUT1"]
    assert client.is_model_ready("add_sub")
    assert client.is_model_ready("add_sub", "1")
    assert not client.is_model_ready("add_sub", "7")
    assert not client.is_model_ready("nope")
    fixed = client.get_model_metadata("fixed", "1")
    assert fixed["inputs"][0]["shape"] == [2, 3]


def test_model_config(client: th.InferenceServerClient) -> None:
    cfg = client.get_model_config("add_sub")
    assert cfg["max_batch_size"] == 8
    assert cfg["input"][0]["dims"] == [4]
    assert cfg["dynamic_batching"]["max_queue_delay_microseconds"] == 20000
    assert client.get_model_config("types")["max_batch_size"] == 0


@pytest.mark.parametrize("binary", [(True, True), (False, False), (True, False)])
def test_infer_binary_and_json_inputs(client: th.InferenceServerClient, binary: tuple[bool, bool]) -> None:
    a = np.arange(8, dtype=np.float32).reshape(2, 4)
    b = np.full((2, 4), 0.5, dtype=np.float32)
    res = client.infer("add_sub", add_sub_inputs(a, b, binary=binary))
    np.testing.assert_allclose(res.as_numpy("OUTPUT0"), a + b + 100)  # latest version is 2
    np.testing.assert_allclose(res.as_numpy("OUTPUT1"), a - b)
    assert res.get_response()["model_version"] == "2"


def test_infer_version_and_requested_json_output(client: th.InferenceServerClient) -> None:
    a = np.ones((1, 4), dtype=np.float32)
    out = [th.InferRequestedOutput("OUTPUT0", binary_data=False)]
    res = client.infer("add_sub", add_sub_inputs(a, a), model_version="1", outputs=out, request_id="r-7")
    body = res.get_response()
    assert body["id"] == "r-7"
    assert [o["name"] for o in body["outputs"]] == ["OUTPUT0"]
    assert body["outputs"][0]["data"] == [2.0, 2.0, 2.0, 2.0]
    assert res.as_numpy("OUTPUT1") is None


def test_infer_all_datatypes(client: th.InferenceServerClient) -> None:
    data: dict[str, tuple[np.ndarray, str]] = {
        "F16": (np.array([1.5, -2.0, 3.25], dtype=np.float16), "FP16"),
        "I64": (np.array([5, -6], dtype=np.int64), "INT64"),
        "B": (np.array([True, False, True]), "BOOL"),
        "S": (np.array([b"hi", "héllo".encode(), b""], dtype=object), "BYTES"),
    }
    for binary in (True, False):
        inputs = []
        for name, (arr, dt) in data.items():
            inp = th.InferInput(name, list(arr.shape), dt)
            inp.set_data_from_numpy(arr, binary_data=binary or dt == "FP16")
            inputs.append(inp)
        outs = [th.InferRequestedOutput(n + "_OUT", binary_data=binary) for n in data]
        res = client.infer("types", inputs, outputs=outs)
        np.testing.assert_array_equal(res.as_numpy("F16_OUT"), data["F16"][0])
        np.testing.assert_array_equal(res.as_numpy("I64_OUT"), data["I64"][0] + 1)
        np.testing.assert_array_equal(res.as_numpy("B_OUT"), ~data["B"][0])
        got = res.as_numpy("S_OUT")
        assert [x if isinstance(x, bytes) else x.encode() for x in got] == list(data["S"][0])


def expect_error(fn, status_text: str, *needles: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InferenceServerException) as info:
        fn()
    msg = str(info.value)
    for n in needles:
        assert n in msg, msg
    assert status_text in str(info.value.status()), (info.value.status(), msg)


def test_validation_errors_name_the_input(client: th.InferenceServerClient) -> None:
    a = np.ones((1, 4), dtype=np.float32)
    only_one = add_sub_inputs(a, a)[:1]
    expect_error(lambda: client.infer("add_sub", only_one), "400", "INPUT1")
    wrong_shape = add_sub_inputs(a, np.ones((1, 5), dtype=np.float32))
    expect_error(lambda: client.infer("add_sub", wrong_shape), "400", "INPUT1")
    bad_dtype = [th.InferInput("INPUT0", [1, 4], "FP64"), th.InferInput("INPUT1", [1, 4], "FP32")]
    bad_dtype[0].set_data_from_numpy(np.ones((1, 4)))
    bad_dtype[1].set_data_from_numpy(a)
    expect_error(lambda: client.infer("add_sub", bad_dtype), "400", "INPUT0", "FP64")
    unknown = [*add_sub_inputs(a, a), th.InferInput("EXTRA", [1], "FP32")]
    unknown[2].set_data_from_numpy(np.ones(1, dtype=np.float32))
    expect_error(lambda: client.infer("add_sub", unknown), "400", "EXTRA")
    too_big = add_sub_inputs(np.ones((9, 4), np.float32), np.ones((9, 4), np.float32))
    expect_error(lambda: client.infer("add_sub", too_big), "400", "max_batch_size")
    bad_out = [th.InferRequestedOutput("NOPE")]
    expect_error(lambda: client.infer("add_sub", add_sub_inputs(a, a), outputs=bad_out), "400", "NOPE")


def test_unknown_model_and_version_are_404(client: th.InferenceServerClient) -> None:
    a = np.ones((1, 4), dtype=np.float32)
    expect_error(lambda: client.infer("nope", add_sub_inputs(a, a)), "404", "nope")
    expect_error(lambda: client.infer("add_sub", add_sub_inputs(a, a), model_version="9"), "404", "9")
    expect_error(lambda: client.get_model_metadata("nope"), "404")


def test_data_length_mismatch_raw(server: RunningServer) -> None:
    header = {
        "inputs": [
            {"name": "X", "datatype": "FP32", "shape": [2, 3], "parameters": {"binary_data_size": 20}},
        ]
    }
    hb = json.dumps(header).encode()
    status, body = raw(
        server, "POST", "/v2/models/fixed/infer", hb + b"\0" * 20, {"Inference-Header-Content-Length": str(len(hb))}
    )
    assert status == 400
    assert b"'X'" in body
    j = {"inputs": [{"name": "X", "datatype": "FP32", "shape": [2, 3], "data": [1, 2, 3]}]}
    status, body = raw(server, "POST", "/v2/models/fixed/infer", json.dumps(j).encode())
    assert status == 400 and b"'X'" in body
    j["inputs"][0]["data"] = [1, 2, 3, 4, 5, 6]
    status, body = raw(server, "POST", "/v2/models/fixed/infer", json.dumps(j).encode())
    assert status == 200
    assert json.loads(body)["outputs"][0]["data"] == [6.0, 15.0]


def test_model_runtime_error_is_400_not_500(server: RunningServer) -> None:
    j = {"inputs": [{"name": "IDX", "datatype": "INT64", "shape": [2], "data": [0, 7]}]}
    status, body = raw(server, "POST", "/v2/models/gather/infer", json.dumps(j).encode())
    assert status == 400, body
    j["inputs"][0]["data"] = [2, 0]
    status, body = raw(server, "POST", "/v2/models/gather/infer", json.dumps(j).encode())
    assert status == 200 and json.loads(body)["outputs"][0]["data"] == [30.0, 10.0]


def test_request_too_large_is_413(server: RunningServer) -> None:
    big = b"x" * (1024 * 1024 + 1)  # the fixture limits bodies to 1 MiB
    status, _ = raw(server, "POST", "/v2/models/fixed/infer", big)
    assert status == 413


def test_malformed_bodies_are_400(server: RunningServer) -> None:
    for body, headers in [
        (b"{not json", {}),
        (b"[]", {}),
        (b'{"inputs": 3}', {}),
        (b'{"inputs": [{"name": "X"}]}', {}),
        (b'{"inputs": []}', {}),
        (b"{}", {"Inference-Header-Content-Length": "99"}),
        (b"{}", {"Inference-Header-Content-Length": "-1"}),
        (b"\xff\xfe", {}),
    ]:
        status, data = raw(server, "POST", "/v2/models/fixed/infer", body, headers)
        assert status == 400, (body, data)
        assert "error" in json.loads(data)
