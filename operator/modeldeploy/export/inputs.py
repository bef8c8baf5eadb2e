"""Example-input specs (`--input-shape 1,3,32,32 --input-dtype float32`) and random inputs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .errors import ExportError

# dtype name -> numpy dtype. bfloat16 is left out: numpy (and so the ORT Python API) lacks it.
DTYPES: dict[str, type[np.generic]] = {
    "float32": np.float32,
    "float16": np.float16,
    "float64": np.float64,
    "int64": np.int64,
    "int32": np.int32,
    "int8": np.int8,
    "uint8": np.uint8,
    "bool": np.bool_,
}
# Integer inputs are usually indices (token ids, classes); a small range stays valid for
# any embedding table the model is likely to have.
INT_HIGH = 10


@dataclass(frozen=True)
class InputSpec:
    """One positional model input: its name, example shape (batch first) and dtype."""

    name: str
    shape: tuple[int, ...]
    dtype: str

    def with_batch(self, batch: int) -> tuple[int, ...]:
        return (batch, *self.shape[1:]) if self.shape else self.shape


def parse_shape(text: str) -> tuple[int, ...]:
    """`"1,3,32,32"` (also `1x3x32x32` or `[1, 3, 32, 32]`) -> (1, 3, 32, 32)."""
    cleaned = text.strip().strip("[]()")
    sep = "x" if "x" in cleaned and "," not in cleaned else ","
    parts = [p.strip() for p in cleaned.split(sep)]
    if not cleaned or any(not p for p in parts):
        raise ExportError(f"bad input shape {text!r}: expected comma-separated sizes like 1,3,32,32")
    try:
        dims = tuple(int(p) for p in parts)
    except ValueError:
        raise ExportError(f"bad input shape {text!r}: expected comma-separated integers like 1,3,32,32") \
            from None
    if any(d < 1 for d in dims):
        raise ExportError(f"bad input shape {text!r}: every size must be >= 1")
    return dims


def build_specs(
    shapes: Sequence[str], dtypes: Sequence[str], names: Sequence[str], default_names: Sequence[str]
) -> list[InputSpec]:
    """Combine the repeatable --input-shape/--input-dtype/--input-name flags into specs.

    One --input-dtype applies to every input; otherwise there must be one per shape.
    """
    if not shapes:
        raise ExportError("no example input: pass --input-shape (e.g. --input-shape 1,3,32,32)")
    parsed = [parse_shape(s) for s in shapes]
    if not dtypes:
        dtypes = ["float32"]
    if len(dtypes) == 1:
        dtypes = list(dtypes) * len(parsed)
    if len(dtypes) != len(parsed):
        raise ExportError(f"got {len(dtypes)} --input-dtype values for {len(parsed)} --input-shape values")
    for d in dtypes:
        if d not in DTYPES:
            raise ExportError(f"unsupported --input-dtype {d!r}; choose from {', '.join(DTYPES)}")
    if names and len(names) != len(parsed):
        raise ExportError(f"got {len(names)} --input-name values for {len(parsed)} --input-shape values")
    chosen = list(names) if names else list(default_names[: len(parsed)])
    while len(chosen) < len(parsed):  # forward(*args): fall back to generic names
        chosen.append(f"input_{len(chosen)}")
    if len(set(chosen)) != len(chosen):
        raise ExportError(f"input names must be unique, got {chosen}")
    batches = {s[0] for s in parsed}
    if len(batches) > 1:
        raise ExportError(f"all example inputs must share the batch (first) dimension, got {sorted(batches)}")
    return [InputSpec(n, s, d) for n, s, d in zip(chosen, parsed, dtypes, strict=True)]


def random_inputs(specs: Sequence[InputSpec], batch: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Random arrays for every input at the given batch size."""
    arrays: list[np.ndarray] = []
    for spec in specs:
        shape = spec.with_batch(batch)
        dtype = DTYPES[spec.dtype]
        if spec.dtype == "bool":
            arrays.append(rng.random(shape) < 0.5)
        elif np.issubdtype(dtype, np.integer):
            arrays.append(rng.integers(0, INT_HIGH, size=shape).astype(dtype))
        else:
            arrays.append(rng.standard_normal(shape).astype(dtype))
    return arrays
