"""A lean HTTP/1.1 server for the inference API: asyncio protocol + httptools' C parser.

Why not aiohttp: its request/response objects, router and middleware machinery cost more
than everything else per small inference request; this keeps the per-request Python work
to a parse callback, one task and one ``transport.write``. It supports what inference
clients use: keep-alive, pipelining (answered in order), Content-Length or chunked bodies,
``Expect: 100-continue`` and gzip/deflate request bodies. Bodies above the limit are
discarded as they arrive and answered 413.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any, cast

import httptools

from modelserver import jsonio
from modelserver.admin_rest import ADMIN_KINDS, admin_route
from modelserver.rest import NO_ROUTE, NOT_FOUND, Pending, Reply, RestApi, Route, route

if TYPE_CHECKING:
    from modelserver.access import RestGuard
    from modelserver.admin_rest import AdminApi
    from modelserver.batching import Scheduler
    from modelserver.models import LoadedModel

log = logging.getLogger("modelserver.http")

_REASONS = {
    100: b"Continue", 200: b"OK", 302: b"Found", 400: b"Bad Request", 401: b"Unauthorized", 403: b"Forbidden",
    404: b"Not Found", 405: b"Method Not Allowed",
    413: b"Payload Too Large", 500: b"Internal Server Error", 503: b"Service Unavailable",
}  # fmt: skip
_USED_HEADERS = frozenset({b"content-length", b"content-encoding", b"expect", b"inference-header-content-length",
                           b"authorization"})
_MAX_HEAD = 64 * 1024  # request line + headers; the body has its own limit
_MAX_PIPELINED = 16  # stop reading from a client that queues more requests than this
_ROUTE_CACHE_SIZE = 256  # distinct request URLs whose parsed Route is kept (cleared when full)


@dataclass(slots=True)
class _Request:
    method: bytes
    route: Route
    headers: dict[bytes, bytes]
    body: bytes
    too_large: bool
    keep_alive: bool
    t0: int
    model: LoadedModel | None


class HttpProtocol(asyncio.Protocol):
    def __init__(self, server: HttpServer) -> None:
        self.server = server
        self.api = server.api
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.queue: collections.deque[_Request] = collections.deque()
        self.busy = False  # a request of this connection is waiting for its result
        self.paused = False
        self._reset()

    def _reset(self) -> None:
        self.url = b""
        self.route = NO_ROUTE
        self.model: LoadedModel | None = None  # resolved at headers time for infer requests
        self.headers: dict[bytes, bytes] = {}
        self.chunks: list[bytes] = []
        self.size = 0
        self.head_size = 0
        self.too_large = False
        self.rejected = False  # answered early (413); ignore the rest of this message
        self.t0 = 0
        self.announced: Scheduler | None = None  # told that this infer request is arriving

    # -- asyncio.Protocol ----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self.server.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.connections.discard(self)
        if not self.server.connections:
            self.server.all_closed.set()
        self._unannounce()
        self.transport = None

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(400, b"protocol upgrades are not supported")
        except httptools.HttpParserError as exc:
            self._fail(400, f"malformed HTTP request: {exc}".encode())

    def _fail(self, status: int, message: bytes) -> None:
        """A request we cannot even parse: answer once and close (the stream is unusable)."""
        self._unannounce()
        if self.transport is not None and not self.queue and not self.busy:
            self._write(Reply(status, jsonio.dumps({"error": message.decode("latin-1")})), keep_alive=False)
        if self.transport is not None:
            self.transport.close()

    # -- httptools callbacks -------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._reset()
        self.t0 = time.perf_counter_ns()

    def on_url(self, url: bytes) -> None:
        self.url += url
        self.head_size += len(url)
        if self.head_size > _MAX_HEAD:
            raise ValueError("request line too long")  # httptools turns it into a parser error

    def on_header(self, name: bytes, value: bytes) -> None:
        self.head_size += len(name) + len(value)
        key = name.lower()
        if key in _USED_HEADERS:  # the parser itself handles framing and keep-alive
            self.headers[key] = value
        if self.head_size > _MAX_HEAD:
            raise ValueError("request headers too large")

    def on_headers_complete(self) -> None:
        length = self.headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.api.max_request_bytes:
            self.too_large = True
        elif self.headers.get(b"expect", b"").lower() == b"100-continue" and self.transport is not None:
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        # Parsing the path costs a few microseconds per request; clients repeat the same URLs.
        cache = self.server.routes
        r = cache.get(self.url)
        if r is None:
            if len(cache) >= _ROUTE_CACHE_SIZE:
                cache.clear()
            path = self._path()
            r = cache[self.url] = admin_route(path) or route(path)
        self.route = r
        is_infer = self.route.kind == "infer" and self.parser.get_method() == b"POST"
        if is_infer:
            self.model = self.api.lookup(self.route)
        # With a guard the 413 waits for the body: an unauthenticated caller must not count as a model failure.
        if self.too_large and not self.busy and not self.queue and self.transport is not None and not self.server.guard:
            # Declared too large and nothing pending on this connection: answer 413 now rather
            # than after the whole body. The body is still drained (and dropped) before closing,
            # so clients that send it anyway read the 413 instead of a connection reset.
            reply = self.api.handle(self.parser.get_method(), self.route, self.headers, b"", True, self.t0, self.model)
            if isinstance(reply, Reply):
                self.rejected = True
                self._write(reply, keep_alive=False)
                return
        if is_infer and self.model is not None:
            # Let the batcher know a request is on its way while its body is still arriving.
            self.announced = self.model.scheduler
            self.model.scheduler.arriving += 1

    def on_body(self, body: bytes) -> None:
        if self.too_large:
            return
        self.size += len(body)
        if self.size > self.api.max_request_bytes:
            self.too_large = True
            self.chunks = []
        else:
            self.chunks.append(body)

    def on_message_complete(self) -> None:
        self._unannounce()
        if self.rejected:
            if self.transport is not None:
                self.transport.close()
            return
        body = self.chunks[0] if len(self.chunks) == 1 else b"".join(self.chunks)
        req = _Request(
            self.parser.get_method(),
            self.route,
            self.headers,
            body,
            self.too_large,
            self.parser.should_keep_alive() and not self.too_large,
            self.t0,
            self.model,
        )
        self.chunks = []
        self.queue.append(req)
        if not self.busy:
            self._advance()
        elif len(self.queue) >= _MAX_PIPELINED and self.transport is not None and not self.paused:
            self.transport.pause_reading()
            self.paused = True

    # -- request processing --------------------------------------------------------------

    def _path(self) -> str:
        return self.url.split(b"?", 1)[0].decode("latin-1")

    def _unannounce(self) -> None:
        if self.announced is not None:
            self.announced.arriving -= 1
            self.announced = None

    def _advance(self) -> None:
        """Answer queued requests in order (HTTP/1.1 pipelining), one at a time."""
        while self.queue and not self.busy:
            req = self.queue.popleft()
            try:
                guard = self.server.guard
                if guard is None:
                    result = self._dispatch(req)
                else:  # access control (modelserver.access): refuse, or dispatch once the caller is allowed
                    auth = req.headers.get(b"authorization")
                    result = guard.screen(req.route.kind, auth, partial(self._dispatch, req))
            except Exception:  # handlers answer errors themselves; this is a last resort
                log.exception("request handler crashed")
                result = Reply(500, b'{"error":"internal error"}')
            if isinstance(result, Reply):
                self._respond(req, result)
                continue
            fut, finish = result
            self.busy = True
            self.server.active += 1
            fut.add_done_callback(partial(self._finished, req, finish))

    def _dispatch(self, req: _Request) -> Reply | Pending:
        admin = self.server.admin
        if req.route.kind in ADMIN_KINDS:
            return admin.handle(req.method, req.route, req.body) if admin is not None else NOT_FOUND
        return self.api.handle(req.method, req.route, req.headers, req.body, req.too_large, req.t0, req.model)

    def _finished(
        self, req: _Request, finish: Callable[[asyncio.Future[Any]], Reply], fut: asyncio.Future[Any]
    ) -> None:
        self.busy = False
        self.server.active -= 1
        try:
            reply = finish(fut)
        except Exception:
            log.exception("request handler crashed")
            reply = Reply(500, b'{"error":"internal error"}')
        self._respond(req, reply)
        self.server.idle.set()
        self._advance()

    def _respond(self, req: _Request, reply: Reply) -> None:
        if self.transport is None or self.transport.is_closing():
            self.queue.clear()
            return
        keep_alive = req.keep_alive and not self.server.closing
        self._write(reply, keep_alive, head=req.method == b"HEAD")
        if not keep_alive:
            self.queue.clear()
            self.transport.close()
        elif self.paused and len(self.queue) < _MAX_PIPELINED // 2:
            self.transport.resume_reading()
            self.paused = False

    def _write(self, reply: Reply, keep_alive: bool, head: bool = False) -> None:
        assert self.transport is not None
        if keep_alive and not head and reply.header_length is None and not reply.location:
            # The common case (keep-alive, no binary outputs) as one bytes format: a few list
            # operations less per response.
            self.transport.write(
                b"HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n%s"
                % (
                    reply.status,
                    _REASONS.get(reply.status, b"Unknown"),
                    reply.content_type,
                    len(reply.body),
                    reply.body,
                )
            )
            return
        head_lines = [
            b"HTTP/1.1 %d %s\r\n" % (reply.status, _REASONS.get(reply.status, b"Unknown")),
            b"Content-Type: %s\r\nContent-Length: %d\r\n" % (reply.content_type, len(reply.body)),
        ]
        if reply.header_length is not None:
            head_lines.append(b"Inference-Header-Content-Length: %d\r\n" % reply.header_length)
        if reply.location:
            head_lines.append(b"Location: %s\r\n" % reply.location)
        if not keep_alive:
            head_lines.append(b"Connection: close\r\n")
        head_lines.append(b"\r\n")
        if not head:
            head_lines.append(reply.body)
        self.transport.write(b"".join(head_lines))

    @property
    def idle(self) -> bool:
        return not self.busy and not self.queue


class HttpServer:
    def __init__(self, api: RestApi, admin: AdminApi | None = None, guard: RestGuard | None = None) -> None:
        self.api = api
        self.admin = admin  # statistics, repository, logging, shared-memory routes
        self.guard = guard  # bearer-token access control (--auth-token-review), None: open
        self.connections: set[HttpProtocol] = set()
        self.routes: dict[bytes, Route] = {}  # URL -> parsed route (Routes are never mutated)
        self.active = 0
        self.closing = False
        self.idle = asyncio.Event()
        self.all_closed = asyncio.Event()  # set when the last connection is gone
        self._server: asyncio.AbstractServer | None = None

    async def start(self, host: str, port: int) -> int:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: HttpProtocol(self), host, port, backlog=1024)
        return int(self._server.sockets[0].getsockname()[1])

    async def shutdown(self, timeout: float) -> None:
        """Stop accepting, let in-flight requests finish (up to ``timeout``), close the rest."""
        self.closing = True
        if self._server is not None:
            self._server.close()
        deadline = time.monotonic() + timeout
        while True:
            for conn in list(self.connections):
                if conn.idle and conn.transport is not None:
                    conn.transport.close()  # idle keep-alive connection: nothing to drain
            if not any(not c.idle for c in self.connections) or time.monotonic() >= deadline:
                break
            self.idle.clear()
            try:
                await asyncio.wait_for(self.idle.wait(), max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                break
        for conn in list(self.connections):
            if conn.transport is not None:
                conn.transport.close()
        # close() only starts flushing what is still buffered (a large response to a slow
        # reader); returning now would let the process exit and cut it. Wait until every
        # connection is really gone, up to the drain deadline (at least a second).
        if self.connections:
            self.all_closed.clear()
            if self.connections:
                try:
                    await asyncio.wait_for(self.all_closed.wait(), max(1.0, deadline - time.monotonic()))
                except TimeoutError:
                    log.warning(
                        "drain: responses not fully sent at the deadline", extra={"connections": len(self.connections)}
                    )
                    for conn in list(self.connections):
                        if conn.transport is not None:
                            conn.transport.abort()
        if self._server is not None:
            await self._server.wait_closed()
