"""Tensor datatypes: Open Inference Protocol names <-> numpy dtypes <-> ONNX Runtime type strings.

BYTES tensors travel as length-prefixed byte strings (4-byte little-endian length, then the
bytes), exactly as Triton serialises them; ONNX Runtime wants ``str`` objects for its string
tensors, so they are decoded as UTF-8 on the way in and encoded on the way out.
"""

from __future__ import annotations

import struct
from typing import Any

import numpy as np
import numpy.typing as npt

from modelserver.errors import InvalidInput
from modelserver.limits import MemoryBudget, bytes_tensor_size

# Only types ONNX Runtime can feed from numpy; BF16 has no numpy dtype and is left out.
V2_TO_NUMPY: dict[str, np.dtype[Any]] = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype(np.uint8),
    "UINT16": np.dtype(np.uint16),
    "UINT32": np.dtype(np.uint32),
    "UINT64": np.dtype(np.uint64),
    "INT8": np.dtype(np.int8),
    "INT16": np.dtype(np.int16),
    "INT32": np.dtype(np.int32),
    "INT64": np.dtype(np.int64),
    "FP16": np.dtype(np.float16),
    "FP32": np.dtype(np.float32),
    "FP64": np.dtype(np.float64),
    "BYTES": np.dtype(np.object_),
}

ORT_TO_V2: dict[str, str] = {
    "tensor(bool)": "BOOL",
    "tensor(uint8)": "UINT8",
    "tensor(uint16)": "UINT16",
    "tensor(uint32)": "UINT32",
    "tensor(uint64)": "UINT64",
    "tensor(int8)": "INT8",
    "tensor(int16)": "INT16",
    "tensor(int32)": "INT32",
    "tensor(int64)": "INT64",
    "tensor(float16)": "FP16",
    "tensor(float)": "FP32",
    "tensor(double)": "FP64",
    "tensor(string)": "BYTES",
}

# Triton's model-config spelling (TYPE_FP32, ...) used by the ModelConfig RPC.
V2_TO_CONFIG: dict[str, str] = {k: "TYPE_STRING" if k == "BYTES" else f"TYPE_{k}" for k in V2_TO_NUMPY}

_LEN = struct.Struct("<I")


def itemsize(datatype: str) -> int:
    """Bytes per element of a fixed-size datatype (0 for BYTES)."""
    if datatype == "BYTES":
        return 0
    return V2_TO_NUMPY[datatype].itemsize


def deserialize_bytes(
    name: str, buf: bytes | memoryview, count: int, budget: MemoryBudget | None = None
) -> npt.NDArray[np.object_]:
    """Parse ``count`` length-prefixed strings from ``buf`` into an object array of ``str``.

    The element count is checked against the bytes present (every element takes at least its
    4-byte length) and charged to ``budget`` before anything is allocated.
    """
    view = memoryview(buf)
    pos, end = 0, len(view)
    if count * _LEN.size > end:
        raise InvalidInput(
            f"input '{name}': {end} bytes of BYTES data cannot hold {count} elements "
            f"(each takes at least {_LEN.size} bytes)"
        )
    if budget is not None:
        budget.charge(f"input '{name}'", bytes_tensor_size(count, end))
    out = np.empty(count, dtype=np.object_)
    for i in range(count):
        if pos + 4 > end:
            raise InvalidInput(f"input '{name}': BYTES data holds fewer than {count} elements")
        (n,) = _LEN.unpack_from(view, pos)
        pos += 4
        if pos + n > end:
            raise InvalidInput(f"input '{name}': BYTES element {i} runs past the end of the data")
        out[i] = _decode(name, bytes(view[pos : pos + n]))
        pos += n
    if pos != end:
        raise InvalidInput(f"input '{name}': BYTES data holds more than {count} elements")
    return out


def _decode(name: str, raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidInput(f"input '{name}': BYTES element is not valid UTF-8") from None


def strings_from_json(name: str, data: list[Any]) -> npt.NDArray[np.object_]:
    """JSON BYTES data: a flat list of strings (bytes are not representable in JSON)."""
    out = np.empty(len(data), dtype=np.object_)
    for i, v in enumerate(data):
        if not isinstance(v, str):
            raise InvalidInput(f"input '{name}': BYTES data must be strings")
        out[i] = v
    return out


def strings_from_protobuf(name: str, items: Any) -> npt.NDArray[np.object_]:
    """gRPC ``bytes_contents``: a repeated bytes field."""
    out = np.empty(len(items), dtype=np.object_)
    for i, v in enumerate(items):
        out[i] = _decode(name, v)
    return out


def serialize_bytes(arr: npt.NDArray[Any]) -> bytes:
    """Length-prefixed encoding of a string/bytes tensor (row-major)."""
    parts: list[bytes] = []
    for v in arr.reshape(-1):
        b = v if isinstance(v, bytes) else str(v).encode("utf-8")
        parts.append(_LEN.pack(len(b)))
        parts.append(b)
    return b"".join(parts)


def as_bytes_list(arr: npt.NDArray[Any]) -> list[bytes]:
    return [v if isinstance(v, bytes) else str(v).encode("utf-8") for v in arr.reshape(-1)]


def as_str_list(arr: npt.NDArray[Any]) -> list[str]:
    return [v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in arr.reshape(-1)]
