"""Triton python-backend model running the benchmark's ONNX model with ONNX Runtime.

Copied by bench/runtime.py to ``<repo>/<model>/1/model.py`` next to ``model.onnx``; runs inside
Triton's python-backend stub (``bench/.work/venv-triton``), not in the project's venv.
"""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np
import onnxruntime as ort
import triton_python_backend_utils as pb_utils  # provided by the python backend at run time


class TritonPythonModel:
    def initialize(self, args: dict[str, str]) -> None:
        config = json.loads(args["model_config"])
        params = {k: v["string_value"] for k, v in config.get("parameters", {}).items()}
        options = ort.SessionOptions()
        # Same thread settings as every other contestant of the benchmark.
        options.intra_op_num_threads = int(params.get("intra_op_num_threads", "1"))
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        path = os.path.join(args["model_repository"], args["model_version"], "model.onnx")
        self.session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name
        self.output_name = self.session.get_outputs()[0].name

    def execute(self, requests: list[Any]) -> list[Any]:
        # Dynamic batching hands over several requests: one ORT run for all of them.
        arrays = [pb_utils.get_input_tensor_by_name(r, self.input_name).as_numpy() for r in requests]
        batch = arrays[0] if len(arrays) == 1 else np.concatenate(arrays)
        out = self.session.run([self.output_name], {self.input_name: batch})[0]
        responses = []
        offset = 0
        for arr in arrays:
            n = arr.shape[0]
            tensor = pb_utils.Tensor(self.output_name, out[offset : offset + n])
            responses.append(pb_utils.InferenceResponse(output_tensors=[tensor]))
            offset += n
        return responses

    def finalize(self) -> None:
        self.session = None
