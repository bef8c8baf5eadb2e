"""Model warm-up as Triton does it: only the samples ``model_warmup`` in config.pbtxt asks for.

Each sample names every model input with its ``data_type`` and ``dims`` (the batch dimension
left out when the model batches: ``batch_size`` is prepended) and one data source:

- ``zero_data``: zeros (BYTES: empty strings);
- ``random_data``: random values (BYTES: empty strings, as Triton does);
- ``input_data_file``: a file in ``<model>/warmup/`` holding the raw tensor bytes (BYTES in
  Triton's 4-byte-length-prefixed encoding).

A sample runs ``count`` times (0 means once). A model without ``model_warmup`` is not warmed up.
A sample that is malformed or fails to run makes ``WarmupError``: the caller marks that model
version unavailable with this reason, and the server keeps serving the others.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tritonclient.grpc import model_config_pb2 as mc

from modelserver.datatypes import V2_TO_CONFIG, deserialize_bytes
from modelserver.session import Array, ModelSession


class WarmupError(Exception):
    """A warm-up sample is malformed or the model failed to run it."""


@dataclass(frozen=True)
class WarmupSample:
    name: str
    feeds: dict[str, Array]
    runs: int


def warmup_samples(config: mc.ModelConfig, session: ModelSession, model_dir: Path) -> list[WarmupSample]:
    """The samples of ``config.model_warmup``, with their input tensors built."""
    return [_sample(w, session, model_dir) for w in config.model_warmup]


def run_warmup(session: ModelSession, samples: list[WarmupSample]) -> None:
    for sample in samples:
        for _ in range(sample.runs):
            try:
                session.run(sample.feeds)
            except Exception as exc:
                raise WarmupError(f"warm-up sample '{sample.name}' failed: {exc}") from None


def _sample(w: mc.ModelWarmup, session: ModelSession, model_dir: Path) -> WarmupSample:
    what = f"warm-up sample '{w.name}'"
    batching = session.max_batch_size > 0
    if batching and not 1 <= w.batch_size <= session.max_batch_size:
        raise WarmupError(f"{what}: batch_size {w.batch_size} must be between 1 and max_batch_size "
                          f"{session.max_batch_size}")  # fmt: skip
    if not batching and w.batch_size not in (0, 1):
        raise WarmupError(f"{what}: batch_size must be 1 for a model that does not batch (got {w.batch_size})")
    unknown = sorted(set(w.inputs) - set(session.input_by_name))
    if unknown:
        raise WarmupError(f"{what}: unknown input(s) {unknown} for model '{session.name}'")
    feeds: dict[str, Array] = {}
    for spec in session.inputs:
        if spec.name not in w.inputs:
            raise WarmupError(f"{what}: no data for input '{spec.name}' (every input needs one)")
        inp = w.inputs[spec.name]
        want_type = V2_TO_CONFIG[spec.datatype]
        got_type = mc.DataType.Name(inp.data_type)
        if got_type != want_type:
            raise WarmupError(f"{what}: input '{spec.name}' has data_type {got_type}, the model's is {want_type}")
        dims = list(inp.dims)
        if any(d < 0 for d in dims):
            raise WarmupError(f"{what}: input '{spec.name}' dims {dims} must all be known (no -1)")
        shape = [w.batch_size, *dims] if batching else dims
        expected = spec.shape
        if len(shape) != len(expected) or any(e >= 0 and e != s for s, e in zip(shape, expected, strict=False)):
            raise WarmupError(f"{what}: input '{spec.name}' shape {shape} does not match the model's {list(expected)}")
        feeds[spec.name] = _data(what, spec.name, spec.datatype, spec.dtype, shape, inp, model_dir)
    return WarmupSample(w.name, feeds, max(1, w.count))


def _data(
    what: str, name: str, datatype: str, dtype: np.dtype[Any], shape: list[int], inp: Any, model_dir: Path
) -> Array:
    count = math.prod(shape)
    source = inp.WhichOneof("input_data_type")
    if source == "input_data_file":
        path = model_dir / "warmup" / inp.input_data_file
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise WarmupError(f"{what}: input '{name}': cannot read {path}: {exc.strerror}") from None
        if datatype == "BYTES":
            try:
                return deserialize_bytes(name, raw, count).reshape(shape)
            except Exception as exc:
                raise WarmupError(f"{what}: {path}: {exc}") from None
        if len(raw) != count * dtype.itemsize:
            raise WarmupError(f"{what}: input '{name}': {path} holds {len(raw)} bytes, shape {shape} of "
                              f"{datatype} needs {count * dtype.itemsize}")  # fmt: skip
        return np.frombuffer(raw, dtype=dtype).reshape(shape)
    if source not in ("zero_data", "random_data"):
        raise WarmupError(f"{what}: input '{name}' needs zero_data, random_data or input_data_file")
    if datatype == "BYTES":
        return np.full(shape, "", dtype=np.object_)
    if source == "zero_data":
        return np.zeros(shape, dtype=dtype)
    rng = np.random.default_rng()
    if dtype.kind == "f":
        return rng.random(shape).astype(dtype)
    if dtype.kind == "b":
        return rng.integers(0, 2, shape).astype(dtype)
    return rng.integers(0, 100, shape).astype(dtype)  # small values: valid for most index inputs
