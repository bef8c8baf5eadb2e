"""Programmatic entry point: ``ServerConfig`` + ``serve()``.

Start-up order: bind HTTP, gRPC and metrics (live at once), load every model and run the
warm-up its config asks for (then ready). Shutdown (SIGTERM/SIGINT or ``stop_event``): mark not
ready, stop accepting connections, let in-flight requests finish and their responses reach the
clients, then stop the model workers.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import grpc
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from modelserver.access import AuthConfig, GrpcGuard, RestGuard, build_guard
from modelserver.admin_rest import AdminApi
from modelserver.faults import Faults
from modelserver.grpc_service import InferenceService, add_to_server
from modelserver.handoff import ConnectionReceiver
from modelserver.http_server import HttpServer
from modelserver.limits import DEFAULT_MAX_REQUEST_MEMORY, return_large_blocks_to_the_os
from modelserver.log_settings import LogSettings
from modelserver.metrics import ServerMetrics
from modelserver.models import Defaults, ModelManager
from modelserver.repository import scan_repository
from modelserver.repository_control import RepositoryControl, check_mode
from modelserver.response_cache import DEFAULT_CACHE_BYTES
from modelserver.rest import RestApi
from modelserver.session import select_providers
from modelserver.worker_stats import gather, socket_path, worker_stats_app
from modelserver.workers import READY_MARKER

log = logging.getLogger("modelserver.server")


@dataclass
class ServerConfig:
    model_repository: Path
    host: str = "0.0.0.0"
    http_port: int = 8000
    grpc_port: int = 8001
    metrics_port: int = 8002
    # Defaults for models without a config.pbtxt (a config.pbtxt is authoritative).
    max_batch_size: int = 0
    max_queue_delay_us: int = 0
    instances: int = 1
    intra_op_threads: int = 0  # 0: ONNX Runtime's default (one per core)
    max_request_bytes: int = 64 * 1024 * 1024
    # What decoding one request's inputs may allocate (estimated before it does); 413 beyond.
    max_request_memory: int = DEFAULT_MAX_REQUEST_MEMORY
    device: str = "auto"  # cpu | cuda | auto
    drain_timeout_s: float = 30.0
    faults: Faults = field(default_factory=Faults.from_env)
    model_control_mode: str = "none"  # none | explicit (repository_control.py)
    response_cache_bytes: int = DEFAULT_CACHE_BYTES  # for models with response_cache { enable: true }
    auth: AuthConfig | None = None  # bearer tokens checked by TokenReview (modelserver.access); None: open
    # Set for a worker of ``--workers N`` (modelserver.workers): HTTP connections handed over by the
    # supervisor, the gRPC port shared with SO_REUSEPORT, counters served on a Unix socket in this
    # directory instead of the metrics port.
    worker_dir: Path | None = None
    worker_index: int = 0
    http_channel_fd: int | None = None  # a worker's end of the supervisor's connection hand-off (handoff.py)


class StartupError(Exception):
    """The server could not start (bad repository, model failed to load, port in use)."""


@dataclass
class ServerHandle:
    """Set once the sockets are bound; handy for tests and the sandbox (ports may be 0)."""

    http_port: int = 0
    grpc_port: int = 0
    metrics_port: int = 0
    manager: ModelManager | None = None
    metrics: ServerMetrics | None = None


def _bound_port(site: web.TCPSite) -> int:
    server = site._server  # aiohttp keeps the listening server here; needed to report port 0
    sockets = getattr(server, "sockets", None) or ()  # asyncio.Server or uvloop's Server
    if not sockets:
        raise OSError("listening socket is missing")
    return int(sockets[0].getsockname()[1])


async def serve(
    config: ServerConfig,
    *,
    stop_event: asyncio.Event | None = None,
    handle: ServerHandle | None = None,
    install_signal_handlers: bool = False,
    on_ready: Callable[[ServerHandle], None] | None = None,
) -> None:
    """Run until ``stop_event`` is set (or SIGTERM/SIGINT when ``install_signal_handlers``).

    Raises ``StartupError`` when the repository or a model cannot be loaded.
    """
    stop = stop_event or asyncio.Event()
    handle = handle or ServerHandle()
    return_large_blocks_to_the_os()
    loop = asyncio.get_running_loop()
    if install_signal_handlers:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)

    try:
        entries = scan_repository(Path(config.model_repository))
        providers = select_providers(config.device)
        check_mode(config.model_control_mode)
        guard = build_guard(config.auth) if config.auth is not None else None
    except Exception as exc:
        raise StartupError(str(exc)) from None
    if not entries:
        raise StartupError(f"no models found in {config.model_repository}")

    metrics = ServerMetrics()
    defaults = Defaults(
        max_batch_size=config.max_batch_size,
        max_queue_delay_us=config.max_queue_delay_us,
        instances=config.instances,
        intra_op_threads=config.intra_op_threads,
        providers=tuple(providers),
        response_cache_bytes=config.response_cache_bytes,
    )
    manager = ModelManager(entries, metrics, defaults, config.faults)
    handle.manager, handle.metrics = manager, metrics
    rest = RestApi(manager, config.max_request_bytes, config.max_request_memory)
    grpc_service = InferenceService(manager, config.max_request_memory)

    control = RepositoryControl(manager, Path(config.model_repository), config.model_control_mode)
    log_settings = LogSettings()
    grpc_service.attach(control, log_settings)
    http_server = HttpServer(rest, AdminApi(control, log_settings), RestGuard(guard) if guard else None)
    worker = config.worker_dir is not None
    receiver: ConnectionReceiver | None = None
    if worker:
        metrics_app = worker_stats_app(metrics)
        manager.ready_gate = partial(Path.exists, Path(config.worker_dir or ".") / READY_MARKER)
        manager.peer_stats = partial(gather, Path(config.worker_dir or "."))
    else:
        metrics_app = web.Application()
        metrics_app.router.add_get("/metrics", _metrics_handler(metrics, manager.faults.metrics_status))
    metrics_runner = web.AppRunner(metrics_app, access_log=None)
    grpc_server = grpc.aio.server(
        interceptors=[GrpcGuard(guard)] if guard else None,
        options=[
            ("grpc.max_receive_message_length", config.max_request_bytes),
            ("grpc.max_send_message_length", -1),
            ("grpc.so_reuseport", int(worker)),
        ]
    )
    add_to_server(grpc_server, grpc_service)
    try:
        await metrics_runner.setup()
        metrics_site: web.BaseSite = (
            web.UnixSite(metrics_runner, str(socket_path(config.worker_dir, config.worker_index)))
            if config.worker_dir is not None
            else web.TCPSite(metrics_runner, config.host, config.metrics_port)
        )
        if config.http_channel_fd is not None:  # a worker: the supervisor owns the port
            receiver = ConnectionReceiver(http_server, config.http_channel_fd)
            receiver.start()
            handle.http_port = config.http_port
            if config.worker_dir is not None:  # the supervisor listens once every worker is here
                (config.worker_dir / f"listening-{config.worker_index}").touch()
        else:
            handle.http_port = await http_server.start(config.host, config.http_port)
        await metrics_site.start()
        grpc_port = grpc_server.add_insecure_port(f"{_grpc_host(config.host)}:{config.grpc_port}")
        if grpc_port == 0:
            raise OSError(f"cannot bind gRPC port {config.grpc_port}")
        await grpc_server.start()
        handle.metrics_port = 0 if worker else _bound_port(metrics_site)  # type: ignore[arg-type]
    except (OSError, RuntimeError) as exc:  # grpcio reports a failed bind as RuntimeError
        await grpc_server.stop(None)
        await http_server.shutdown(0)
        await metrics_runner.cleanup()
        raise StartupError(f"cannot listen: {exc}") from None
    handle.grpc_port = grpc_port
    log.info(
        "listening",
        extra={"host": config.host, "http_port": handle.http_port, "grpc_port": grpc_port,
               "metrics_port": handle.metrics_port, "providers": providers},
    )  # fmt: skip

    try:
        load = asyncio.create_task(manager.load_all())
        stopped = asyncio.create_task(stop.wait())
        await asyncio.wait([load, stopped], return_when=asyncio.FIRST_COMPLETED)
        if load.done():
            load.result()  # re-raises a load failure
            log.info("ready", extra={"models": sorted(manager.entries)})
            if config.worker_dir is not None:  # tell the supervisor (modelserver.workers)
                (config.worker_dir / f"ready-{config.worker_index}").touch()
            if on_ready is not None:
                on_ready(handle)
            await stopped
        else:
            load.cancel()
    except Exception as exc:
        raise StartupError(str(exc)) from None
    finally:
        stopped.cancel()
        log.info("draining")
        rest.accepting = grpc_service.accepting = False
        if receiver is not None:
            receiver.stop()
        # gRPC: refuse new RPCs now, give in-flight ones the drain timeout.
        grpc_stop = asyncio.create_task(grpc_server.stop(config.drain_timeout_s))
        await http_server.shutdown(config.drain_timeout_s)  # close listener, finish in-flight requests
        await grpc_stop
        await metrics_runner.cleanup()
        await manager.close()
        if guard is not None:
            await guard.close()
        log.info("stopped")


def _grpc_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _metrics_handler(metrics: ServerMetrics,
                     refused_with: int = 0) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def handler(request: web.Request) -> web.Response:
        if refused_with:  # test-only fault (modelserver.faults): metrics the operator cannot read
            return web.Response(status=refused_with, text="metrics refused (MODELSERVER_FAULT_METRICS_STATUS)")
        return web.Response(body=metrics.exposition(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    return handler
