"""Decoding refuses, before allocating, any request whose declared sizes the bytes present cannot
back, for every datatype and every encoding (REST JSON, REST binary, REST raw, gRPC raw and
typed contents); and the per-request memory bound refuses what would decode too large.

Peak allocations are measured with tracemalloc (numpy reports its buffers to it), so "no
allocation" is checked directly rather than through timing.
"""

from __future__ import annotations

import json
import struct
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from onnx import TensorProto, helper
from tritonclient.grpc import service_pb2 as pb

from modelserver import grpc_codec, rest_codec
from modelserver.datatypes import V2_TO_NUMPY
from modelserver.errors import InvalidInput, RequestTooLarge
from modelserver.limits import MemoryBudget
from modelserver.session import ModelSession

from .conftest import save_model, vi

ONNX_TYPES = {
    "BOOL": TensorProto.BOOL, "UINT8": TensorProto.UINT8, "UINT16": TensorProto.UINT16,
    "UINT32": TensorProto.UINT32, "UINT64": TensorProto.UINT64, "INT8": TensorProto.INT8,
    "INT16": TensorProto.INT16, "INT32": TensorProto.INT32, "INT64": TensorProto.INT64,
    "FP16": TensorProto.FLOAT16, "FP32": TensorProto.FLOAT, "FP64": TensorProto.DOUBLE,
    "BYTES": TensorProto.STRING,
}  # fmt: skip
HUGE = 2**28  # the shape: 268,435,456 elements
SMALL_PEAK = 1024 * 1024  # what a refused request may allocate while being decoded


def identity_session(
    tmp: Path, name: str, inputs: dict[str, tuple[int, list[int | str]]], batch: int = 0
) -> ModelSession:
    nodes = [helper.make_node("Identity", [n], [f"{n}_OUT"]) for n in inputs]
    graph = helper.make_graph(
        nodes,
        name,
        [vi(n, t, shape) for n, (t, shape) in inputs.items()],
        [vi(f"{n}_OUT", t, shape) for n, (t, shape) in inputs.items()],
    )
    path = tmp / name / "model.onnx"
    save_model(graph, path)
    return ModelSession(name, 1, path, providers=["CPUExecutionProvider"], max_batch_size=batch)


@pytest.fixture(scope="module")
def sessions(tmp_path_factory: pytest.TempPathFactory) -> dict[str, ModelSession]:
    tmp = tmp_path_factory.mktemp("limits")
    out = {dt: identity_session(tmp, dt.lower(), {"X": (t, ["n"])}) for dt, t in ONNX_TYPES.items()}
    out["batched"] = identity_session(tmp, "batched", {"X": (TensorProto.FLOAT, ["N", 4])}, batch=8)
    out["bytes1"] = identity_session(tmp, "bytes1", {"S": (TensorProto.STRING, [1])})
    out["two_inputs"] = identity_session(tmp, "two", {"A": (TensorProto.FLOAT, ["n"]), "B": (TensorProto.FLOAT, ["n"])})
    out["two_dynamic"] = identity_session(tmp, "twodyn", {"X": (TensorProto.FLOAT, ["a", "b"])})
    return out


def peak_of(fn: Callable[[], Any]) -> tuple[BaseException | None, int]:
    """Run fn; return what it raised and the peak bytes traced while it ran."""
    tracemalloc.start()
    error: BaseException | None = None
    try:
        fn()
    except BaseException as exc:
        error = exc
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    return error, peak


def binary_body(inputs: list[dict[str, Any]], blobs: list[bytes]) -> tuple[bytes, str]:
    header = json.dumps({"inputs": inputs}).encode()
    return header + b"".join(blobs), str(len(header))


# -- the two requests -------------------------------------------------------------


def test_the_118_byte_rest_request_is_refused_without_allocating(sessions: dict[str, ModelSession]) -> None:
    body, hlen = binary_body(
        [{"name": "X", "datatype": "BYTES", "shape": [HUGE], "parameters": {"binary_data_size": 4}}], [b"\0\0\0\0"]
    )
    assert len(body) <= 118
    error, peak = peak_of(lambda: rest_codec.decode_request(sessions["BYTES"], body, hlen))
    assert isinstance(error, InvalidInput) and error.http_status == 400
    assert "cannot hold 268435456 elements" in error.message and "'X'" in error.message
    assert peak < SMALL_PEAK


def test_the_43_byte_grpc_request_is_refused_without_allocating(sessions: dict[str, ModelSession]) -> None:
    req = pb.ModelInferRequest(model_name="bytes")
    req.inputs.add(name="X", datatype="BYTES", shape=[HUGE])
    req.raw_input_contents.append(b"\0\0\0\0")
    assert req.ByteSize() <= 43
    error, peak = peak_of(lambda: grpc_codec.decode_request(sessions["BYTES"], req))
    assert isinstance(error, InvalidInput) and error.grpc_code.name == "INVALID_ARGUMENT"
    assert "cannot hold 268435456 elements" in error.message
    assert peak < SMALL_PEAK


# -- every datatype, every encoding: huge shape, few bytes -----------------------------------


@pytest.mark.parametrize("datatype", list(ONNX_TYPES))
def test_huge_shape_with_little_data_is_refused_for_every_datatype(
    sessions: dict[str, ModelSession], datatype: str
) -> None:
    session = sessions[datatype]
    # REST binary extension
    body, hlen = binary_body(
        [{"name": "X", "datatype": datatype, "shape": [HUGE], "parameters": {"binary_data_size": 8}}], [b"\0" * 8]
    )
    error, peak = peak_of(lambda: rest_codec.decode_request(session, body, hlen))
    assert isinstance(error, InvalidInput), error
    assert peak < SMALL_PEAK
    # REST JSON
    data: list[Any] = [""] * 2 if datatype == "BYTES" else [0, 0]
    body = json.dumps({"inputs": [{"name": "X", "datatype": datatype, "shape": [HUGE], "data": data}]}).encode()
    error, peak = peak_of(lambda: rest_codec.decode_request(session, body, None))
    assert isinstance(error, InvalidInput) and "elements of data" in error.message, error
    assert peak < SMALL_PEAK
    # gRPC raw_input_contents
    req = pb.ModelInferRequest(model_name=session.name)
    req.inputs.add(name="X", datatype=datatype, shape=[HUGE])
    req.raw_input_contents.append(b"\0" * 8)
    error, peak = peak_of(lambda: grpc_codec.decode_request(session, req))
    assert isinstance(error, InvalidInput), error
    assert peak < SMALL_PEAK
    # gRPC typed contents (FP16 has no typed field: refused by name)
    req = pb.ModelInferRequest(model_name=session.name)
    t = req.inputs.add(name="X", datatype=datatype, shape=[HUGE])
    field = grpc_codec._CONTENTS_FIELD.get(datatype)
    if field == "bytes_contents":
        t.contents.bytes_contents.extend([b"a", b"b"])
    elif field == "bool_contents":
        t.contents.bool_contents.extend([True, False])
    elif field is not None:
        getattr(t.contents, field).extend([1, 2])
    error, peak = peak_of(lambda: grpc_codec.decode_request(session, req))
    assert isinstance(error, InvalidInput), error
    assert peak < SMALL_PEAK


@pytest.mark.parametrize("datatype", [d for d in ONNX_TYPES if d != "BYTES"])
def test_valid_requests_of_every_datatype_still_decode(sessions: dict[str, ModelSession], datatype: str) -> None:
    dtype = V2_TO_NUMPY[datatype]
    values = np.array([1, 0, 1], dtype=dtype)
    body, hlen = binary_body(
        [{"name": "X", "datatype": datatype, "shape": [3], "parameters": {"binary_data_size": values.nbytes}}],
        [values.tobytes()],
    )
    req = rest_codec.decode_request(sessions[datatype], body, hlen)
    np.testing.assert_array_equal(req.feeds["X"], values)
    greq = pb.ModelInferRequest()
    greq.inputs.add(name="X", datatype=datatype, shape=[3])
    greq.raw_input_contents.append(values.tobytes())
    feeds, _, _ = grpc_codec.decode_request(sessions[datatype], greq)
    np.testing.assert_array_equal(feeds["X"], values)


# -- the per-request memory bound ----------------------------------------------------------


def test_bytes_tensor_over_the_memory_bound_is_413_before_decoding(sessions: dict[str, ModelSession]) -> None:
    count = 100_000  # 100,000 one-letter strings: 500 kB on the wire, ~6 MB decoded
    blob = b"".join(struct.pack("<I", 1) + b"a" for _ in range(count))
    body, hlen = binary_body(
        [{"name": "X", "datatype": "BYTES", "shape": [count], "parameters": {"binary_data_size": len(blob)}}], [blob]
    )
    error, peak = peak_of(lambda: rest_codec.decode_request(sessions["BYTES"], body, hlen, max_memory=2 * 1024 * 1024))
    assert isinstance(error, RequestTooLarge) and error.http_status == 413
    assert "input 'X'" in error.message and "--max-request-memory" in error.message
    assert peak < SMALL_PEAK
    # the same request under a bound it fits decodes completely
    req = rest_codec.decode_request(sessions["BYTES"], body, hlen, max_memory=64 * 1024 * 1024)
    assert req.feeds["X"].shape == (count,) and req.feeds["X"][-1] == "a"


def test_grpc_typed_contents_over_the_memory_bound_is_refused(sessions: dict[str, ModelSession]) -> None:
    req = pb.ModelInferRequest()
    req.inputs.add(name="X", datatype="INT64", shape=[300_000]).contents.int64_contents.extend(range(300_000))
    with pytest.raises(RequestTooLarge, match="input 'X'"):
        grpc_codec.decode_request(sessions["INT64"], req, max_memory=1024 * 1024)
    feeds, _, _ = grpc_codec.decode_request(sessions["INT64"], req, max_memory=8 * 1024 * 1024)
    assert int(feeds["X"][-1]) == 299_999


def test_json_that_would_parse_too_large_is_refused_before_parsing(sessions: dict[str, ModelSession]) -> None:
    # 400,000 empty lists: 1.2 MB of JSON that parses into ~26 MB of Python objects.
    body = b'{"inputs":[{"name":"X","datatype":"FP32","shape":[1],"data":[' + b",".join([b"[]"] * 400_000) + b"]}]}"
    error, peak = peak_of(lambda: rest_codec.decode_request(sessions["FP32"], body, None, max_memory=8 * 1024 * 1024))
    assert isinstance(error, RequestTooLarge) and "request JSON" in error.message
    assert peak < SMALL_PEAK


def test_json_estimate_is_an_upper_bound_of_what_parsing_allocates() -> None:
    from modelserver import jsonio

    cases = [
        b"[" + b",".join([b"[]"] * 50_000) + b"]",
        b"[" + b",".join([b"{}"] * 50_000) + b"]",
        b"[" + b",".join([b'"a"'] * 50_000) + b"]",
        b"[" + b",".join([b"1.5"] * 50_000) + b"]",
        b"[" + b",".join([b"123456789"] * 50_000) + b"]",
        b"[" + b",".join([b'{"a":1}'] * 20_000) + b"]",
        b"{" + b",".join(b'"k%d":1' % i for i in range(20_000)) + b"}",
        b"[" + b",".join([b'"' + b"x" * 100 + b'"'] * 5_000) + b"]",
        b"[" + b",".join([b'"\\ud83d\\ude00"'] * 20_000) + b"]",
        b"[" + b",".join([b"1" * 300] * 2_000) + b"]",
    ]
    for text in cases:
        tracemalloc.start()
        parsed = jsonio.loads(text)
        _, actual = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        del parsed
        budget = MemoryBudget(1)  # charge_json scans whenever it cannot skip
        with pytest.raises(RequestTooLarge):
            budget.charge_json(text)
        assert budget.used >= actual, (text[:20], budget.used, actual)


# -- raw binary requests (Inference-Header-Content-Length: 0) ---------------------------------


def test_raw_request_feeds_the_single_input_with_its_shape_deduced(sessions: dict[str, ModelSession]) -> None:
    values = np.arange(6, dtype=np.float32)
    req = rest_codec.decode_request(sessions["FP32"], values.tobytes(), "0")
    np.testing.assert_array_equal(req.feeds["X"], values)
    assert req.outputs is None and req.binary_default is True  # every output, in binary (as Triton)
    # a batching model: the batch dimension is 1, the variable one comes from the size
    req = rest_codec.decode_request(sessions["batched"], np.ones(4, np.float32).tobytes(), "0")
    assert req.feeds["X"].shape == (1, 4) and req.batch == 1


def test_raw_bytes_request_is_one_element(sessions: dict[str, ModelSession]) -> None:
    req = rest_codec.decode_request(sessions["bytes1"], b"427", "0")
    assert req.feeds["S"].tolist() == ["427"]


def test_raw_request_refusals_name_the_reason(sessions: dict[str, ModelSession]) -> None:
    with pytest.raises(InvalidInput, match="exactly 1 input") as info:
        rest_codec.decode_request(sessions["two_inputs"], b"\0" * 8, "0")
    assert "has 2 inputs" in info.value.message
    with pytest.raises(InvalidInput, match=r"BYTES input 'X' must have shape \[1\]"):
        rest_codec.decode_request(sessions["BYTES"], b"427", "0")
    with pytest.raises(InvalidInput, match="more than one variable-size dimension"):
        rest_codec.decode_request(sessions["two_dynamic"], b"\0" * 8, "0")
    with pytest.raises(InvalidInput, match="do not make whole elements"):
        rest_codec.decode_request(sessions["FP32"], b"\0" * 7, "0")
    with pytest.raises(InvalidInput, match="expected 16"):
        rest_codec.decode_request(sessions["batched"], b"\0" * 12, "0")


@pytest.fixture(autouse=True)
def _no_tracing_left() -> Iterator[None]:
    yield
    if tracemalloc.is_tracing():
        tracemalloc.stop()


def test_memory_bound_flag_reaches_the_server_config() -> None:
    from modelserver.cli import build_parser

    args = build_parser().parse_args(["serve", "--model-repository", "/m", "--max-request-memory", "16Mi"])
    assert args.max_request_memory == 16 * 1024 * 1024
    default = build_parser().parse_args(["serve", "--model-repository", "/m"])
    assert default.max_request_memory == 256 * 1024 * 1024
