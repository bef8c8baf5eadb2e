"""1,000 generated malformed requests (700 REST + 300 gRPC): every answer must be a client
error (4xx / INVALID_ARGUMENT / NOT_FOUND), and the server must still serve afterwards."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from typing import Any

import grpc
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tritonclient.grpc import service_pb2 as pb
from tritonclient.grpc import service_pb2_grpc as pb_grpc

from .conftest import RunningServer

pytestmark = pytest.mark.timeout(120)

FUZZ = settings(
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
DATATYPES = ["BOOL", "INT8", "INT32", "INT64", "UINT8", "FP16", "FP32", "FP64", "BYTES", "BF16", "fp32", ""]
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=12,
)
numbers = st.integers(-(2**31), 2**31) | st.floats(allow_nan=False, width=32)
bad_shapes = st.lists(st.integers(-3, 9), max_size=4).filter(lambda s: s != [2, 3])
bad_data = st.lists(
    st.none() | st.text(max_size=3) | st.dictionaries(st.text(max_size=2), st.integers()), min_size=6, max_size=6
)


def good_input() -> dict[str, Any]:
    return {"name": "X", "datatype": "FP32", "shape": [2, 3], "data": [1, 2, 3, 4, 5, 6]}


class Http:
    """A keep-alive connection that reconnects when the server closed it (e.g. after a 413)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)

    def request(self, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        for attempt in (0, 1):
            try:
                self.conn.request("POST", path, body=body, headers=headers)
                resp = self.conn.getresponse()
                return resp.status, resp.read()
            except (ConnectionError, http.client.HTTPException):
                self.conn.close()
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
                if attempt:
                    raise
        raise AssertionError("unreachable")


@st.composite
def rest_requests(draw: st.DrawFn) -> tuple[str, bytes, dict[str, str]]:
    """(path, body, headers) guaranteed to be malformed in one way or another."""
    path = "/v2/models/fixed/infer"
    headers: dict[str, str] = {}
    kind = draw(st.integers(0, 13))
    header: Any = {"inputs": [good_input()]}
    inp = header["inputs"][0]
    blob = b""
    if kind == 0:  # arbitrary bytes
        return path, draw(st.binary(max_size=200)), headers
    if kind == 1:  # arbitrary JSON
        header = draw(json_values)
    elif kind == 2:
        inp["name"] = draw(st.text(max_size=6).filter(lambda n: n != "X"))
    elif kind == 3:
        inp["datatype"] = draw(st.sampled_from(DATATYPES).filter(lambda d: d != "FP32") | st.integers())
    elif kind == 4:
        inp["shape"] = draw(bad_shapes | st.lists(json_values, min_size=1, max_size=3))
    elif kind == 5:
        inp["data"] = draw(st.lists(numbers, max_size=12).filter(lambda d: len(d) != 6))
    elif kind == 6:
        inp["data"] = draw(bad_data)
    elif kind == 7:  # binary data whose size disagrees with the shape or the body
        del inp["data"]
        blob = draw(st.binary(max_size=40))
        claimed = draw(st.integers(-5, 60).filter(lambda n: n != 24 or len(blob) != 24))
        inp["parameters"] = {"binary_data_size": claimed}
    elif kind == 8:
        header["inputs"] = draw(st.sampled_from([[], [good_input(), good_input()], "X", None]))
    elif kind == 9:
        header["outputs"] = [{"name": draw(st.text(max_size=5).filter(lambda n: n != "Y"))}]
    elif kind == 10:
        path = draw(st.sampled_from(["/v2/models/{}/infer", "/v2/models/fixed/versions/{}/infer"])).format(
            draw(st.text(alphabet="abcxyz0123456789", min_size=1, max_size=5).filter(lambda v: v not in ("fixed", "1")))
        )
    elif kind == 11:
        if draw(st.booleans()):
            inp["parameters"] = draw(json_values.filter(lambda v: not isinstance(v, dict) and v is not None))
        else:
            inp["data"] = draw(json_values.filter(lambda v: not isinstance(v, list)))
    elif kind == 12:  # header length pointing past the body or not a number
        headers["Inference-Header-Content-Length"] = draw(st.sampled_from(["-1", "abc", "99999", "1.5", ""]))
    else:  # BYTES model with malformed length prefixes
        path = "/v2/models/types/infer"
        raw = draw(st.binary(max_size=12))
        header = {
            "inputs": [{"name": "S", "datatype": "BYTES", "shape": [2], "parameters": {"binary_data_size": len(raw)}}]
        }
        blob = raw
    hb = json.dumps(header).encode()
    if blob or kind in (7, 13):
        headers.setdefault("Inference-Header-Content-Length", str(len(hb)))
    return path, hb + blob, headers


@pytest.fixture(scope="module")
def http_conn(server: RunningServer) -> Iterator[Http]:
    h = Http(server.handle.http_port)
    yield h
    h.conn.close()


@settings(FUZZ, max_examples=700)
@given(req=rest_requests())
def test_fuzz_rest(http_conn: Http, req: tuple[str, bytes, dict[str, str]]) -> None:
    path, body, headers = req
    status, data = http_conn.request(path, body, headers)
    assert 400 <= status < 500, (status, data, req)


@st.composite
def grpc_requests(draw: st.DrawFn) -> pb.ModelInferRequest:
    req = pb.ModelInferRequest(model_name="fixed")
    x = req.inputs.add(name="X", datatype="FP32", shape=[2, 3])
    good = np.arange(6, dtype=np.float32).tobytes()
    kind = draw(st.integers(0, 10))
    if kind == 0:
        req.model_name = draw(st.text(max_size=8).filter(lambda n: n not in ("fixed", "add_sub", "types", "gather")))
    elif kind == 1:
        req.model_version = draw(st.text(max_size=4).filter(lambda v: v not in ("", "1")))
    elif kind == 2:
        x.name = draw(st.text(max_size=6).filter(lambda n: n != "X"))
    elif kind == 3:
        x.datatype = draw(st.sampled_from(DATATYPES).filter(lambda d: d != "FP32"))
    elif kind == 4:
        del x.shape[:]
        x.shape.extend(draw(st.lists(st.integers(-(2**40), 2**40), max_size=4).filter(lambda s: s != [2, 3])))
    if kind in (0, 1, 2, 3, 4):
        req.raw_input_contents.append(good)
    elif kind == 5:  # raw data of the wrong length
        req.raw_input_contents.append(draw(st.binary(max_size=48).filter(lambda b: len(b) != 24)))
    elif kind == 6:  # raw buffers not matching the number of inputs
        req.raw_input_contents.extend([good] * draw(st.sampled_from([2, 3])))
    elif kind == 7:  # typed contents with the wrong count or in the wrong field
        field = draw(st.sampled_from(["fp32_contents", "int64_contents", "bytes_contents"]))
        n = draw(st.integers(0, 10).filter(lambda k: k != 6 or field != "fp32_contents"))
        getattr(x.contents, field).extend([b"a"] * n if field == "bytes_contents" else [1] * n)
    elif kind == 8:  # contents and raw at once, or a second copy of the input
        if draw(st.booleans()):
            x.contents.fp32_contents.extend([1] * 6)
            req.raw_input_contents.append(good)
        else:
            req.inputs.add(name="X", datatype="FP32", shape=[2, 3])
            req.raw_input_contents.extend([good, good])
    elif kind == 9:
        req.raw_input_contents.append(good)
        req.outputs.add(name=draw(st.text(max_size=5).filter(lambda n: n != "Y")))
    else:  # BYTES with malformed length prefixes
        req.model_name = "types"
        del req.inputs[:]
        req.inputs.add(name="S", datatype="BYTES", shape=[draw(st.integers(0, 3))])
        req.raw_input_contents.append(draw(st.binary(max_size=16)))
        for name, dt in (("F16", "FP16"), ("I64", "INT64"), ("B", "BOOL")):
            req.inputs.add(name=name, datatype=dt, shape=[1])
            req.raw_input_contents.append(b"\0" * (2 if dt == "FP16" else 8 if dt == "INT64" else 1))
        # a well-formed BYTES payload of the right count would be valid; make sure it is not
        raw = req.raw_input_contents[0]
        count = req.inputs[0].shape[0]
        if _valid_bytes(raw, count):
            req.raw_input_contents[0] = raw + b"\x01"
    return req


def _valid_bytes(buf: bytes, count: int) -> bool:
    pos = 0
    for _ in range(count):
        if pos + 4 > len(buf):
            return False
        n = int.from_bytes(buf[pos : pos + 4], "little")
        pos += 4 + n
        if pos > len(buf):
            return False
        try:
            buf[pos - n : pos].decode()
        except UnicodeDecodeError:
            return False
    return pos == len(buf)


@pytest.fixture(scope="module")
def grpc_stub(server: RunningServer) -> Iterator[pb_grpc.GRPCInferenceServiceStub]:
    with grpc.insecure_channel(server.grpc_url) as ch:
        yield pb_grpc.GRPCInferenceServiceStub(ch)


@settings(FUZZ, max_examples=300)
@given(req=grpc_requests())
def test_fuzz_grpc(grpc_stub: pb_grpc.GRPCInferenceServiceStub, req: pb.ModelInferRequest) -> None:
    with pytest.raises(grpc.RpcError) as info:
        grpc_stub.ModelInfer(req, timeout=10)
    assert info.value.code() in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND), (
        info.value.code(),
        info.value.details(),
        req,
    )


def test_still_serving_after_fuzz(http_conn: Http, grpc_stub: pb_grpc.GRPCInferenceServiceStub) -> None:
    status, data = http_conn.request("/v2/models/fixed/infer", json.dumps({"inputs": [good_input()]}).encode(), {})
    assert status == 200, data
    assert json.loads(data)["outputs"][0]["data"] == [6.0, 15.0]
    req = pb.ModelInferRequest(model_name="fixed")
    req.inputs.add(name="X", datatype="FP32", shape=[2, 3])
    req.raw_input_contents.append(np.ones(6, dtype=np.float32).tobytes())
    resp = grpc_stub.ModelInfer(req, timeout=10)
    assert np.frombuffer(resp.raw_output_contents[0], dtype=np.float32).tolist() == [3.0, 3.0]
