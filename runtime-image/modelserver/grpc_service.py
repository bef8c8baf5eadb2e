"""``inference.GRPCInferenceService`` on grpc.aio, using the stubs shipped in tritonclient."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, NoReturn

import grpc
from tritonclient.grpc import service_pb2 as pb
from tritonclient.grpc import service_pb2_grpc as pb_grpc

from modelserver import __version__
from modelserver.errors import BackendError, ServingError
from modelserver.grpc_codec import decode_request, encode_response
from modelserver.grpc_extensions import ExtensionsMixin
from modelserver.limits import DEFAULT_MAX_REQUEST_MEMORY
from modelserver.model_config import model_config
from modelserver.models import LoadedModel, ModelManager
from modelserver.rest import EXTENSIONS

log = logging.getLogger("modelserver.grpc")


async def _abort(context: grpc.aio.ServicerContext, exc: ServingError) -> NoReturn:
    await context.abort(exc.grpc_code, exc.message)
    raise AssertionError("unreachable")  # abort always raises


async def _abort_with(context: grpc.aio.ServicerContext, code: grpc.StatusCode, message: str) -> NoReturn:
    """Abort with no exception object alive in the caller's frame.

    Aborting from inside ``except ... as exc`` leaves a cycle (exc -> traceback -> frame -> exc)
    that keeps the frame's request message alive until the cyclic GC runs: with large
    refused messages that pinned hundreds of MB (found by the fuzz test)."""
    await context.abort(code, message)
    raise AssertionError("unreachable")


# ModelInfer messages above this are decoded in a worker thread (see rest.OFFLOAD_BYTES).
OFFLOAD_BYTES = 256 * 1024


class InferenceService(ExtensionsMixin, pb_grpc.GRPCInferenceServiceServicer):
    def __init__(self, manager: ModelManager, max_request_memory: int = DEFAULT_MAX_REQUEST_MEMORY) -> None:
        self.manager = manager
        self.max_request_memory = max_request_memory
        self.accepting = True

    async def ServerLive(self, request: pb.ServerLiveRequest, context: Any) -> pb.ServerLiveResponse:
        return pb.ServerLiveResponse(live=True)

    async def ServerReady(self, request: pb.ServerReadyRequest, context: Any) -> pb.ServerReadyResponse:
        return pb.ServerReadyResponse(ready=self.manager.ready and self.accepting)

    async def ServerMetadata(self, request: pb.ServerMetadataRequest, context: Any) -> pb.ServerMetadataResponse:
        return pb.ServerMetadataResponse(name="modelserver", version=__version__, extensions=EXTENSIONS)

    async def _resolve(self, name: str, version: str, context: Any) -> LoadedModel:
        try:
            return self.manager.resolve(name, version)
        except ServingError as exc:
            code, message = exc.grpc_code, exc.message
        await _abort_with(context, code, message)

    async def ModelReady(self, request: pb.ModelReadyRequest, context: Any) -> pb.ModelReadyResponse:
        # Like Triton: an unknown model or version is simply not ready (tritonclient's
        # is_model_ready then returns False instead of raising).
        try:
            self.manager.resolve(request.name, request.version)
        except ServingError:
            return pb.ModelReadyResponse(ready=False)
        return pb.ModelReadyResponse(ready=True)

    async def ModelMetadata(self, request: pb.ModelMetadataRequest, context: Any) -> pb.ModelMetadataResponse:
        model = await self._resolve(request.name, request.version, context)
        s = model.session
        T = pb.ModelMetadataResponse.TensorMetadata
        return pb.ModelMetadataResponse(
            name=model.name,
            versions=[str(v) for v in self.manager.versions(model.name)],
            platform="onnxruntime_onnx",
            inputs=[T(name=t.name, datatype=t.datatype, shape=t.shape) for t in s.inputs],
            outputs=[T(name=t.name, datatype=t.datatype, shape=t.shape) for t in s.outputs],
        )

    async def ModelConfig(self, request: pb.ModelConfigRequest, context: Any) -> pb.ModelConfigResponse:
        model = await self._resolve(request.name, request.version, context)
        return pb.ModelConfigResponse(config=model_config(model))

    async def ModelInfer(self, request: pb.ModelInferRequest, context: Any) -> pb.ModelInferResponse:
        outcome = await self._infer(request)
        if isinstance(outcome, pb.ModelInferResponse):
            return outcome
        # grpc.aio keeps the abort's exception (whose traceback holds this frame) in a reference
        # cycle until the cyclic GC runs: drop the request first, or every refused message stays
        # pinned meanwhile (hundreds of MB under the fuzz test).
        del request
        await _abort_with(context, *outcome)

    async def _infer(self, request: pb.ModelInferRequest) -> pb.ModelInferResponse | tuple[grpc.StatusCode, str]:
        t0 = time.perf_counter_ns()
        try:
            model = self.manager.resolve(request.model_name, request.model_version)
        except ServingError as exc:
            return exc.grpc_code, exc.message
        try:
            if request.ByteSize() > OFFLOAD_BYTES:
                feeds, batch, outputs = await asyncio.to_thread(
                    decode_request, model.session, request, self.max_request_memory
                )
            else:
                feeds, batch, outputs = decode_request(model.session, request, self.max_request_memory)
            results = await self.manager.infer(model, feeds, batch, outputs)
            response = encode_response(request, model.version, model.session, results)
        except ServingError as exc:
            failure = exc.reason, exc.grpc_code, exc.message
        except Exception as exc:  # a bug: still answer, count and log it
            log.exception("infer crashed", extra={"model": model.name})
            err = BackendError(f"internal error: {type(exc).__name__}")
            failure = err.reason, err.grpc_code, err.message
        else:
            model.stats.observe_success(time.perf_counter_ns() - t0, batch)
            return response
        reason, code, message = failure
        model.stats.observe_failure(reason, time.perf_counter_ns() - t0)
        return code, message


def add_to_server(server: grpc.aio.Server, service: InferenceService) -> None:
    pb_grpc.add_GRPCInferenceServiceServicer_to_server(service, server)
