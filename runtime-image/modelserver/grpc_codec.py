"""Decode gRPC ``ModelInferRequest`` messages and build ``ModelInferResponse`` messages.

Tensors arrive either in ``raw_input_contents`` (what tritonclient.grpc sends: one raw
buffer per input, in order) or in the typed ``contents`` fields. Responses always use
``raw_output_contents``, as Triton does.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from tritonclient.grpc import service_pb2 as pb

from modelserver.datatypes import deserialize_bytes, serialize_bytes, strings_from_protobuf
from modelserver.errors import InvalidInput, ServingError
from modelserver.limits import DEFAULT_MAX_REQUEST_MEMORY, MemoryBudget, bytes_tensor_size
from modelserver.session import Array, ModelSession

_CONTENTS_FIELD = {
    "BOOL": "bool_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
    "BYTES": "bytes_contents",
}


def decode_request(
    session: ModelSession, req: pb.ModelInferRequest, max_memory: int = DEFAULT_MAX_REQUEST_MEMORY
) -> tuple[dict[str, Array], int, list[str] | None]:
    try:
        return _decode(session, req, MemoryBudget(max_memory))
    except ServingError:
        raise
    except Exception as exc:  # anything raised while parsing is the request's fault
        raise InvalidInput(f"malformed inference request: {type(exc).__name__}: {exc}") from None


def _decode(
    session: ModelSession, req: pb.ModelInferRequest, budget: MemoryBudget
) -> tuple[dict[str, Array], int, list[str] | None]:
    if not req.inputs:
        raise InvalidInput("request has no inputs")
    raw = req.raw_input_contents
    if raw and len(raw) != len(req.inputs):
        raise InvalidInput(f"{len(raw)} raw_input_contents for {len(req.inputs)} inputs")
    feeds: dict[str, Array] = {}
    for i, t in enumerate(req.inputs):
        if t.name in feeds:
            raise InvalidInput(f"input '{t.name}' given twice")
        shape = list(t.shape)
        spec, count = session.check_input(t.name, t.datatype, shape)
        has_contents = t.HasField("contents")
        if raw:
            if has_contents:
                raise InvalidInput(f"input '{t.name}': both contents and raw_input_contents given")
            buf = raw[i]
            if t.datatype == "BYTES":
                arr: Array = deserialize_bytes(t.name, buf, count, budget)
            else:
                want = count * spec.dtype.itemsize
                if len(buf) != want:
                    raise InvalidInput(
                        f"input '{t.name}': {len(buf)} bytes of data for shape {shape} of {t.datatype} "
                        f"(expected {want})"
                    )
                budget.charge(f"input '{t.name}'", want)
                arr = np.frombuffer(buf, dtype=spec.dtype, count=count)
        else:
            arr = _from_contents(t, spec.dtype, count, budget)
        feeds[t.name] = arr.reshape(shape)
    batch = session.check_complete(feeds)
    requested: list[str] | None = None
    if req.outputs:
        requested = list(dict.fromkeys(o.name for o in req.outputs))
        session.check_outputs(requested)
    return feeds, batch, requested


def _from_contents(t: Any, dtype: np.dtype[Any], count: int, budget: MemoryBudget) -> Array:
    field = _CONTENTS_FIELD.get(t.datatype)
    if field is None:
        raise InvalidInput(f"input '{t.name}': {t.datatype} must be sent in raw_input_contents")
    values = getattr(t.contents, field)
    if len(values) != count:
        raise InvalidInput(f"input '{t.name}': {len(values)} elements of data for shape of {count} elements")
    if t.datatype == "BYTES":
        budget.charge(f"input '{t.name}'", bytes_tensor_size(count, sum(len(v) for v in values)))
        return strings_from_protobuf(t.name, values)
    budget.charge(f"input '{t.name}'", count * dtype.itemsize)
    try:
        # fromiter converts element by element: no list of Python numbers in between.
        return np.fromiter(values, dtype=dtype, count=count)
    except (ValueError, OverflowError) as exc:
        raise InvalidInput(f"input '{t.name}': data does not fit {t.datatype}: {exc}") from None


def encode_response(
    req: pb.ModelInferRequest, version: int, session: ModelSession, outputs: dict[str, Array]
) -> pb.ModelInferResponse:
    datatypes = session.output_datatypes
    resp = pb.ModelInferResponse(model_name=req.model_name, model_version=str(version), id=req.id)
    raw: list[bytes] = []
    for name, arr in outputs.items():
        datatype = datatypes[name]
        resp.outputs.add(name=name, datatype=datatype, shape=arr.shape)
        raw.append(serialize_bytes(arr) if datatype == "BYTES" else arr.tobytes())
    resp.raw_output_contents.extend(raw)
    return resp
