"""Decode v2 REST infer requests and encode responses, JSON and binary-tensor extension.

A request body is a JSON header optionally followed by raw tensor bytes; the header length
comes from ``Inference-Header-Content-Length`` and each binary input says its
``binary_data_size``. Binary inputs become numpy views on the body (no copy).

``Inference-Header-Content-Length: 0`` is Triton's raw binary request: no JSON at all, the
whole body is the data of the model's only input, whose shape is deduced from the body's size.

Every size a request declares is checked against the bytes present, and what decoding will
allocate is charged to the request's ``MemoryBudget``, before any allocation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from modelserver import jsonio
from modelserver.datatypes import as_str_list, deserialize_bytes, serialize_bytes, strings_from_json
from modelserver.errors import InvalidInput, ServingError
from modelserver.limits import DEFAULT_MAX_REQUEST_MEMORY, MemoryBudget, bytes_tensor_size
from modelserver.session import Array, ModelSession

HEADER_LENGTH = "Inference-Header-Content-Length"


@dataclass
class RestRequest:
    id: str | None
    feeds: dict[str, Array]
    batch: int
    outputs: list[str] | None
    binary: dict[str, bool] = field(default_factory=dict)  # per-output choice of binary encoding
    binary_default: bool = False


def decode_request(
    session: ModelSession,
    body: bytes,
    header_length: str | None,
    max_memory: int = DEFAULT_MAX_REQUEST_MEMORY,
) -> RestRequest:
    budget = MemoryBudget(max_memory)
    try:
        return _decode(session, body, header_length, budget)
    except ServingError:
        raise
    except Exception as exc:  # anything else raised while parsing is still the request's fault
        raise InvalidInput(f"malformed inference request: {type(exc).__name__}: {exc}") from None


def _decode(session: ModelSession, body: bytes, header_length: str | None, budget: MemoryBudget) -> RestRequest:
    if header_length is None:
        hlen = len(body)
    else:
        if not (header_length.isascii() and header_length.strip().isdigit()):
            raise InvalidInput(f"{HEADER_LENGTH} must be a non-negative integer")
        hlen = int(header_length)
        if hlen == 0:
            return _decode_raw(session, body, budget)
        if hlen > len(body):
            raise InvalidInput(f"{HEADER_LENGTH} {hlen} exceeds the body length {len(body)}")
    text = body if hlen == len(body) else memoryview(body)[:hlen]
    budget.charge_json(text)
    try:
        header = jsonio.loads(text)
    except (ValueError, RecursionError, jsonio.JSONDecodeError) as exc:
        raise InvalidInput(f"request header is not valid JSON: {exc}") from None
    if not isinstance(header, dict):
        raise InvalidInput("request header must be a JSON object")
    inputs = header.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise InvalidInput("request needs a non-empty 'inputs' list")
    params = _params(header, "request")
    req_id = header.get("id")
    if req_id is not None and not isinstance(req_id, str):
        raise InvalidInput("'id' must be a string")

    feeds: dict[str, Array] = {}
    offset = hlen
    for item in inputs:
        if not isinstance(item, dict):
            raise InvalidInput("each input must be a JSON object")
        name, datatype, shape = item.get("name"), item.get("datatype"), item.get("shape")
        if not isinstance(name, str) or not isinstance(datatype, str) or not isinstance(shape, list):
            raise InvalidInput("each input needs a string 'name', a string 'datatype' and a 'shape' list")
        if name in feeds:
            raise InvalidInput(f"input '{name}' given twice")
        spec, count = session.check_input(name, datatype, shape)
        size = _params(item, f"input '{name}'").get("binary_data_size")
        if size is not None:
            if type(size) is not int or size < 0 or offset + size > len(body):
                raise InvalidInput(f"input '{name}': binary_data_size {size!r} does not fit the body")
            if datatype == "BYTES":
                arr: Array = deserialize_bytes(name, memoryview(body)[offset : offset + size], count, budget)
            else:
                if size != count * spec.dtype.itemsize:
                    raise InvalidInput(
                        f"input '{name}': {size} bytes of data for shape {shape} of {datatype} "
                        f"(expected {count * spec.dtype.itemsize})"
                    )
                budget.charge(f"input '{name}'", size)  # a view now, but ORT may copy it
                arr = np.frombuffer(body, dtype=spec.dtype, count=count, offset=offset)
                if not arr.flags.aligned:
                    arr = arr.copy()
            offset += size
        else:
            if "data" not in item:
                raise InvalidInput(f"input '{name}' has neither 'data' nor binary_data_size")
            # Bounded already: charge_json counted every parsed value and its numpy element.
            arr = _from_json(name, datatype, spec.dtype, item["data"], count)
        feeds[name] = arr.reshape(shape)
    if offset != len(body):
        raise InvalidInput(f"{len(body) - offset} bytes of binary data are not claimed by any input")
    batch = session.check_complete(feeds)

    binary_default = params.get("binary_data_output", False) is True
    requested: list[str] | None = None
    binary: dict[str, bool] = {}
    outs = header.get("outputs")
    if outs is not None:
        if not isinstance(outs, list):
            raise InvalidInput("'outputs' must be a list")
        requested = []
        for o in outs:
            if not isinstance(o, dict) or not isinstance(o.get("name"), str):
                raise InvalidInput("each requested output needs a string 'name'")
            oname = o["name"]
            if oname not in binary:
                requested.append(oname)
            b = _params(o, f"output '{oname}'").get("binary_data")
            binary[oname] = binary_default if b is None else b is True
        session.check_outputs(requested)
        if not requested:
            requested = None
    return RestRequest(req_id, feeds, batch, requested, binary, binary_default)


def _decode_raw(session: ModelSession, body: bytes, budget: MemoryBudget) -> RestRequest:
    """Triton's raw binary request: the body is the only input's data, its shape deduced from
    the body's size (at most one variable dimension besides the batch dimension, which is 1).
    A BYTES input takes the body as its single element (the model's shape must be [1]).
    Every output is answered in binary, as Triton does."""
    what = f"raw binary request ({HEADER_LENGTH}: 0)"
    if len(session.inputs) != 1:
        raise InvalidInput(
            f"{what}: model '{session.name}' has {len(session.inputs)} inputs; "
            "a raw request can only feed a model with exactly 1 input"
        )
    spec = session.inputs[0]
    batched = session.max_batch_size > 0
    dims = list(spec.shape[1:] if batched else spec.shape)
    if spec.datatype == "BYTES":
        if dims != [1]:
            raise InvalidInput(
                f"{what}: BYTES input '{spec.name}' must have shape [1] in model '{session.name}' (it has {dims})"
            )
        budget.charge(f"input '{spec.name}'", bytes_tensor_size(1, len(body)))
        arr: Array = np.empty(1, dtype=np.object_)
        try:
            arr[0] = body.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidInput(f"input '{spec.name}': BYTES element is not valid UTF-8") from None
    else:
        variable = [i for i, d in enumerate(dims) if d < 0]
        if len(variable) > 1:
            raise InvalidInput(
                f"{what}: input '{spec.name}' of model '{session.name}' has shape {dims} with more than "
                "one variable-size dimension; the shape cannot be deduced from the data size"
            )
        itemsize = spec.dtype.itemsize
        fixed = math.prod(d for d in dims if d >= 0) * itemsize
        if variable:
            if fixed == 0 or len(body) % fixed:
                raise InvalidInput(
                    f"{what}: {len(body)} bytes do not make whole elements of input '{spec.name}' "
                    f"with shape {dims} of {spec.datatype}"
                )
            dims[variable[0]] = len(body) // fixed
        elif len(body) != fixed:
            raise InvalidInput(
                f"{what}: {len(body)} bytes of data for input '{spec.name}' with shape {dims} of "
                f"{spec.datatype} (expected {fixed})"
            )
        budget.charge(f"input '{spec.name}'", len(body))
        arr = np.frombuffer(body, dtype=spec.dtype)
        if not arr.flags.aligned:
            arr = arr.copy()
    shape = [1, *dims] if batched else dims
    session.check_input(spec.name, spec.datatype, shape)
    # No JSON header to ask for JSON outputs: Triton answers every output as binary.
    return RestRequest(None, {spec.name: arr.reshape(shape)}, 1, None, binary_default=True)


def _params(obj: dict[str, Any], what: str) -> dict[str, Any]:
    p = obj.get("parameters")
    if p is None:
        return {}
    if not isinstance(p, dict):
        raise InvalidInput(f"{what}: 'parameters' must be an object")
    return p


def _from_json(name: str, datatype: str, dtype: np.dtype[Any], data: Any, count: int) -> Array:
    if not isinstance(data, list):
        raise InvalidInput(f"input '{name}': 'data' must be a list")
    if datatype == "BYTES":
        flat = data if all(not isinstance(v, list) for v in data) else np.asarray(data, dtype=object).ravel()
        arr: Array = strings_from_json(name, list(flat))
    else:
        try:
            # Convert without a target dtype first so None, strings or objects show up as a
            # non-numeric array instead of silently becoming NaN or being parsed.
            parsed = np.asarray(data)
        except (ValueError, TypeError, OverflowError) as exc:
            raise InvalidInput(f"input '{name}': data is not a regular array: {exc}") from None
        if parsed.dtype.kind not in "biuf" and parsed.size:
            raise InvalidInput(f"input '{name}': 'data' must hold numbers for {datatype}")
        arr = parsed.astype(dtype, copy=False).reshape(-1)
    if arr.size != count:
        raise InvalidInput(f"input '{name}': {arr.size} elements of data for shape of {count} elements")
    return arr


def encode_response(
    model_name: str, version: int, req: RestRequest, session: ModelSession, outputs: dict[str, Array]
) -> tuple[bytes, int | None]:
    """The body and, when binary tensors follow the JSON header, the header's length."""
    out_json: list[dict[str, Any]] = []
    blobs: list[memoryview] = []
    datatypes = session.output_datatypes
    for name, arr in outputs.items():
        datatype = datatypes[name]
        entry: dict[str, Any] = {"name": name, "datatype": datatype, "shape": list(arr.shape)}
        if req.binary.get(name, req.binary_default):
            raw = memoryview(serialize_bytes(arr)) if datatype == "BYTES" else np.ascontiguousarray(arr).data
            entry["parameters"] = {"binary_data_size": raw.nbytes}
            blobs.append(raw)
        else:
            entry["data"] = as_str_list(arr) if datatype == "BYTES" else arr.reshape(-1).tolist()
        out_json.append(entry)
    resp: dict[str, Any] = {"model_name": model_name, "model_version": str(version), "outputs": out_json}
    if req.id is not None:
        resp["id"] = req.id
    header = jsonio.dumps(resp)
    if not blobs:
        return header, None
    return b"".join([header, *blobs]), len(header)
