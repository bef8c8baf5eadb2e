"""Open Inference Protocol v2 over HTTP (aiohttp)."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from aiohttp import web

from modelserver import __version__
from modelserver.errors import BackendError, RequestTooLarge, ServingError
from modelserver.model_config import config_json, model_config
from modelserver.models import LoadedModel, ModelManager
from modelserver.rest_codec import HEADER_LENGTH, decode_request, encode_response

log = logging.getLogger("modelserver.rest")

EXTENSIONS = ["binary_tensor_data", "model_configuration"]


def _json(obj: Any, status: int = 200) -> web.Response:
    return web.Response(body=json.dumps(obj).encode(), status=status, content_type="application/json")


def _error(exc: ServingError) -> web.Response:
    return _json({"error": exc.message}, exc.http_status)


def _metadata(model: LoadedModel, versions: list[int]) -> dict[str, Any]:
    s = model.session
    return {
        "name": model.name,
        "versions": [str(v) for v in versions],
        "platform": "onnxruntime_onnx",
        "inputs": [{"name": t.name, "datatype": t.datatype, "shape": list(t.shape)} for t in s.inputs],
        "outputs": [{"name": t.name, "datatype": t.datatype, "shape": list(t.shape)} for t in s.outputs],
    }


class RestApi:
    def __init__(self, manager: ModelManager, max_request_bytes: int) -> None:
        self.manager = manager
        self.max_request_bytes = max_request_bytes
        self.accepting = True  # cleared on SIGTERM so readiness fails while draining

    def app(self) -> web.Application:
        app = web.Application(client_max_size=self.max_request_bytes)
        r = app.router
        r.add_get("/v2", self.server_metadata)
        r.add_get("/v2/health/live", self.live)
        r.add_get("/v2/health/ready", self.ready)
        for base in ("/v2/models/{model}", "/v2/models/{model}/versions/{version}"):
            r.add_get(base, self.model_metadata)
            r.add_get(base + "/ready", self.model_ready)
            r.add_get(base + "/config", self.model_config)
            r.add_post(base + "/infer", self.infer)
        return app

    async def server_metadata(self, request: web.Request) -> web.Response:
        return _json({"name": "modelserver", "version": __version__, "extensions": EXTENSIONS})

    async def live(self, request: web.Request) -> web.Response:
        return web.Response(status=200)

    async def ready(self, request: web.Request) -> web.Response:
        # Triton answers 400 (not 503) when not ready; probes only look at 2xx vs not.
        return web.Response(status=200 if self.manager.ready and self.accepting else 400)

    def _resolve(self, request: web.Request) -> LoadedModel:
        return self.manager.resolve(request.match_info["model"], request.match_info.get("version", ""))

    async def model_metadata(self, request: web.Request) -> web.Response:
        try:
            model = self._resolve(request)
            return _json(_metadata(model, self.manager.versions(model.name)))
        except ServingError as exc:
            return _error(exc)

    async def model_ready(self, request: web.Request) -> web.Response:
        try:
            self._resolve(request)
        except ServingError as exc:
            return _error(exc)
        return web.Response(status=200)

    async def model_config(self, request: web.Request) -> web.Response:
        try:
            model = self._resolve(request)
        except ServingError as exc:
            return _error(exc)
        return _json(config_json(model_config(model)))

    async def infer(self, request: web.Request) -> web.Response:
        t0 = time.perf_counter_ns()
        try:
            model = self._resolve(request)
        except ServingError as exc:
            # Unknown models are not counted: their names would become unbounded label values.
            return _error(exc)
        stats = model.stats
        try:
            if request.content_length is not None and request.content_length > self.max_request_bytes:
                raise RequestTooLarge(f"request body exceeds {self.max_request_bytes} bytes")
            try:
                body = await request.read()
            except web.HTTPRequestEntityTooLarge:
                raise RequestTooLarge(f"request body exceeds {self.max_request_bytes} bytes") from None
            req = decode_request(model.session, body, request.headers.get(HEADER_LENGTH))
            outputs = await self.manager.infer(model, req.feeds, req.batch, req.outputs)
            payload, hlen = encode_response(model.name, model.version, req, model.session, outputs)
        except ServingError as exc:
            stats.observe_failure(exc.reason, time.perf_counter_ns() - t0)
            if exc.http_status >= 500:
                log.warning("infer failed", extra={"model": model.name, "error": exc.message})
            return _error(exc)
        except Exception as exc:  # a bug: still answer, count and log it
            log.exception("infer crashed", extra={"model": model.name})
            err = BackendError(f"internal error: {type(exc).__name__}")
            stats.observe_failure(err.reason, time.perf_counter_ns() - t0)
            return _error(err)
        stats.observe_success(time.perf_counter_ns() - t0, req.batch)
        if hlen is None:
            return web.Response(body=payload, content_type="application/json")
        return web.Response(body=payload, content_type="application/octet-stream", headers={HEADER_LENGTH: str(hlen)})
