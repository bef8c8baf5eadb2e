"""`modeldeploy export`: torch model -> verified ONNX -> Triton-layout repository + ModelDeployment.

Stages (each in its own module, all importing torch lazily so `modeldeploy --help` stays fast):
loader (import or load the model, run it on the example input) -> onnx_export -> verify
(onnxruntime vs torch) -> quantize (optional dynamic int8) -> repository (layout,
config.pbtxt, sha256, manifest). `cli` wires them together with progress and one-line errors.
"""

from .errors import ExportError

__all__ = ["ExportError"]
