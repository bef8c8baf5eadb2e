"""The effective Triton ``ModelConfig`` of a loaded model (ModelConfig RPC and REST /config)."""

from __future__ import annotations

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
