"""Stage 2: torch -> a single-file ONNX model with a dynamic batch dimension."""

from __future__ import annotations

import contextlib
import io
import logging
import re
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import onnx
import torch

from .errors import ExportError, one_line

Exporter = Literal["dynamo", "torchscript"]

_NO_ONNX_FUNCTION = re.compile(r"No ONNX function found for <OpOverload\(op='([^']+)', overload='([^']+)'\)>")
_UNSUPPORTED_LEGACY = re.compile(r"Exporting the operator '([^']+)' to ONNX opset version (\d+) is not supported")
_SUMMARY = re.compile(r"## Exception summary\s+(.*?)(?:\n\n|\(Refer|$)", re.S)


@contextlib.contextmanager
def quiet(enabled: bool) -> Iterator[None]:
    """Silence torch's exporter chatter (warnings, log records, prints) unless --debug."""
    if not enabled:
        yield
        return
    torch_logger = logging.getLogger("torch")
    old_level = torch_logger.level
    torch_logger.setLevel(logging.CRITICAL)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        torch_logger.setLevel(old_level)


def _explain(exc: BaseException, opset: int | None, dynamic_batch: bool) -> str:
    """Turn the exporter's multi-paragraph error into the one line that names the problem."""
    text = str(exc)
    chain = text + " " + " ".join(str(e) for e in (exc.__cause__, exc.__context__) if e is not None)
    if m := _NO_ONNX_FUNCTION.search(chain):
        at = f" at opset {opset}" if opset else ""
        return f"unsupported operator {m.group(1)}.{m.group(2)}: no ONNX translation{at}"
    if m := _UNSUPPORTED_LEGACY.search(chain):
        return f"unsupported operator {m.group(1)} at ONNX opset {m.group(2)}"
    if dynamic_batch and re.search(r"Constraints violated|specializ|not in VR\[", chain):
        return ("the model is not batch-dynamic (torch.export fixed the batch dimension); "
                "export with --max-batch-size 0 for a fixed batch")
    if m := _SUMMARY.search(text):
        return f"ONNX export failed: {one_line(m.group(1))}"
    return f"ONNX export failed: {type(exc).__name__}: {one_line(text)}"


def export_onnx(
    module: torch.nn.Module,
    example: Sequence[np.ndarray],
    path: Path,
    input_names: Sequence[str],
    output_names: Sequence[str],
    opset: int | None,
    dynamic_batch: bool,
    exporter: Exporter,
    debug: bool = False,
) -> onnx.ModelProto:
    """Export and check the model; returns the loaded ONNX graph (weights inline, one file)."""
    args = tuple(torch.from_numpy(np.ascontiguousarray(a)) for a in example)
    try:
        with quiet(not debug), torch.no_grad():
            if exporter == "dynamo":
                # One shared Dim: every input's first dimension is the same batch.
                batch = torch.export.Dim("batch")
                dynamic_shapes = tuple({0: batch} for _ in args) if dynamic_batch else None
                torch.onnx.export(
                    module, args, str(path), dynamo=True, external_data=False, verbose=False,
                    input_names=list(input_names), output_names=list(output_names),
                    opset_version=opset, dynamic_shapes=dynamic_shapes,
                )
            else:
                axes = {n: {0: "batch"} for n in (*input_names, *output_names)} if dynamic_batch else None
                torch.onnx.export(
                    module, args, str(path), dynamo=False, verbose=False,
                    input_names=list(input_names), output_names=list(output_names),
                    opset_version=opset, dynamic_axes=axes,
                )
    except Exception as exc:
        raise ExportError(_explain(exc, opset, dynamic_batch)) from exc
    if not path.is_file():
        raise ExportError("ONNX export produced no file")
    try:
        model = onnx.load(str(path))
        onnx.checker.check_model(model, full_check=True)
    except Exception as exc:
        raise ExportError(f"exported ONNX model is invalid: {one_line(str(exc))}") from exc
    return model


def opset_of(model: onnx.ModelProto) -> int:
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
