"""Stage 4 (optional): dynamic int8 quantization and its accuracy delta against fp32."""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import ExportError, describe
from .inputs import InputSpec, random_inputs
from .onnx_export import quiet
from .verify import run_onnx, session


@dataclass(frozen=True)
class QuantReport:
    max_abs_diff: float
    top1_agreement: float | None  # None when no output looks like class scores
    samples: int
    fp32_bytes: int
    int8_bytes: int




def quantize_int8(fp32: Path, out: Path, debug: bool = False) -> None:
    """Weights to int8, activations quantized at run time: no calibration data needed."""
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.shape_inference import quant_pre_process

    with quiet(not debug), tempfile.TemporaryDirectory() as tmp:
        source = fp32
        # Pre-processing (shape inference + graph optimisation) is what ORT recommends
        # before quantizing; when it fails on an unusual graph, quantize the raw one.
        with contextlib.suppress(Exception):
            pre = Path(tmp) / "pre.onnx"
            quant_pre_process(str(fp32), str(pre))
            source = pre
        try:
            quantize_dynamic(str(source), str(out), weight_type=QuantType.QInt8)
        except Exception as exc:
            raise ExportError(f"int8 quantization failed: {describe(exc)}") from None


def _is_class_scores(a: np.ndarray) -> bool:
    return a.ndim == 2 and a.shape[1] > 1 and np.issubdtype(a.dtype, np.floating)


def measure(
    fp32: Path, int8: Path, specs: Sequence[InputSpec], samples: int, batch: int,
    dynamic_batch: bool, rng: np.random.Generator,
) -> QuantReport:
    """Run both models on the same random inputs; report max |fp32 - int8| and top-1 agreement."""
    sess32, sess8 = session(fp32), session(int8)
    names = [s.name for s in specs]
    worst, agree, seen, counted = 0.0, 0, 0, 0
    # A dynamic-batch model takes all samples at once; a fixed one needs its own batch size.
    step = samples if dynamic_batch else batch
    while seen < samples:
        arrays = random_inputs(specs, step, rng)
        out32, out8 = run_onnx(sess32, names, arrays), run_onnx(sess8, names, arrays)
        for a, b in zip(out32, out8, strict=True):
            diff = np.abs(a.astype(np.float64) - b.astype(np.float64))
            worst = max(worst, float(np.nanmax(diff)) if diff.size else 0.0)
        if _is_class_scores(out32[0]):
            agree += int((out32[0].argmax(axis=1) == out8[0].argmax(axis=1)).sum())
            counted += out32[0].shape[0]
        seen += step
    top1 = agree / counted if counted else None
    return QuantReport(worst, top1, seen, fp32.stat().st_size, int8.stat().st_size)
