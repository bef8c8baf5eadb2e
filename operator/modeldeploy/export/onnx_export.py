"""Stage 2: torch -> a single-file ONNX model with a dynamic batch dimension."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import re
import sys
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
_UNKNOWN_NAMESPACE = re.compile(r"unrecognized namespace (\S+?)\.? ")
_SUMMARY = re.compile(r"## Exception summary\s+(.*?)(?:\n\n|\(Refer|$)", re.S)


@contextlib.contextmanager
def quiet(enabled: bool) -> Iterator[None]:
    """Silence torch's exporter chatter (warnings, log records, prints) unless --debug."""
    if not enabled:
        yield
        return
    # torch, onnxscript and onnx_ir all log advice; disabling logging globally for the
    # duration is simpler than chasing every logger name.
    previous = logging.root.manager.disable
    logging.disable(logging.CRITICAL)
    try:
        with (
            warnings.catch_warnings(),
            contextlib.redirect_stdout(io.StringIO()),
            contextlib.redirect_stderr(io.StringIO()),
            _native_output_discarded(),
        ):
            warnings.simplefilter("ignore")
            yield
    finally:
        logging.disable(previous)


@contextlib.contextmanager
def _native_output_discarded() -> Iterator[None]:
    # The TorchScript exporter logs graphs from C++ straight to file descriptors 1 and 2,
    # past sys.stdout/sys.stderr; stdout must stay clean for the manifest.
    sys.stdout.flush()
    sys.stderr.flush()
    saved = {fd: os.dup(fd) for fd in (1, 2)}
    try:
        with open(os.devnull, "w") as devnull:
            for fd in saved:
                os.dup2(devnull.fileno(), fd)
            try:
                yield
            finally:
                for fd, copy in saved.items():
                    os.dup2(copy, fd)
    finally:
        for copy in saved.values():
            os.close(copy)


def _explain(exc: BaseException, opset: int | None, dynamic_batch: bool, exporter: Exporter) -> str:
    """Turn the exporter's multi-paragraph error into the one line that names the problem."""
    text = str(exc)
    chain = text + " " + " ".join(str(e) for e in (exc.__cause__, exc.__context__) if e is not None)
    if m := _NO_ONNX_FUNCTION.search(chain):
        at = f" at opset {opset}" if opset else ""
        return f"unsupported operator {m.group(1)}.{m.group(2)}: no ONNX translation{at}"
    if m := _UNSUPPORTED_LEGACY.search(chain):
        return f"unsupported operator {m.group(1)} at ONNX opset {m.group(2)}"
    if m := _UNKNOWN_NAMESPACE.search(chain):
        return f"unsupported operator {m.group(1)}: no ONNX translation"
    if dynamic_batch and re.search(r"Constraints violated|specializ|not in VR\[", chain):
        return ("the model is not batch-dynamic (torch.export fixed the batch dimension); "
                "export with --max-batch-size 0 for a fixed batch")
    hint = "; try --exporter torchscript" if exporter == "dynamo" else ""
    if m := _SUMMARY.search(text):
        return f"ONNX export failed: {one_line(m.group(1), 200)}{hint}"
    return f"ONNX export failed: {type(exc).__name__}: {one_line(text, 200)}{hint}"


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
        raise ExportError(_explain(exc, opset, dynamic_batch, exporter)) from exc
    if not path.is_file():
        raise ExportError("ONNX export produced no file")
    try:
        model = onnx.load(str(path))
        onnx.checker.check_model(model, full_check=True)
    except Exception as exc:
        raise ExportError(f"exported ONNX model is invalid: {one_line(str(exc))}") from exc
    if opset is not None and opset_of(model) != opset:
        # The dynamo exporter emits opset >= 18 and down-converts on a best-effort basis,
        # silently keeping its own opset when that fails. An old server needs the real thing.
        raise ExportError(f"asked for opset {opset} but the {exporter} exporter produced opset {opset_of(model)}"
                          + ("; try --exporter torchscript" if exporter == "dynamo" else ""))
    return model


def opset_of(model: onnx.ModelProto) -> int:
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
