"""API faults by rule: a plain-HTTP proxy on loopback in front of the real kube-apiserver.

    with FaultProxy(control_plane.server, control_plane.ca_path) as proxy:
        rule = proxy.add(server_error(), method="POST", path=r"/deployments$", times=2)
        with sandbox.run_operator(server=proxy.url): ...
        assert rule.hits == 2                      # the fault was really met

Requests are forwarded over TLS (the apiserver's CA verified) with the client's own headers,
``Authorization`` included, so the apiserver authenticates and authorizes the client itself.
Responses, watch streams above all, are relayed as they arrive. The first rule that matches a
request (method, a regex searched in the path, watch or not, a regex on the User-Agent) and fires
(``times`` left, ``probability``) answers it with its fault instead:

- :func:`server_error`, :func:`conflict`, :func:`too_many_requests`: a Status error; nothing is forwarded.
- :class:`Delay`: a slow apiserver: hold the request ``seconds``, then forward it and relay the answer.
- :class:`Timeout`: hold the request past the client's timeout (``forward=True``: it still reaches the
  apiserver and takes effect, only the answer is lost); :attr:`Rule.abandoned` counts clients that gave up.
- :class:`DropWatch`: relay ``after_events`` events of a watch, then cut the connection mid-stream.
- :class:`Gone`: answer a watch as the apiserver does when its resourceVersion is compacted: an
  ``ERROR`` event whose object is a Status 410 "too old resource version".
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import random
import re
import ssl
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import aiohttp
from aiohttp import web
from yarl import URL

from modeldeploy_sandbox.controlplane import free_port

# Not forwarded either way: per-connection headers, and what aiohttp sets itself.
_HOP_BY_HOP = frozenset(h.lower() for h in (
    "Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization", "TE", "Trailer",
    "Transfer-Encoding", "Upgrade", "Host", "Content-Length"))
_POLL_S = 0.05


@dataclasses.dataclass(frozen=True)
class Refuse:
    """Answer with a Kubernetes Status error; the request never reaches the apiserver."""

    code: int
    reason: str
    message: str
    retry_after: int | None = None


def server_error(message: str = "injected: etcdserver: leader changed") -> Refuse:
    return Refuse(500, "InternalError", message)


def conflict(message: str = "injected: the object has been modified; please apply your changes to the latest "
                             "version and try again") -> Refuse:
    return Refuse(409, "Conflict", f"Operation cannot be fulfilled: {message}")


def too_many_requests(retry_after: int = 1) -> Refuse:
    return Refuse(429, "TooManyRequests", "injected: too many requests, please try again later", retry_after)


@dataclasses.dataclass(frozen=True)
class Timeout:
    """Hold the request ``hold`` seconds (then 504, if the client still waits)."""

    hold: float
    forward: bool = False


@dataclasses.dataclass(frozen=True)
class Delay:
    """Forward the request after ``seconds``: a slow but working apiserver."""

    seconds: float


@dataclasses.dataclass(frozen=True)
class DropWatch:
    after_events: int = 1


@dataclasses.dataclass(frozen=True)
class Gone:
    pass


Fault = Refuse | Delay | Timeout | DropWatch | Gone


@dataclasses.dataclass
class Rule:
    """When a request meets ``fault``; ``hits`` counts the requests it answered."""

    fault: Fault
    method: str | None = None
    path: str | None = None
    watch: bool | None = None
    user_agent: str | None = None
    times: int | None = 1  # None: every matching request
    probability: float = 1.0
    hits: int = 0
    abandoned: int = 0  # Timeout: clients that hung up while held

    def matches(self, method: str, path: str, watch: bool, user_agent: str) -> bool:
        return ((self.method is None or self.method.upper() == method)
                and (self.path is None or re.search(self.path, path) is not None)
                and (self.watch is None or self.watch == watch)
                and (self.user_agent is None or re.search(self.user_agent, user_agent) is not None))


@dataclasses.dataclass(frozen=True)
class Seen:
    """One request through the proxy and how it was answered."""

    method: str
    path: str
    query: str
    watch: bool
    user_agent: str
    status: int
    fault: str | None
    at: float = 0.0  # time.monotonic() when the request arrived


def status_body(code: int, reason: str, message: str, retry_after: int | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                            "message": message, "reason": reason, "code": code}
    if retry_after is not None:
        body["details"] = {"retryAfterSeconds": retry_after}
    return body


def is_watch(path: str, query: Mapping[str, str]) -> bool:
    return query.get("watch") in ("true", "1") or "/watch/" in path


class FaultProxy:
    """See the module docstring. ``seed`` makes probabilistic rules repeatable."""

    def __init__(self, upstream: str, ca_path: Path | str, *, seed: int = 0) -> None:
        self.upstream = upstream.rstrip("/")
        self.ca_path = Path(ca_path)
        self.port = free_port()
        self.rules: list[Rule] = []
        self.seen: list[Seen] = []
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stopping: asyncio.Event | None = None
        self._failed: BaseException | None = None
        self._watches: set[asyncio.Transport] = set()  # the client side of each relayed watch

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # ----- rules -----

    def add(self, fault: Fault, *, method: str | None = None, path: str | None = None, watch: bool | None = None,
            user_agent: str | None = None, times: int | None = 1, probability: float = 1.0) -> Rule:
        rule = Rule(fault, method, path, watch, user_agent, times, probability)
        with self._lock:
            self.rules.append(rule)
        return rule

    def clear(self) -> None:
        with self._lock:
            self.rules.clear()

    def drop_watches(self) -> int:
        """Cut every watch stream open now, mid-stream (the clients then watch again, and meet the rules
        added meanwhile); returns how many were cut."""
        loop = self._loop
        if loop is None:
            return 0
        with self._lock:
            open_watches = list(self._watches)
        for transport in open_watches:
            loop.call_soon_threadsafe(transport.abort)
        return len(open_watches)

    def _take(self, method: str, path: str, watch: bool, user_agent: str) -> Rule | None:
        with self._lock:
            for rule in self.rules:
                if rule.times is not None and rule.hits >= rule.times:
                    continue
                if not rule.matches(method, path, watch, user_agent):
                    continue
                if rule.probability < 1.0 and self._random.random() >= rule.probability:
                    continue
                rule.hits += 1
                return rule
        return None

    def requests(self, method: str | None = None, path: str | None = None) -> list[Seen]:
        """What went through so far (``path``: a regex searched in the path)."""
        with self._lock:
            seen = list(self.seen)
        return [s for s in seen if (method is None or s.method == method)
                and (path is None or re.search(path, s.path) is not None)]

    def _record(self, request: web.Request, watch: bool, status: int, rule: Rule | None, arrived: float) -> None:
        entry = Seen(request.method, request.path, request.query_string, watch,
                     request.headers.get("User-Agent", ""), status,
                     type(rule.fault).__name__ if rule is not None else None, arrived)
        with self._lock:
            self.seen.append(entry)

    # ----- lifecycle -----

    def start(self) -> FaultProxy:
        ready = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(ready,), name="fault-proxy", daemon=True)
        self._thread.start()
        ready.wait(30)
        if self._failed is not None or not ready.is_set():
            raise RuntimeError(f"the fault proxy did not start: {self._failed!r}")
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stopping is not None:
            with contextlib.suppress(RuntimeError):  # the loop already ended
                self._loop.call_soon_threadsafe(self._stopping.set)
        if self._thread is not None:
            self._thread.join(10)

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def _run(self, ready: threading.Event) -> None:
        try:
            asyncio.run(self._serve(ready))
        except BaseException as error:  # reported by start()
            self._failed = error
            ready.set()

    async def _serve(self, ready: threading.Event) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        context = ssl.create_default_context(cafile=str(self.ca_path))
        connector = aiohttp.TCPConnector(ssl=context, limit=0)
        # No total timeout: watches last minutes; no decompression: bytes are relayed as they are.
        async with aiohttp.ClientSession(connector=connector, auto_decompress=False, read_bufsize=1 << 22,
                                         timeout=aiohttp.ClientTimeout(total=None, sock_connect=10)) as session:
            self._session = session
            app = web.Application(client_max_size=1 << 26)
            app.router.add_route("*", "/{tail:.*}", self._handle)
            runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", self.port).start()
            ready.set()
            try:
                await self._stopping.wait()
            finally:
                await runner.cleanup()

    # ----- requests -----

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        arrived = time.monotonic()
        watch = is_watch(request.path, request.query)
        rule = self._take(request.method, request.path, watch, request.headers.get("User-Agent", ""))
        fault = rule.fault if rule is not None else None
        if isinstance(fault, Refuse):
            self._record(request, watch, fault.code, rule, arrived)
            headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else None
            return web.json_response(status_body(fault.code, fault.reason, fault.message, fault.retry_after),
                                     status=fault.code, headers=headers)
        if isinstance(fault, Gone):
            self._record(request, watch, 200, rule, arrived)
            since = request.query.get("resourceVersion", "0")
            event = {"type": "ERROR", "object": status_body(410, "Expired", f"too old resource version: {since}")}
            return web.Response(body=json.dumps(event).encode() + b"\n", content_type="application/json")
        if isinstance(fault, Timeout):
            assert rule is not None
            return await self._hold(request, rule, fault, watch, arrived)
        if isinstance(fault, Delay):
            await asyncio.sleep(fault.seconds)
        try:
            return await self._forward(request, rule, watch, arrived)
        except aiohttp.ClientConnectionError as error:  # the apiserver is unreachable: as a load balancer says it
            self._record(request, watch, 502, rule, arrived)
            return web.json_response(status_body(502, "ServiceUnavailable", f"fault proxy: {error}"), status=502)

    async def _forward(self, request: web.Request, rule: Rule | None, watch: bool,
                       arrived: float) -> web.StreamResponse:
        body = await request.read()
        async with self._session.request(request.method, self._target(request), headers=self._headers(request),
                                         data=body or None, allow_redirects=False) as upstream:
            self._record(request, watch, upstream.status, rule, arrived)
            answer = web.StreamResponse(status=upstream.status, reason=upstream.reason)
            for key, value in upstream.headers.items():
                if key.lower() not in _HOP_BY_HOP:
                    answer.headers.add(key, value)
            if not watch and upstream.content_length is not None:
                answer.content_length = upstream.content_length
            await answer.prepare(request)
            try:
                if watch:
                    await self._relay_watch(request, upstream, answer, rule.fault if rule is not None else None)
                else:
                    async for chunk in upstream.content.iter_any():
                        await answer.write(chunk)
                await answer.write_eof()
            except (ConnectionResetError, aiohttp.ClientError):  # either side went away mid-answer
                if request.transport is not None:
                    request.transport.abort()
            return answer

    async def _relay_watch(self, request: web.Request, upstream: aiohttp.ClientResponse,
                           answer: web.StreamResponse, fault: Fault | None) -> None:
        """One event per line, each written as soon as the apiserver sent it."""
        transport = request.transport
        if transport is not None:
            with self._lock:
                self._watches.add(transport)
        try:
            await self._relay_lines(request, upstream, answer, fault)
        finally:
            if transport is not None:
                with self._lock:
                    self._watches.discard(transport)

    async def _relay_lines(self, request: web.Request, upstream: aiohttp.ClientResponse,
                           answer: web.StreamResponse, fault: Fault | None) -> None:
        relayed = 0
        while True:
            if isinstance(fault, DropWatch) and relayed >= fault.after_events:
                if request.transport is not None:
                    request.transport.abort()  # mid-stream: no terminating chunk
                raise asyncio.CancelledError  # ends the handler without a response epilogue
            line = await upstream.content.readline()
            if not line:
                return
            await answer.write(line)
            relayed += 1

    async def _hold(self, request: web.Request, rule: Rule, fault: Timeout, watch: bool,
                    arrived: float) -> web.StreamResponse:
        if fault.forward:  # the write takes effect; only its answer is lost
            body = await request.read()
            async with self._session.request(request.method, self._target(request), headers=self._headers(request),
                                             data=body or None, allow_redirects=False) as upstream:
                await upstream.read()
        self._record(request, watch, 504, rule, arrived)
        deadline = time.monotonic() + fault.hold
        while time.monotonic() < deadline:
            if request.transport is None or request.transport.is_closing():
                with self._lock:
                    rule.abandoned += 1
                raise asyncio.CancelledError
            await asyncio.sleep(_POLL_S)
        message = "Timeout: request did not complete within the allowed duration"
        return web.json_response(status_body(504, "Timeout", message), status=504)

    def _target(self, request: web.Request) -> URL:
        return URL(self.upstream + request.raw_path, encoded=True)  # the path and query exactly as sent

    @staticmethod
    def _headers(request: web.Request) -> dict[str, str]:
        return {k: v for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP}
