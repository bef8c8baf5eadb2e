"""The GRPCInferenceService RPCs besides health, metadata and unary inference: statistics,
model repository, logging, shared-memory status and ``ModelStreamInfer``.

Mixed into ``grpc_service.InferenceService``. Every RPC of the service is answered: the ones
modelserver does not support (shared-memory registration) end with a clean UNIMPLEMENTED
status and one log line, never a traceback. Trace settings read as Triton's "tracing off".
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any, NoReturn

import grpc
from google.protobuf import json_format
from tritonclient.grpc import service_pb2 as pb

from modelserver.admin_rest import region_not_found, trace_update
from modelserver.errors import InvalidInput, ServingError
from modelserver.statistics import server_statistics

if TYPE_CHECKING:
    from modelserver.log_settings import LogSettings
    from modelserver.models import ModelManager
    from modelserver.repository_control import RepositoryControl

log = logging.getLogger("modelserver.grpc")


class _StreamAbort(Exception):
    def __init__(self, details: str) -> None:
        super().__init__(details)
        self.details = details


class _StreamCall:
    """Stands in for the ServicerContext when a stream request goes through ``ModelInfer``:
    an abort becomes this request's error response instead of ending the whole stream."""

    async def abort(self, code: grpc.StatusCode, details: str = "", *args: Any) -> NoReturn:
        raise _StreamAbort(details)


async def _fail(context: grpc.aio.ServicerContext, exc: ServingError) -> NoReturn:
    await context.abort(exc.grpc_code, exc.message)
    raise AssertionError("unreachable")  # abort always raises


async def _unsupported(context: grpc.aio.ServicerContext, what: str) -> NoReturn:
    log.info("unsupported request", extra={"request": what})
    await context.abort(grpc.StatusCode.UNIMPLEMENTED, f"{what} is not supported by modelserver")
    raise AssertionError("unreachable")


def _param_dict(params: Any) -> dict[str, Any]:
    """ModelRepositoryParameter map -> plain values (the key names are what gets validated)."""
    out: dict[str, Any] = {}
    for key, p in params.items():
        kind = p.WhichOneof("parameter_choice")
        out[key] = getattr(p, kind) if kind else None
    return out


class ExtensionsMixin:
    manager: ModelManager
    control: RepositoryControl | None = None
    log_settings: LogSettings | None = None

    def attach(self, control: RepositoryControl, log_settings: LogSettings) -> None:
        self.control, self.log_settings = control, log_settings

    async def _control(self, context: grpc.aio.ServicerContext) -> RepositoryControl:
        if self.control is None:
            await _unsupported(context, "model repository control")
        return self.control

    # -- statistics -------------------------------------------------------------------

    async def ModelStatistics(
        self, request: pb.ModelStatisticsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ModelStatisticsResponse:
        try:
            stats = await server_statistics(self.manager, request.name, request.version)
        except ServingError as exc:
            await _fail(context, exc)
        return json_format.ParseDict(stats, pb.ModelStatisticsResponse())

    # -- model repository -------------------------------------------------------------

    async def RepositoryIndex(
        self, request: pb.RepositoryIndexRequest, context: grpc.aio.ServicerContext
    ) -> pb.RepositoryIndexResponse:
        control = await self._control(context)
        rows = control.index(request.ready)
        return pb.RepositoryIndexResponse(models=[pb.RepositoryIndexResponse.ModelIndex(**row) for row in rows])

    async def RepositoryModelLoad(
        self, request: pb.RepositoryModelLoadRequest, context: grpc.aio.ServicerContext
    ) -> pb.RepositoryModelLoadResponse:
        control = await self._control(context)
        try:
            await control.load(request.model_name, _param_dict(request.parameters))
        except ServingError as exc:
            await _fail(context, exc)
        return pb.RepositoryModelLoadResponse()

    async def RepositoryModelUnload(
        self, request: pb.RepositoryModelUnloadRequest, context: grpc.aio.ServicerContext
    ) -> pb.RepositoryModelUnloadResponse:
        control = await self._control(context)
        try:
            await control.unload(request.model_name, _param_dict(request.parameters))
        except ServingError as exc:
            await _fail(context, exc)
        return pb.RepositoryModelUnloadResponse()

    # -- logging ----------------------------------------------------------------------

    async def LogSettings(
        self, request: pb.LogSettingsRequest, context: grpc.aio.ServicerContext
    ) -> pb.LogSettingsResponse:
        if self.log_settings is None:
            await _unsupported(context, "log settings")
        changes: dict[str, Any] = {}
        for key, value in request.settings.items():
            kind = value.WhichOneof("parameter_choice")
            if kind is None:
                await _fail(context, InvalidInput(f"log settings: '{key}' has no value"))
            changes[key] = getattr(value, kind)
        try:
            current = self.log_settings.update(changes) if changes else self.log_settings.get()
        except ServingError as exc:
            await _fail(context, exc)
        out = pb.LogSettingsResponse()
        for key, v in current.items():
            if isinstance(v, bool):
                out.settings[key].bool_param = v
            elif isinstance(v, int):
                out.settings[key].uint32_param = v
            else:
                out.settings[key].string_param = v
        return out

    # -- shared memory: nothing is ever registered --------------------------------------

    async def SystemSharedMemoryStatus(
        self, request: pb.SystemSharedMemoryStatusRequest, context: grpc.aio.ServicerContext
    ) -> pb.SystemSharedMemoryStatusResponse:
        if request.name:
            await _fail(context, region_not_found("system", request.name))
        return pb.SystemSharedMemoryStatusResponse()

    async def CudaSharedMemoryStatus(
        self, request: pb.CudaSharedMemoryStatusRequest, context: grpc.aio.ServicerContext
    ) -> pb.CudaSharedMemoryStatusResponse:
        if request.name:
            await _fail(context, region_not_found("cuda", request.name))
        return pb.CudaSharedMemoryStatusResponse()

    async def SystemSharedMemoryUnregister(
        self, request: pb.SystemSharedMemoryUnregisterRequest, context: grpc.aio.ServicerContext
    ) -> pb.SystemSharedMemoryUnregisterResponse:
        return pb.SystemSharedMemoryUnregisterResponse()

    async def CudaSharedMemoryUnregister(
        self, request: pb.CudaSharedMemoryUnregisterRequest, context: grpc.aio.ServicerContext
    ) -> pb.CudaSharedMemoryUnregisterResponse:
        return pb.CudaSharedMemoryUnregisterResponse()

    async def SystemSharedMemoryRegister(
        self, request: pb.SystemSharedMemoryRegisterRequest, context: grpc.aio.ServicerContext
    ) -> pb.SystemSharedMemoryRegisterResponse:
        await _unsupported(context, "system shared memory")

    async def CudaSharedMemoryRegister(
        self, request: pb.CudaSharedMemoryRegisterRequest, context: grpc.aio.ServicerContext
    ) -> pb.CudaSharedMemoryRegisterResponse:
        await _unsupported(context, "CUDA shared memory")

    async def TraceSetting(
        self, request: pb.TraceSettingRequest, context: grpc.aio.ServicerContext
    ) -> pb.TraceSettingResponse:
        """Tracing is off and stays off: reads answer Triton's "off" settings, changes are refused."""
        changes = {key: list(v.value) for key, v in request.settings.items()}
        try:
            current = trace_update(changes)
        except ServingError as exc:
            await _fail(context, exc)
        out = pb.TraceSettingResponse()
        for key, value in current.items():
            out.settings[key].value.extend(value if isinstance(value, list) else [value])
        return out

    # -- streaming ----------------------------------------------------------------------

    async def ModelInfer(self, request: pb.ModelInferRequest, context: Any) -> pb.ModelInferResponse:
        raise NotImplementedError  # provided by InferenceService

    async def ModelStreamInfer(
        self, request_iterator: AsyncIterator[pb.ModelInferRequest], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.ModelStreamInferResponse]:
        """Each request runs as its own task (so stream requests batch with each other and with
        unary ones); responses are written as they complete. A failed request becomes a
        response with ``error_message`` and the stream goes on, as in Triton."""
        done: asyncio.Queue[pb.ModelStreamInferResponse | None] = asyncio.Queue()
        call = _StreamCall()

        async def one(req: pb.ModelInferRequest) -> None:
            try:
                resp = await self.ModelInfer(req, call)
                await done.put(pb.ModelStreamInferResponse(infer_response=resp))
            except Exception as exc:  # this request's error response; the stream goes on
                if isinstance(exc, _StreamAbort):
                    message = exc.details
                else:  # a bug: answer it like a unary call would (INTERNAL), and log it once
                    log.error("stream request crashed", exc_info=exc, extra={"model": req.model_name})
                    message = f"internal error: {type(exc).__name__}"
                failed = pb.ModelInferResponse(model_name=req.model_name, model_version=req.model_version, id=req.id)
                await done.put(pb.ModelStreamInferResponse(error_message=message, infer_response=failed))

        async def read() -> None:
            tasks: set[asyncio.Task[None]] = set()
            try:
                async for req in request_iterator:
                    task = asyncio.create_task(one(req))
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)
                if tasks:
                    await asyncio.gather(*tasks)
            finally:
                await done.put(None)

        reader = asyncio.create_task(read())
        try:
            while (item := await done.get()) is not None:
                yield item
            await reader  # re-raise a failure of the request stream itself
        finally:
            reader.cancel()
