"""Stage 3: run the ONNX model in onnxruntime and compare it with torch on random inputs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ExportError, describe


@dataclass(frozen=True)
class Comparison:
    max_abs_diff: float
    within_tolerance: bool
    worst_output: str  # the output holding max_abs_diff


def session(path: Path) -> Any:
    """A CPU onnxruntime session: what we check is the graph, not the GPU kernels."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only; ORT's warnings are noise here
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise ExportError(f"onnxruntime cannot load {path.name}: {describe(exc)}") from None


def run_onnx(sess: Any, names: Sequence[str], arrays: Sequence[np.ndarray]) -> list[np.ndarray]:
    try:
        return list(sess.run(None, dict(zip(names, arrays, strict=True))))
    except Exception as exc:
        shapes = ", ".join(f"{n}{list(a.shape)}" for n, a in zip(names, arrays, strict=True))
        raise ExportError(f"onnxruntime failed on inputs {shapes}: {describe(exc)}") from None


def compare(
    expected: Sequence[np.ndarray], actual: Sequence[np.ndarray], names: Sequence[str],
    atol: float, rtol: float,
) -> Comparison:
    """numpy.isclose semantics (|a - e| <= atol + rtol * |e|) over every output."""
    if len(expected) != len(actual):
        raise ExportError(f"torch returned {len(expected)} outputs but the ONNX model {len(actual)}")
    worst, worst_name, ok = 0.0, names[0] if names else "", True
    for name, e, a in zip(names, expected, actual, strict=True):
        if e.shape != a.shape:
            raise ExportError(f"output {name!r}: torch shape {list(e.shape)} but onnxruntime {list(a.shape)}")
        e64, a64 = e.astype(np.float64), a.astype(np.float64)
        ok = ok and bool(np.isclose(a64, e64, atol=atol, rtol=rtol, equal_nan=True).all())
        diff = np.abs(a64 - e64)
        diff = diff[~np.isnan(diff)]
        current = float(diff.max()) if diff.size else 0.0
        if current > worst or not worst_name:
            worst, worst_name = current, name
    return Comparison(worst, ok, worst_name)


def merge(results: Sequence[Comparison]) -> Comparison:
    worst = max(results, key=lambda c: c.max_abs_diff)
    return Comparison(worst.max_abs_diff, all(c.within_tolerance for c in results), worst.worst_output)
