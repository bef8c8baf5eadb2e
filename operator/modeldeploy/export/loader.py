"""Stage 1: get an eval-mode torch model and prove it runs on the example input."""

from __future__ import annotations

import importlib
import inspect
import json
import os
import sys
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .errors import ExportError, describe, one_line
from .torch_files import FileKind, inspect_file


@dataclass
class LoadedModel:
    module: torch.nn.Module
    is_torchscript: bool
    label: str  # what the progress line and the default model name refer to
    input_names: list[str]  # names taken from forward()'s signature, if any


def parse_kwargs(text: str | None) -> dict[str, Any]:
    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ExportError(f"--kwargs is not valid JSON: {exc.msg} at position {exc.pos}") from None
    if not isinstance(value, dict):
        raise ExportError(f"--kwargs must be a JSON object, got {type(value).__name__}")
    return value


def _import_target(path: str) -> Any:
    module_name, sep, attr = path.partition(":")
    if not sep or not module_name or not attr:
        raise ExportError(f"bad model path {path!r}: expected package.module:ClassOrFactory")
    # Console scripts do not put the working directory on sys.path; `python -m` does.
    # Users expect their local package to be importable either way.
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            raise ExportError(f"no module named {module_name!r} (from model path {path!r})") from None
        raise ExportError(f"importing {module_name!r} failed: {describe(exc)}") from None
    except Exception as exc:
        raise ExportError(f"importing {module_name!r} failed: {describe(exc)}") from None
    target: Any = module
    for part in attr.split("."):
        if not hasattr(target, part):
            raise ExportError(f"module {module_name!r} has no attribute {attr!r}")
        target = getattr(target, part)
    return target


def _forward_input_names(module: torch.nn.Module) -> list[str]:
    try:
        params = inspect.signature(module.forward).parameters.values()
    except (TypeError, ValueError):
        return []
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return [p.name for p in params if p.kind in kinds]


SAVE_STATE_DICT = "save the weights with torch.save(model.state_dict(), PATH)"


def _check_weights_file(weights: Path) -> None:
    """Refuse a file torch.load(weights_only=True) cannot read, saying what it is and what to save instead."""
    found = inspect_file(weights)
    if found.kind is FileKind.MISSING:
        raise ExportError(f"--weights {str(weights)!r} does not exist")
    if found.kind is FileKind.TORCHSCRIPT:
        raise ExportError(f"--weights {str(weights)!r} is a TorchScript file (torch.jit.save): "
                          "pass it as --torchscript FILE instead of PACKAGE.MODULE:OBJECT --weights")
    if found.kind is FileKind.NOT_TORCH:
        raise ExportError(f"--weights {str(weights)!r} is not a file torch.save writes (neither a zip archive "
                          f"nor a pickle): {SAVE_STATE_DICT}")
    if found.object_classes:
        raise ExportError(f"--weights {str(weights)!r} holds a whole pickled model ({found.object_classes[0]}), "
                          f"not a state_dict: {SAVE_STATE_DICT}, or save the model with torch.jit.save and pass "
                          "--torchscript FILE")


def _load_state_dict(module: torch.nn.Module, weights: Path) -> None:
    _check_weights_file(weights)
    try:
        # weights_only: a state dict needs no pickled code, and loading code is unsafe.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            state = torch.load(weights, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ExportError(f"--weights {str(weights)!r} cannot be read as a state_dict ({describe(exc)[:120]}): "
                          f"{SAVE_STATE_DICT}") from None
    if isinstance(state, dict):  # training checkpoints often nest the state dict
        for key in ("state_dict", "model_state_dict", "model"):
            if isinstance(state.get(key), dict):
                state = state[key]
                break
    if not isinstance(state, dict):
        raise ExportError(f"weights {str(weights)!r} hold a {type(state).__name__}, not a state dict")
    result = module.load_state_dict(state, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise ExportError(
            f"weights {str(weights)!r} do not match the model: "
            f"missing {result.missing_keys[:5]}, unexpected {result.unexpected_keys[:5]}"
        )


def module_label(path: str) -> str:
    """What `package.module:Class` is called in progress lines and by default: `Class`."""
    return path.partition(":")[2].rsplit(".", 1)[-1]


def load_module(path: str, kwargs: dict[str, Any], weights: Path | None) -> LoadedModel:
    target = _import_target(path)
    if isinstance(target, torch.nn.Module):
        if kwargs:
            raise ExportError(f"{path!r} is already a module instance; it takes no --kwargs")
        module = target
    elif callable(target):
        try:
            module = target(**kwargs)
        except Exception as exc:
            raise ExportError(f"constructing {path!r} failed: {describe(exc)}") from None
    else:
        raise ExportError(f"{path!r} is a {type(target).__name__}, not a torch.nn.Module class or factory")
    if not isinstance(module, torch.nn.Module):
        raise ExportError(f"{path!r} returned a {type(module).__name__}, not a torch.nn.Module")
    if weights is not None:
        try:
            _load_state_dict(module, weights)
        except RuntimeError as exc:  # size mismatches surface from load_state_dict
            raise ExportError(f"weights {str(weights)!r} do not fit the model: {one_line(str(exc))}") from None
    return LoadedModel(module.eval(), False, module_label(path), _forward_input_names(module))


def _check_torchscript_file(file: Path) -> None:
    found = inspect_file(file)
    if found.kind is FileKind.MISSING:
        raise ExportError(f"--torchscript {str(file)!r} does not exist")
    if found.kind is FileKind.PICKLE:
        what = f"a pickled model ({found.object_classes[0]})" if found.object_classes else "a state_dict"
        raise ExportError(f"--torchscript {str(file)!r} was written by torch.save and holds {what}, not a "
                          "TorchScript program: pass the model as PACKAGE.MODULE:CLASS --weights FILE, or save "
                          "it with torch.jit.save(torch.jit.script(model), PATH)")
    if found.kind is FileKind.NOT_TORCH:
        raise ExportError(f"--torchscript {str(file)!r} is not a TorchScript file (not a zip archive): "
                          "save one with torch.jit.save(torch.jit.script(model), PATH)")


def load_torchscript(file: Path) -> LoadedModel:
    _check_torchscript_file(file)
    try:
        module = torch.jit.load(str(file), map_location="cpu")
    except Exception as exc:
        raise ExportError(f"cannot load TorchScript {str(file)!r}: {describe(exc)}") from None
    # A scripted forward's signature starts with `self` and has no useful names.
    return LoadedModel(module.eval(), True, file.stem, [])


def flatten_outputs(value: Any) -> list[torch.Tensor]:
    """Tensors of a forward() result in the order the ONNX exporter flattens them."""
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, tuple | list):
        return [t for v in value for t in flatten_outputs(v)]
    if isinstance(value, dict):
        return [t for v in value.values() for t in flatten_outputs(v)]
    raise ExportError(f"model output contains a {type(value).__name__}; only tensors (in tuples/lists/dicts) export")


def run_torch(
    module: torch.nn.Module, arrays: Sequence[np.ndarray], what: str = "the example input"
) -> list[np.ndarray]:
    """Run the model on numpy inputs; a failure is a one-line ExportError."""
    tensors = [torch.from_numpy(np.ascontiguousarray(a)) for a in arrays]
    try:
        with torch.inference_mode():
            result = module(*tensors)
    except Exception as exc:
        shapes = ", ".join(f"{tuple(t.shape)} {str(t.dtype).removeprefix('torch.')}" for t in tensors)
        raise ExportError(f"forward() failed on {what} [{shapes}]: {describe(exc)}") from None
    outputs = flatten_outputs(result)
    if not outputs:
        raise ExportError("model returned no tensors")
    return [t.detach().cpu().numpy() for t in outputs]
