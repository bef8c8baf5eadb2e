"""The one generator of Triton `config.pbtxt` text.

Used by `modeldeploy export` (written next to the model in the repository) and by the
operator's render code for `runtime.kind: triton`. Pure and deterministic: the same
arguments always give byte-identical text, so a rendered config can be hashed and diffed.

The output is protobuf text format for Triton's `inference.ModelConfig`
(model_config.proto); only the fields modeldeploy sets are supported.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

Platform = Literal["onnxruntime_onnx", "tensorrt_plan", "pytorch_libtorch"]
InstanceKind = Literal["KIND_GPU", "KIND_CPU", "KIND_AUTO"]

TRITON_DATA_TYPES = frozenset({
    "TYPE_BOOL", "TYPE_UINT8", "TYPE_UINT16", "TYPE_UINT32", "TYPE_UINT64",
    "TYPE_INT8", "TYPE_INT16", "TYPE_INT32", "TYPE_INT64",
    "TYPE_FP16", "TYPE_FP32", "TYPE_FP64", "TYPE_STRING", "TYPE_BF16",
})
PLATFORMS: frozenset[str] = frozenset({"onnxruntime_onnx", "tensorrt_plan", "pytorch_libtorch"})
INSTANCE_KINDS: frozenset[str] = frozenset({"KIND_GPU", "KIND_CPU", "KIND_AUTO"})


@dataclass(frozen=True)
class TensorSpec:
    """One model input or output as Triton sees it.

    `dims` excludes the batch dimension when the model's max_batch_size > 0 (Triton adds
    it implicitly); -1 marks a variable-size dimension.
    """

    name: str
    data_type: str
    dims: tuple[int, ...]

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("tensor name must not be empty")
        if self.data_type not in TRITON_DATA_TYPES:
            raise ValueError(f"tensor {self.name!r}: unknown Triton data type {self.data_type!r}")
        if any(d < -1 or d == 0 for d in self.dims):
            raise ValueError(f"tensor {self.name!r}: dims must be positive or -1, got {list(self.dims)}")


def _quote(text: str) -> str:
    # Protobuf text-format string literal: escape backslash, quote and control characters.
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def _int_list(values: Sequence[int]) -> str:
    return "[ " + ", ".join(str(v) for v in values) + " ]" if values else "[ ]"


def _tensor_block(field: str, tensors: Sequence[TensorSpec]) -> list[str]:
    lines = [f"{field} ["]
    for i, t in enumerate(tensors):
        lines += ["  {", f"    name: {_quote(t.name)}", f"    data_type: {t.data_type}"]
        if not t.dims:
            # A scalar per request (e.g. a tensor that is only [batch]): Triton needs
            # non-empty dims, so declare [1] and reshape it away (the documented idiom).
            lines += ["    dims: [ 1 ]", "    reshape: { shape: [ ] }"]
        else:
            lines.append(f"    dims: {_int_list(t.dims)}")
        lines.append("  }," if i < len(tensors) - 1 else "  }")
    lines.append("]")
    return lines


def render_config_pbtxt(
    model_name: str,
    platform: Platform,
    max_batch_size: int,
    preferred_batch_sizes: Sequence[int] = (),
    max_queue_delay_us: int | None = None,
    inputs: Sequence[TensorSpec] = (),
    outputs: Sequence[TensorSpec] = (),
    instance_count: int | None = None,
    instance_kind: InstanceKind | None = None,
) -> str:
    """Render a Triton model configuration as protobuf text.

    `max_batch_size` 0 means the model does not batch: no dynamic_batching block is
    written (Triton refuses one) and tensor dims are the full shapes. With
    `max_batch_size` > 0 dynamic batching is always enabled, since that is the point of
    declaring a batch dimension for a served model. Empty `inputs`/`outputs` are left out
    so Triton's auto-complete can fill them from the model.
    """
    if not model_name:
        raise ValueError("model_name must not be empty")
    if platform not in PLATFORMS:
        raise ValueError(f"unsupported platform {platform!r}; expected one of {sorted(PLATFORMS)}")
    if max_batch_size < 0:
        raise ValueError(f"max_batch_size must be >= 0, got {max_batch_size}")
    if max_batch_size == 0 and (preferred_batch_sizes or max_queue_delay_us is not None):
        raise ValueError("dynamic batching settings need max_batch_size > 0")
    bad = [s for s in preferred_batch_sizes if not 1 <= s <= max_batch_size]
    if bad:
        raise ValueError(f"preferred batch sizes {bad} must be within 1..max_batch_size ({max_batch_size})")
    if max_queue_delay_us is not None and max_queue_delay_us < 0:
        raise ValueError(f"max_queue_delay_us must be >= 0, got {max_queue_delay_us}")
    if instance_count is not None and instance_count < 1:
        raise ValueError(f"instance_count must be >= 1, got {instance_count}")
    if instance_kind is not None and instance_kind not in INSTANCE_KINDS:
        raise ValueError(f"unsupported instance kind {instance_kind!r}")
    names = [t.name for t in (*inputs, *outputs)]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"duplicate tensor names: {dupes}")

    batched = max_batch_size > 0
    lines = [
        f"name: {_quote(model_name)}",
        f"platform: {_quote(platform)}",
        f"max_batch_size: {max_batch_size}",
    ]
    if inputs:
        lines += _tensor_block("input", inputs)
    if outputs:
        lines += _tensor_block("output", outputs)
    if instance_count is not None or instance_kind is not None:
        lines += ["instance_group [", "  {"]
        if instance_count is not None:
            lines.append(f"    count: {instance_count}")
        if instance_kind is not None:
            lines.append(f"    kind: {instance_kind}")
        lines += ["  }", "]"]
    if batched:
        lines.append("dynamic_batching {")
        if preferred_batch_sizes:
            lines.append(f"  preferred_batch_size: {_int_list(sorted(set(preferred_batch_sizes)))}")
        if max_queue_delay_us is not None:
            lines.append(f"  max_queue_delay_microseconds: {max_queue_delay_us}")
        lines.append("}")
    return "\n".join(lines) + "\n"
