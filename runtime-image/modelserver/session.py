"""One ONNX Runtime session per model version: signature, input checks and run."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import onnxruntime as ort

from modelserver.datatypes import ORT_TO_V2, V2_TO_NUMPY
from modelserver.errors import BackendError, InvalidInput, ModelRunError, ServingError

Array = npt.NDArray[Any]


@dataclass(frozen=True)
class TensorSpec:
    name: str
    datatype: str
    shape: tuple[int, ...]  # -1 for a dynamic dimension

    @property
    def dtype(self) -> np.dtype[Any]:
        return V2_TO_NUMPY[self.datatype]


def _dims(shape: Any) -> tuple[int, ...]:
    # ORT reports symbolic dims as strings and unknown dims as None.
    return tuple(d if isinstance(d, int) and d >= 0 else -1 for d in (shape or ()))


def select_providers(device: str) -> list[str]:
    available = ort.get_available_providers()
    has_cuda = "CUDAExecutionProvider" in available
    if device == "cuda":
        if not has_cuda:
            raise RuntimeError("--device cuda: onnxruntime has no CUDAExecutionProvider here")
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    if device == "auto" and has_cuda:
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


class ModelSession:
    """Wraps an ``InferenceSession``; ``run`` is thread-safe (ORT allows concurrent runs)."""

    def __init__(
        self,
        name: str,
        version: int,
        path: Path,
        *,
        providers: list[str],
        intra_op_threads: int = 0,
        max_batch_size: int = 0,
    ) -> None:
        self.name = name
        self.version = version
        opts = ort.SessionOptions()
        if intra_op_threads > 0:
            opts.intra_op_num_threads = intra_op_threads
        # Each run is already issued from our own worker thread; ORT's inter-op pool adds nothing.
        opts.inter_op_num_threads = 1
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # ORT's pool threads spin between runs by default; here they would steal the cores the
        # event loop needs to parse the next requests.
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(str(path), sess_options=opts, providers=providers)
        self.inputs = [self._spec(a) for a in self.session.get_inputs()]
        self.outputs = [self._spec(a) for a in self.session.get_outputs()]
        self.input_by_name = {s.name: s for s in self.inputs}
        self.output_names = [s.name for s in self.outputs]
        self.output_datatypes = {s.name: s.datatype for s in self.outputs}
        self.output_set = frozenset(self.output_names)
        batchable = all(s.shape and s.shape[0] == -1 for s in [*self.inputs, *self.outputs])
        # Triton semantics: max_batch_size > 0 means every tensor carries a leading batch dim.
        self.max_batch_size = max_batch_size if batchable else 0

    def _spec(self, arg: Any) -> TensorSpec:
        datatype = ORT_TO_V2.get(arg.type)
        if datatype is None:
            raise RuntimeError(f"model {self.name}: tensor {arg.name} has unsupported type {arg.type}")
        return TensorSpec(arg.name, datatype, _dims(arg.shape))

    # -- input checks -------------------------------------------------------------------

    def check_input(self, name: str, datatype: str, shape: list[int]) -> tuple[TensorSpec, int]:
        """Validate one input's header; return its spec and element count."""
        spec = self.input_by_name.get(name)
        if spec is None:
            raise InvalidInput(f"unexpected input '{name}' for model '{self.name}'")
        if datatype != spec.datatype:
            raise InvalidInput(f"input '{name}': datatype {datatype!r} does not match the model's {spec.datatype}")
        if len(shape) != len(spec.shape):
            raise InvalidInput(
                f"input '{name}': shape {list(shape)} has rank {len(shape)}, model expects {list(spec.shape)}"
            )
        for got, want in zip(shape, spec.shape, strict=True):
            if type(got) is not int or got < 0 or (want >= 0 and got != want):
                raise InvalidInput(f"input '{name}': shape {list(shape)} does not match {list(spec.shape)}")
        if self.max_batch_size and shape[0] > self.max_batch_size:
            raise InvalidInput(f"input '{name}': batch size {shape[0]} exceeds max_batch_size {self.max_batch_size}")
        return spec, math.prod(shape)

    def check_complete(self, feeds: dict[str, Array]) -> int:
        """All inputs present and, when batching, agreeing on the batch size; returns it."""
        if len(feeds) != len(self.inputs):
            missing = [s.name for s in self.inputs if s.name not in feeds]
            raise InvalidInput(f"missing input(s) {missing} for model '{self.name}'")
        if not self.max_batch_size:
            return 1
        sizes = {a.shape[0] for a in feeds.values()}
        if len(sizes) != 1:
            raise InvalidInput(f"inputs disagree on the batch size: {sorted(sizes)}")
        return sizes.pop()

    def check_outputs(self, requested: list[str] | None) -> list[str] | None:
        if requested is None:
            return None
        for n in requested:
            if n not in self.output_set:
                raise InvalidInput(f"unexpected requested output '{n}' for model '{self.name}'")
        return requested

    # -- execution ----------------------------------------------------------------------

    def run(self, feeds: dict[str, Array], outputs: list[str] | None = None) -> dict[str, Array]:
        names = outputs or self.output_names
        try:
            results = self.session.run(names, feeds)
        except Exception as exc:
            # The request already matched the signature, so an ORT error here comes from the
            # values or from dynamic dims that disagree (e.g. an Add of [N,3] and [N,4]):
            # the client's fault, answered 400. Anything that is not ORT's is ours: 500.
            if type(exc).__module__.startswith("onnxruntime"):
                error: ServingError = ModelRunError(f"model '{self.name}': {exc}")
            else:
                error = BackendError(f"model '{self.name}': inference failed: {exc}")
        else:
            return dict(zip(names, results, strict=True))
        # Raised outside the except block so that ORT's exception is not its __context__: that
        # one's traceback holds this frame's feeds, and the batch's future holds the error, a
        # cycle that kept every failed request's arrays alive until the cyclic GC ran.
        raise error
