"""Tiny ONNX models for sandbox scenarios, built with the ``onnx`` helper API (no framework needed).

- :func:`linear_model` — ``output = input @ W + b``: input "input" FP32 [-1, 4], output "output"
  FP32 [-1, 3] (a symbolic batch dim); ``seed`` changes the weights (a "new model version" with the same signature);
- :func:`other_signature_model` — input "features" FP32 [-1, 8], output "scores" FP32 [-1, 2]:
  the canary that the signature gate must stop;
- :func:`corrupt_model` — bytes that are not an ONNX model (fetch accepts them when the digest
  matches; the server then fails to load them).
"""

from __future__ import annotations

import hashlib

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 13
IR_VERSION = 8  # readable by every onnxruntime the runtime image may ship


def sha256_digest(data: bytes) -> str:
    """The digest as the API spells it: ``sha256:<hex>``."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _affine(inputs: int, outputs: int, seed: int, input_name: str, output_name: str) -> bytes:
    rng = np.random.default_rng(seed)
    weights = rng.standard_normal((inputs, outputs)).astype(np.float32)
    bias = rng.standard_normal(outputs).astype(np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", [input_name, "W"], ["xw"]),
            helper.make_node("Add", ["xw", "b"], [output_name]),
        ],
        f"affine_{inputs}x{outputs}_{seed}",
        [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, ["batch", inputs])],
        [helper.make_tensor_value_info(output_name, TensorProto.FLOAT, ["batch", outputs])],
        initializer=[numpy_helper.from_array(weights, "W"), numpy_helper.from_array(bias, "b")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="modeldeploy")
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model)
    return model.SerializeToString()


def linear_model(seed: int = 0) -> bytes:
    """``output[-1, 3] = input[-1, 4] @ W + b`` with weights drawn from ``seed``."""
    return _affine(4, 3, seed, "input", "output")


def other_signature_model(seed: int = 0) -> bytes:
    """Same kind of model with a different signature: "features" [-1, 8] -> "scores" [-1, 2]."""
    return _affine(8, 2, seed, "features", "scores")


def corrupt_model() -> bytes:
    """Not a protobuf ONNX model: ONNX Runtime refuses to load it."""
    return b"this is not an ONNX model\x00\xff" * 8
