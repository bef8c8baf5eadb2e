"""render_config_pbtxt: exact text, validation, and (when available) Triton's own proto."""

from __future__ import annotations

import pytest

from modeldeploy.render.triton_config import TensorSpec, render_config_pbtxt

EXPECTED = '''name: "resnet"
platform: "onnxruntime_onnx"
max_batch_size: 16
input [
  {
    name: "image"
    data_type: TYPE_FP32
    dims: [ 3, -1, -1 ]
  },
  {
    name: "scale"
    data_type: TYPE_FP16
    dims: [ 1 ]
    reshape: { shape: [ ] }
  }
]
output [
  {
    name: "logits"
    data_type: TYPE_FP32
    dims: [ 1000 ]
  }
]
instance_group [
  {
    count: 2
    kind: KIND_GPU
  }
]
dynamic_batching {
  preferred_batch_size: [ 4, 8 ]
  max_queue_delay_microseconds: 500
}
'''

INPUTS = (TensorSpec("image", "TYPE_FP32", (3, -1, -1)), TensorSpec("scale", "TYPE_FP16", ()))
OUTPUTS = (TensorSpec("logits", "TYPE_FP32", (1000,)),)


def full() -> str:
    return render_config_pbtxt(
        "resnet", "onnxruntime_onnx", 16, preferred_batch_sizes=(8, 4, 8), max_queue_delay_us=500,
        inputs=INPUTS, outputs=OUTPUTS, instance_count=2, instance_kind="KIND_GPU",
    )


def test_exact_text() -> None:
    assert full() == EXPECTED


def test_deterministic() -> None:
    assert full() == full()


def test_minimal_and_unbatched() -> None:
    text = render_config_pbtxt("m", "tensorrt_plan", 0, outputs=OUTPUTS)
    assert text.startswith('name: "m"\nplatform: "tensorrt_plan"\nmax_batch_size: 0\noutput [')
    assert "dynamic_batching" not in text and "input [" not in text
    assert render_config_pbtxt("m", "pytorch_libtorch", 4).endswith("dynamic_batching {\n}\n")


def test_name_is_escaped() -> None:
    assert render_config_pbtxt('a"b\\c', "onnxruntime_onnx", 0).startswith('name: "a\\"b\\\\c"\n')


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_batch_size": -1}, "max_batch_size"),
        ({"max_batch_size": 4, "preferred_batch_sizes": (8,)}, "preferred batch sizes"),
        ({"max_batch_size": 0, "max_queue_delay_us": 10}, "need max_batch_size > 0"),
        ({"max_batch_size": 4, "max_queue_delay_us": -1}, "max_queue_delay_us"),
        ({"max_batch_size": 4, "instance_count": 0}, "instance_count"),
        ({"max_batch_size": 4, "platform": "tensorflow_savedmodel"}, "unsupported platform"),
        ({"max_batch_size": 4, "inputs": [TensorSpec("x", "TYPE_FP32", (1,))],
          "outputs": [TensorSpec("x", "TYPE_FP32", (1,))]}, "duplicate"),
    ],
)
def test_rejects_invalid(kwargs: dict[str, object], message: str) -> None:
    args: dict[str, object] = {"model_name": "m", "platform": "onnxruntime_onnx", **kwargs}
    with pytest.raises(ValueError, match=message):
        render_config_pbtxt(**args)  # type: ignore[arg-type]


@pytest.mark.parametrize(("dtype", "dims"), [("TYPE_FLOAT", (1,)), ("TYPE_FP32", (0,)), ("TYPE_FP32", (-2,))])
def test_tensor_spec_validation(dtype: str, dims: tuple[int, ...]) -> None:
    with pytest.raises(ValueError):
        TensorSpec("x", dtype, dims)


def test_parses_as_triton_model_config() -> None:
    text_format = pytest.importorskip("google.protobuf.text_format")
    model_config_pb2 = pytest.importorskip("tritonclient.grpc.model_config_pb2")
    config = text_format.Parse(full(), model_config_pb2.ModelConfig())
    assert config.name == "resnet" and config.max_batch_size == 16
    assert [i.name for i in config.input] == ["image", "scale"]
    assert list(config.input[0].dims) == [3, -1, -1]
    assert config.input[1].data_type == model_config_pb2.TYPE_FP16
    assert list(config.input[1].reshape.shape) == []
    assert list(config.output[0].dims) == [1000]
    assert config.instance_group[0].kind == model_config_pb2.ModelInstanceGroup.KIND_GPU
    assert list(config.dynamic_batching.preferred_batch_size) == [4, 8]
    assert config.dynamic_batching.max_queue_delay_microseconds == 500
