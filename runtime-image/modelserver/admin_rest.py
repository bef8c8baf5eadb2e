"""REST routes of Triton's extensions besides inference: statistics, model repository,
logging, shared-memory status, trace settings (always off), and a clean refusal for
shared-memory registration.

``http_server`` asks ``admin_route`` first; the inference routes stay in ``rest.py``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any
from urllib.parse import unquote

import grpc

from modelserver import jsonio
from modelserver.errors import InvalidInput, ServingError
from modelserver.log_settings import LogSettings
from modelserver.repository_control import RepositoryControl
from modelserver.rest import METHOD_NOT_ALLOWED, Reply, Route
from modelserver.statistics import server_statistics, statistics

log = logging.getLogger("modelserver.admin")

AdminPending = tuple["asyncio.Future[Any]", Callable[["asyncio.Future[Any]"], Reply]]
ADMIN_KINDS = frozenset(
    {"stats", "repo_index", "repo_load", "repo_unload", "logging", "shm_status", "shm_register",
     "shm_unregister", "trace"}
)  # fmt: skip
_SHM = {"systemsharedmemory": "system", "cudasharedmemory": "cuda"}
# modelserver has no tracing: Triton's trace settings with tracing off, the only value accepted.
TRACE_OFF: dict[str, Any] = {
    "trace_level": ["OFF"], "trace_rate": "1000", "trace_count": "-1", "log_frequency": "0",
    "trace_file": "", "trace_mode": "triton",
}  # fmt: skip


class RegionNotFound(ServingError):
    http_status = 404
    grpc_code = grpc.StatusCode.NOT_FOUND


def region_not_found(kind: str, region: str) -> RegionNotFound:
    return RegionNotFound(f"Unable to find {kind} shared memory region: '{region}'")


def trace_update(changes: dict[str, Any]) -> dict[str, Any]:
    """Accept a request that leaves tracing off (e.g. ``trace_level: ["OFF"]``); refuse the rest."""
    for key, value in changes.items():
        if key not in TRACE_OFF:
            raise InvalidInput(f"trace settings: unknown setting '{key}'")
        off = TRACE_OFF[key]
        if value not in (off, [off], [], None):  # [] / null: back to the default, i.e. off
            raise InvalidInput(f"trace settings: '{key}' cannot change: modelserver has no tracing (it stays off)")
    return TRACE_OFF


def admin_route(path: str) -> Route | None:
    """The admin Route for ``path``, or None (then it is an inference/health route or unknown).

    For shared memory, ``model`` carries the region name and ``version`` the kind (system/cuda).
    """
    parts = [unquote(p) for p in path.strip("/").split("/")]
    if len(parts) < 2 or parts[0] != "v2":
        return None
    rest = parts[1:]
    if rest[0] == "models" and rest[-1] == "stats":
        if len(rest) == 2:
            return Route("stats")
        if len(rest) == 3:
            return Route("stats", rest[1])
        if len(rest) == 5 and rest[2] == "versions":
            return Route("stats", rest[1], rest[3])
        return None
    if rest[-2:] == ["trace", "setting"]:
        return Route("trace")
    if rest == ["repository", "index"]:
        return Route("repo_index")
    if len(rest) == 4 and rest[:2] == ["repository", "models"] and rest[3] in ("load", "unload"):
        return Route(f"repo_{rest[3]}", rest[2])
    if rest == ["logging"]:
        return Route("logging")
    kind = _SHM.get(rest[0])
    if kind is not None:
        region = ""
        tail = rest[1:]
        if len(tail) >= 2 and tail[0] == "region":
            region, tail = tail[1], tail[2:]
        if tail in (["status"], ["register"], ["unregister"]) and not (tail == ["register"] and not region):
            return Route(f"shm_{tail[0]}", region, kind)
    return None


def _json(obj: Any) -> Reply:
    return Reply(200, jsonio.dumps(obj))


def _error(exc: ServingError) -> Reply:
    return Reply(exc.http_status, jsonio.dumps({"error": exc.message}))


def _body(body: bytes) -> dict[str, Any]:
    if not body.strip():
        return {}
    try:
        obj = jsonio.loads(body)
    except ValueError as exc:
        raise InvalidInput(f"request body is not valid JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise InvalidInput("request body must be a JSON object")
    return obj


def _parameters(obj: dict[str, Any]) -> dict[str, Any]:
    params = obj.get("parameters", {})
    if not isinstance(params, dict):
        raise InvalidInput("'parameters' must be a JSON object")
    return params


class AdminApi:
    def __init__(self, control: RepositoryControl, log_settings: LogSettings) -> None:
        self.control = control
        self.manager = control.manager
        self.log_settings = log_settings

    def handle(self, method: bytes, r: Route, body: bytes) -> Reply | AdminPending:
        try:
            return self._handle(method, r, body)
        except ServingError as exc:
            return _error(exc)

    def _handle(self, method: bytes, r: Route, body: bytes) -> Reply | AdminPending:
        kind = r.kind
        if kind == "stats":
            if method not in (b"GET", b"HEAD"):
                return METHOD_NOT_ALLOWED
            if self.manager.peer_stats is None:
                return _json(statistics(self.manager, r.model, r.version))
            return self._json_later(server_statistics(self.manager, r.model, r.version))
        if kind == "logging":
            if method in (b"GET", b"HEAD"):
                return _json(self.log_settings.get())
            if method == b"POST":
                return _json(self.log_settings.update(_body(body)))
            return METHOD_NOT_ALLOWED
        if kind == "shm_status":
            if method not in (b"GET", b"HEAD"):
                return METHOD_NOT_ALLOWED
            if r.model:  # nothing is ever registered, so a named region is unknown
                raise region_not_found(r.version, r.model)
            return _json([])
        if kind == "trace":
            if method in (b"GET", b"HEAD"):
                return _json(TRACE_OFF)
            if method == b"POST":
                return _json(trace_update(_body(body)))
            return METHOD_NOT_ALLOWED
        if method != b"POST":
            return METHOD_NOT_ALLOWED
        if kind == "shm_unregister":
            return Reply(200, b"")  # nothing registered: unregistering is a no-op, as in Triton
        if kind == "shm_register":
            log.info("unsupported request", extra={"request": f"{r.version} shared memory register"})
            raise InvalidInput(
                f"{r.version} shared memory is not supported by modelserver: send tensors in the request"
            )
        if kind == "repo_index":
            ready = _body(body).get("ready", False)
            if not isinstance(ready, bool):
                raise InvalidInput("'ready' must be a boolean")
            return _json(self.control.index(ready))
        obj = _body(body)
        params = _parameters(obj)
        action = self.control.load if kind == "repo_load" else self.control.unload
        return self._later(action(r.model, params))

    def _json_later(self, work: Coroutine[Any, Any, Any]) -> AdminPending:
        """A JSON answer computed by a coroutine (statistics summed over worker processes)."""

        def finish(fut: asyncio.Future[Any]) -> Reply:
            exc = fut.exception()
            if exc is None:
                return _json(fut.result())
            if isinstance(exc, ServingError):
                return _error(exc)
            log.error("statistics request failed", exc_info=exc)
            return Reply(500, jsonio.dumps({"error": f"internal error: {type(exc).__name__}"}))

        return asyncio.ensure_future(work), finish

    def _later(self, work: Coroutine[Any, Any, None]) -> AdminPending:
        def finish(fut: asyncio.Future[Any]) -> Reply:
            exc = fut.exception()
            if exc is None:
                return Reply(200, b"")
            if isinstance(exc, ServingError):
                return _error(exc)
            log.error("repository request failed", exc_info=exc)
            return Reply(500, jsonio.dumps({"error": f"internal error: {type(exc).__name__}"}))

        return asyncio.ensure_future(work), finish
