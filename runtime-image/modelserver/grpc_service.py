"""``inference.GRPCInferenceService`` on grpc.aio, using the stubs shipped in tritonclient."""

from __future__ import annotations

import logging
import time
from typing import Any, NoReturn

import grpc
from tritonclient.grpc import service_pb2 as pb
from tritonclient.grpc import service_pb2_grpc as pb_grpc

from modelserver import __version__
from modelserver.errors import BackendError, ServingError
from modelserver.grpc_codec import decode_request, encode_response
from modelserver.model_config import model_config
from modelserver.models import LoadedModel, ModelManager
from modelserver.rest import EXTENSIONS

log = logging.getLogger("modelserver.grpc")


async def _abort(context: grpc.aio.ServicerContext, exc: ServingError) -> NoReturn:
    await context.abort(exc.grpc_code, exc.message)
    raise AssertionError("unreachable")  # abort always raises


class InferenceService(pb_grpc.GRPCInferenceServiceServicer):
    def __init__(self, manager: ModelManager) -> None:
        self.manager = manager
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
            await _abort(context, exc)

    async def ModelReady(self, request: pb.ModelReadyRequest, context: Any) -> pb.ModelReadyResponse:
        try:
            self.manager.resolve(request.name, request.version)
        except ServingError as exc:
            if exc.http_status == 404:
                await _abort(context, exc)
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
        t0 = time.perf_counter_ns()
        model = await self._resolve(request.model_name, request.model_version, context)
        try:
            feeds, batch, outputs = decode_request(model.session, request)
            results = await self.manager.infer(model, feeds, batch, outputs)
            response = encode_response(request, model.version, model.session, results)
        except ServingError as exc:
            model.stats.observe_failure(exc.reason, time.perf_counter_ns() - t0)
            await _abort(context, exc)
        except Exception as exc:  # a bug: still answer, count and log it
            log.exception("infer crashed", extra={"model": model.name})
            err = BackendError(f"internal error: {type(exc).__name__}")
            model.stats.observe_failure(err.reason, time.perf_counter_ns() - t0)
            await _abort(context, err)
        model.stats.observe_success(time.perf_counter_ns() - t0, batch)
        return response


def add_to_server(server: grpc.aio.Server, service: InferenceService) -> None:
    pb_grpc.add_GRPCInferenceServiceServicer_to_server(service, server)
