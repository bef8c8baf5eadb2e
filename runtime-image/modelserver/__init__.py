"""modelserver: an ONNX Runtime server speaking the Open Inference Protocol (Triton-compatible)."""

__version__ = "0.1.0"
