"""The effective Triton ``ModelConfig`` of a loaded model (ModelConfig RPC and REST /config)."""

from __future__ import annotations

from typing import Any, cast

from google.protobuf import json_format
from tritonclient.grpc import model_config_pb2 as mc

from modelserver.datatypes import V2_TO_CONFIG
from modelserver.models import LoadedModel


def model_config(model: LoadedModel) -> mc.ModelConfig:
    cfg = mc.ModelConfig()
    cfg.CopyFrom(model.settings.proto)  # keep whatever the user wrote, then state what we serve
    s, sched = model.session, model.scheduler
    cfg.name = model.name
    cfg.platform = "onnxruntime_onnx"
    cfg.backend = "onnxruntime"
    cfg.max_batch_size = s.max_batch_size
    skip = 1 if s.max_batch_size else 0  # Triton's dims leave out the batch dimension
    del cfg.input[:]
    del cfg.output[:]
    for t in s.inputs:
        cfg.input.add(name=t.name, data_type=mc.DataType.Value(V2_TO_CONFIG[t.datatype]), dims=t.shape[skip:])
    for t in s.outputs:
        cfg.output.add(name=t.name, data_type=mc.DataType.Value(V2_TO_CONFIG[t.datatype]), dims=t.shape[skip:])
    if sched.batching:
        cfg.dynamic_batching.max_queue_delay_microseconds = int(sched.delay_s * 1e6)
    del cfg.instance_group[:]
    cfg.instance_group.add(count=sched.instances, kind=mc.ModelInstanceGroup.KIND_CPU)
    return cfg


# int64 fields protobuf's JSON mapping renders as strings; Triton's REST API sends numbers.
_INT64_KEYS = frozenset({"dims", "max_queue_delay_microseconds", "default_timeout_microseconds"})


def config_json(cfg: mc.ModelConfig) -> dict[str, Any]:
    """The config as Triton's REST ``/config`` endpoint renders it."""
    raw = json_format.MessageToDict(cfg, preserving_proto_field_name=True, always_print_fields_with_no_presence=True)
    return cast(dict[str, Any], _ints(raw))


def _ints(obj: Any, key: str = "") -> Any:
    if isinstance(obj, dict):
        return {k: _ints(v, k) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_ints(v, key) for v in obj]
    if key in _INT64_KEYS and isinstance(obj, str):
        return int(obj)
    return obj
