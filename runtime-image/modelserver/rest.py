"""Open Inference Protocol v2 over HTTP: routing and handlers, independent of the transport.

``http_server.py`` parses the bytes and calls ``RestApi.handle``; handlers return a ``Reply``.
"""

from __future__ import annotations

import asyncio
import logging
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar
from urllib.parse import unquote

from modelserver import __version__, jsonio
from modelserver.batching import Outputs
from modelserver.errors import BackendError, InvalidInput, RequestTooLarge, ServingError
from modelserver.limits import DEFAULT_MAX_REQUEST_MEMORY
from modelserver.model_config import config_json, model_config
from modelserver.models import LoadedModel, ModelManager
from modelserver.rest_codec import RestRequest, decode_request, encode_response

log = logging.getLogger("modelserver.rest")
T = TypeVar("T")

EXTENSIONS = ["binary_tensor_data", "model_configuration", "statistics", "model_repository", "logging"]
JSON = b"application/json"
OCTETS = b"application/octet-stream"


@dataclass(slots=True)
class Reply:
    status: int
    body: bytes = b""
    content_type: bytes = JSON
    header_length: int | None = None  # Inference-Header-Content-Length, when binary tensors follow
    location: bytes = b""  # a Location header: only the test-only metadata redirect fault sets one


Pending = tuple["asyncio.Future[Any]", Callable[["asyncio.Future[Any]"], Reply]]


@dataclass(slots=True)
class Route:
    kind: str  # "infer", "ready", "config", "metadata", "live", "server_ready", "server", "none"
    model: str = ""
    version: str = ""


NO_ROUTE = Route("none")


def _json(obj: Any, status: int = 200) -> Reply:
    return Reply(status, jsonio.dumps(obj))


def _error(exc: ServingError) -> Reply:
    return Reply(exc.http_status, jsonio.dumps({"error": exc.message}))


NOT_FOUND = Reply(404, b'{"error":"not found"}')
METHOD_NOT_ALLOWED = Reply(405, b'{"error":"method not allowed"}')


def _catching(fn: Callable[..., T], *args: Any) -> T | ServingError:
    """``fn(*args)``, or the ServingError it raised, stripped of its traceback (see
    ``RestApi._infer_offloaded``)."""
    try:
        return fn(*args)
    except ServingError as exc:
        exc.__context__ = None
        return exc.with_traceback(None)


def _failure(fut: asyncio.Future[Any]) -> BaseException | None:
    """The future's exception, read without raising it: ``fut.result()`` raising here would add
    this frame (which holds ``fut``) to the error's traceback, a cycle (future -> error -> frame
    -> future) that pins the request's arrays until the cyclic GC runs (measured: +8 MB per
    refused 8 MB request)."""
    if fut.cancelled():
        return asyncio.CancelledError()
    return fut.exception()


def route(path: str) -> Route:
    if path.startswith("/v2/models/"):
        parts = path[11:].split("/")
        model, rest = unquote(parts[0]), parts[1:]
        version = ""
        if len(rest) >= 2 and rest[0] == "versions":
            version, rest = unquote(rest[1]), rest[2:]
        if not rest:
            return Route("metadata", model, version)
        if len(rest) == 1 and rest[0] in ("infer", "ready", "config"):
            return Route(rest[0], model, version)
        return Route("none")
    if path == "/v2/health/ready":
        return Route("server_ready")
    if path == "/v2/health/live":
        return Route("live")
    if path in ("/v2", "/v2/"):
        return Route("server")
    return Route("none")


def _metadata(model: LoadedModel, versions: list[int]) -> dict[str, Any]:
    s = model.session
    return {
        "name": model.name,
        "versions": [str(v) for v in versions],
        "platform": "onnxruntime_onnx",
        "inputs": [{"name": t.name, "datatype": t.datatype, "shape": list(t.shape)} for t in s.inputs],
        "outputs": [{"name": t.name, "datatype": t.datatype, "shape": list(t.shape)} for t in s.outputs],
    }


# Bodies above this are decoded (and their responses encoded) in a worker thread, so that one
# large request never holds the event loop (liveness, other clients) for its whole decode.
OFFLOAD_BYTES = 256 * 1024


class RestApi:
    def __init__(
        self, manager: ModelManager, max_request_bytes: int, max_request_memory: int = DEFAULT_MAX_REQUEST_MEMORY
    ) -> None:
        self.manager = manager
        self.max_request_bytes = max_request_bytes
        self.max_request_memory = max_request_memory
        self.accepting = True  # cleared on SIGTERM so readiness fails while draining

    def lookup(self, r: Route) -> LoadedModel | None:
        """The model an infer request targets, if it resolves (used to announce arrivals)."""
        try:
            return self.manager.resolve(r.model, r.version)
        except ServingError:
            return None

    def handle(
        self,
        method: bytes,
        r: Route,
        headers: dict[bytes, bytes],
        body: bytes,
        too_large: bool,
        t0: int,
        model: LoadedModel | None = None,
    ) -> Reply | Pending:
        """A reply now, or (future, finish): call ``finish(future)`` once the future is done.

        ``model`` may carry the infer target already resolved while the headers arrived.
        """
        if r.kind == "infer":
            if method != b"POST":
                return METHOD_NOT_ALLOWED
            return self.infer(r, headers, body, too_large, t0, model)
        if r.kind == "none":
            return NOT_FOUND
        if method not in (b"GET", b"HEAD"):
            return METHOD_NOT_ALLOWED
        if r.kind == "live":
            return Reply(200, b"")
        if r.kind == "server_ready":
            # Triton answers 400 (not 503) when not ready; probes only look at 2xx vs not.
            return Reply(200 if self.manager.ready and self.accepting else 400, b"")
        if r.kind == "server":
            return _json({"name": "modelserver", "version": __version__, "extensions": EXTENSIONS})
        try:
            model = self.manager.resolve(r.model, r.version)
            if r.kind == "ready":
                return Reply(200, b"")
            if r.kind == "config":
                return _json(config_json(model_config(model)))
            reply = _json(_metadata(model, self.manager.versions(model.name)))
            if self.manager.faults.metadata_faulty:  # test-only (modelserver.faults)
                status, body, location = self.manager.faults.metadata_answer(reply.body)
                return Reply(status, body, location=location)
            return reply
        except ServingError as exc:
            return _error(exc)

    def infer(
        self,
        r: Route,
        headers: dict[bytes, bytes],
        body: bytes,
        too_large: bool,
        t0: int,
        model: LoadedModel | None = None,
    ) -> Reply | Pending:
        """Decode and queue synchronously; the reply is built when the batch's result arrives.

        No coroutine or task per request: that saves a few event-loop turns on the hot path.
        """
        if model is None:
            try:
                model = self.manager.resolve(r.model, r.version)
            except ServingError as exc:
                # Unknown models are not counted: their names would become unbounded label values.
                return _error(exc)
        if len(body) > OFFLOAD_BYTES and not too_large:
            return asyncio.ensure_future(self._infer_offloaded(model, headers, body)), partial(
                self._finish_offloaded, model, t0
            )
        try:
            if too_large:
                raise RequestTooLarge(f"request body exceeds {self.max_request_bytes} bytes")
            req = self._decode(model, headers, body)
            fut = self.manager.submit(model, req.feeds, req.batch, req.outputs)
        except Exception as exc:
            return self._failed(model, exc, t0)
        return fut, partial(self._finish, model, req, t0)

    def _decode(self, model: LoadedModel, headers: dict[bytes, bytes], body: bytes) -> RestRequest:
        encoding = headers.get(b"content-encoding")
        if encoding is not None:
            body = self._decompress(encoding, body)
        hlen = headers.get(b"inference-header-content-length")
        return decode_request(
            model.session, body, None if hlen is None else hlen.decode("latin-1"), self.max_request_memory
        )

    async def _infer_offloaded(
        self, model: LoadedModel, headers: dict[bytes, bytes], body: bytes
    ) -> tuple[bytes, int | None, int] | ServingError:
        """A large request: decode and encode in a worker thread (they hold the GIL only in slices).

        A refusal comes back as a value without its traceback: an exception carried through
        the thread's future forms a reference cycle that would keep the body (megabytes)
        alive until the cyclic GC runs.
        """
        decoded = await asyncio.to_thread(_catching, self._decode, model, headers, body)
        del body  # the decoded inputs are views on it where possible; drop our own reference
        if isinstance(decoded, ServingError):
            return decoded
        outputs = await self.manager.submit(model, decoded.feeds, decoded.batch, decoded.outputs)
        encoded = await asyncio.to_thread(
            _catching, encode_response, model.name, model.version, decoded, model.session, outputs
        )
        if isinstance(encoded, ServingError):
            return encoded
        return encoded[0], encoded[1], decoded.batch

    def _finish_offloaded(
        self, model: LoadedModel, t0: int, fut: asyncio.Future[tuple[bytes, int | None, int] | ServingError]
    ) -> Reply:
        error = _failure(fut)
        if error is not None:
            return self._failed(model, error, t0)
        result = fut.result()
        if isinstance(result, ServingError):
            return self._failed(model, result, t0)
        payload, header_length, batch = result
        model.stats.observe_success(time.perf_counter_ns() - t0, batch)
        if header_length is None:
            return Reply(200, payload)
        return Reply(200, payload, OCTETS, header_length)

    def _finish(self, model: LoadedModel, req: RestRequest, t0: int, fut: asyncio.Future[Outputs]) -> Reply:
        error = _failure(fut)
        if error is not None:
            return self._failed(model, error, t0)
        try:
            payload, header_length = encode_response(model.name, model.version, req, model.session, fut.result())
        except Exception as exc:
            return self._failed(model, exc, t0)
        model.stats.observe_success(time.perf_counter_ns() - t0, req.batch)
        if header_length is None:
            return Reply(200, payload)
        return Reply(200, payload, OCTETS, header_length)

    def _failed(self, model: LoadedModel, exc: BaseException, t0: int) -> Reply:
        if not isinstance(exc, ServingError):  # a bug or a cancellation: still answer, count and log it
            log.error("infer crashed", exc_info=exc, extra={"model": model.name})
            exc = BackendError(f"internal error: {type(exc).__name__}")
        elif exc.http_status >= 500:
            log.warning("infer failed", extra={"model": model.name, "error": exc.message})
        model.stats.observe_failure(exc.reason, time.perf_counter_ns() - t0)
        return _error(exc)

    def _decompress(self, encoding: bytes, body: bytes) -> bytes:
        """gzip/deflate request bodies (tritonclient's request_compression_algorithm), size-capped."""
        enc = encoding.strip().lower()
        if enc == b"identity":
            return body
        if enc not in (b"gzip", b"deflate"):
            raise InvalidInput(f"unsupported Content-Encoding {enc.decode('latin-1')!r}")
        d = zlib.decompressobj(31 if enc == b"gzip" else 15)
        try:
            out = d.decompress(body, self.max_request_bytes + 1)
        except zlib.error as exc:
            raise InvalidInput(f"request body is not valid {enc.decode()}: {exc}") from None
        if len(out) > self.max_request_bytes or d.unconsumed_tail:
            raise RequestTooLarge(f"decompressed request body exceeds {self.max_request_bytes} bytes")
        return out
