"""MLServer custom runtime running the benchmark's ONNX model with ONNX Runtime.

Copied by bench/runtime.py into each MLServer model folder; runs inside
``bench/.work/venv-mlserver``, not in the project's venv.
"""

from __future__ import annotations

import os

import onnxruntime as ort
from mlserver import MLModel
from mlserver.codecs import NumpyCodec
from mlserver.types import InferenceRequest, InferenceResponse
from mlserver.utils import get_model_uri


class OrtRuntime(MLModel):
    async def load(self) -> bool:
        path = await get_model_uri(self._settings)
        options = ort.SessionOptions()
        # Same thread settings as every other contestant of the benchmark.
        options.intra_op_num_threads = int(os.environ.get("BENCH_ORT_INTRA_OP_THREADS", "1"))
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        self.session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name
        self.output_name = self.session.get_outputs()[0].name
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        # With adaptive batching MLServer has already merged the requests along dim 0.
        batch = NumpyCodec.decode_input(payload.inputs[0])
        out = self.session.run([self.output_name], {self.input_name: batch})[0]
        return InferenceResponse(
            model_name=self.name,
            model_version=self.version,
            outputs=[NumpyCodec.encode_output(self.output_name, out)],
        )
