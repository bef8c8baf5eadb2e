"""Stage 5: Triton-layout repository, config.pbtxt from the ONNX graph, digest and manifest."""

from __future__ import annotations

import hashlib
import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import onnx
import yaml

from ..render.triton_config import InstanceKind, TensorSpec, render_config_pbtxt
from .errors import ExportError

API_VERSION = "serving.modeldeploy.dev/v1alpha1"
# A name that is both a valid metadata.name (DNS-1123 label) and a model name.
NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")

_ONNX_TO_TRITON: dict[int, str] = {
    onnx.TensorProto.FLOAT: "TYPE_FP32",
    onnx.TensorProto.FLOAT16: "TYPE_FP16",
    onnx.TensorProto.DOUBLE: "TYPE_FP64",
    onnx.TensorProto.BFLOAT16: "TYPE_BF16",
    onnx.TensorProto.INT8: "TYPE_INT8",
    onnx.TensorProto.INT16: "TYPE_INT16",
    onnx.TensorProto.INT32: "TYPE_INT32",
    onnx.TensorProto.INT64: "TYPE_INT64",
    onnx.TensorProto.UINT8: "TYPE_UINT8",
    onnx.TensorProto.UINT16: "TYPE_UINT16",
    onnx.TensorProto.UINT32: "TYPE_UINT32",
    onnx.TensorProto.UINT64: "TYPE_UINT64",
    onnx.TensorProto.BOOL: "TYPE_BOOL",
    onnx.TensorProto.STRING: "TYPE_STRING",
}


@dataclass(frozen=True)
class Written:
    model_path: Path
    config_path: Path
    digest: str  # "sha256:<hex>"


def default_name(label: str) -> str:
    """`TinyMLP` -> `tinymlp`, `my_model.v2` -> `my-model-v2`."""
    name = re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-")[:63].strip("-")
    return name or "model"


def check_name(name: str) -> str:
    if not NAME_RE.match(name):
        raise ExportError(
            f"bad --name {name!r}: use lowercase letters, digits and '-' (max 63), "
            "so it is valid both as metadata.name and as the model name"
        )
    return name


def _tensor_specs(values: Sequence[onnx.ValueInfoProto], batched: bool, kind: str) -> list[TensorSpec]:
    specs = []
    for v in values:
        tensor = v.type.tensor_type
        if not v.type.HasField("tensor_type") or tensor.elem_type not in _ONNX_TO_TRITON:
            raise ExportError(f"{kind} {v.name!r} has a type Triton cannot serve")
        dims = [d.dim_value if d.HasField("dim_value") else -1 for d in tensor.shape.dim]
        if batched:
            first = tensor.shape.dim[0] if tensor.shape.dim else None
            if first is None or first.HasField("dim_value"):
                raise ExportError(
                    f"{kind} {v.name!r} has no dynamic batch dimension (shape {dims}); "
                    "export with --max-batch-size 0"
                )
            dims = dims[1:]
        specs.append(TensorSpec(v.name, _ONNX_TO_TRITON[tensor.elem_type], tuple(dims)))
    return specs


def io_specs(model: onnx.ModelProto, batched: bool) -> tuple[list[TensorSpec], list[TensorSpec]]:
    """Inputs/outputs for config.pbtxt, read from the graph (initializers are not inputs)."""
    initializers = {i.name for i in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in initializers]
    return _tensor_specs(inputs, batched, "input"), _tensor_specs(model.graph.output, batched, "output")


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


def check_free(out: Path, name: str, version: int, force: bool, filename: str = "model.onnx") -> Path:
    """The model file's path; refuses an existing version unless forced."""
    target = out / name / str(version) / filename
    if target.exists() and not force:
        # Triton versions are meant to be immutable; overwriting one silently would change
        # what a running deployment's digest refers to.
        raise ExportError(f"{target} already exists; pick another --version or pass --force")
    return target


def write_repository(
    out: Path, name: str, version: int, onnx_file: Path, model: onnx.ModelProto, *,
    max_batch_size: int, preferred_batch_sizes: Sequence[int], max_queue_delay_us: int | None,
    instance_kind: InstanceKind | None, instance_count: int | None, force: bool, filename: str = "model.onnx",
) -> Written:
    """`onnx_file` is copied as `filename` (model.onnx.age when encrypted); `model` gives config.pbtxt."""
    model_dir = out / name
    version_dir = model_dir / str(version)
    target = check_free(out, name, version, force, filename)
    inputs, outputs = io_specs(model, max_batch_size > 0)
    try:
        config = render_config_pbtxt(
            name, "onnxruntime_onnx", max_batch_size,
            preferred_batch_sizes=preferred_batch_sizes,
            max_queue_delay_us=max_queue_delay_us if max_batch_size > 0 else None,
            inputs=inputs, outputs=outputs,
            instance_count=instance_count, instance_kind=instance_kind,
        )
    except ValueError as exc:
        raise ExportError(f"cannot render config.pbtxt: {exc}") from None
    try:
        version_dir.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(onnx_file, target)
        (model_dir / "config.pbtxt").write_text(config)
    except OSError as exc:
        raise ExportError(f"cannot write the repository under {out}: {exc.strerror or exc}") from None
    # Hash what is on disk, not what we meant to write.
    return Written(target, model_dir / "config.pbtxt", sha256_file(target))


def manifest(
    name: str, version: int, uri: str, digest: str, runtime: str,
    max_batch_size: int, max_queue_delay_us: int | None, preferred_batch_sizes: Sequence[int],
    key_secret: str | None = None,
) -> dict[str, Any]:
    """The ModelDeployment that serves exactly this artifact (decrypted with `key_secret`'s identity)."""
    runtime_spec: dict[str, Any] = {"kind": runtime}
    if max_batch_size > 0:  # keep the server's batching in line with config.pbtxt
        batching: dict[str, Any] = {"maxBatchSize": max_batch_size}
        if max_queue_delay_us is not None:
            batching["maxQueueDelayMicroseconds"] = max_queue_delay_us
        if preferred_batch_sizes:
            batching["preferredBatchSizes"] = sorted(set(preferred_batch_sizes))
        runtime_spec["batching"] = batching
    model: dict[str, Any] = {"name": name, "uri": uri, "digest": digest, "format": "onnx", "version": version}
    if key_secret is not None:
        model["encryption"] = {"keySecretRef": {"name": key_secret, "key": "identity"}}
    return {
        "apiVersion": API_VERSION,
        "kind": "ModelDeployment",
        "metadata": {"name": name},
        "spec": {"model": model, "runtime": runtime_spec},
    }


def manifest_yaml(doc: dict[str, Any]) -> str:
    return yaml.safe_dump(doc, sort_keys=False, default_flow_style=False)
