"""``modelserver serve --workers N``: N server processes sharing the HTTP and gRPC ports.

One Python process is bound by its event loop (HTTP parsing, JSON, dispatch) at about one core;
N processes share the load. The process started as ``modelserver serve`` becomes the supervisor:

- it starts the workers (``modelserver serve <same arguments> --workers 1 --worker-dir DIR
  --worker-index I ...``), each loading every model with its own ONNX Runtime sessions;
- it listens on the HTTP port and hands each accepted connection to the next worker in turn
  (``handoff``: even split of keep-alive connections); the workers bind the gRPC port together
  with ``SO_REUSEPORT`` (the kernel spreads those connections);
- it serves ``/metrics`` on the metrics port: every worker's counters summed at scrape time
  (``worker_stats``), with the names and series of a single process. The statistics extension
  (``/v2/models/{m}/stats``, gRPC ModelStatistics), answered by whichever worker got the request,
  sums them the same way;
- the server is ready only once every worker is: a worker answers ready only while the run
  directory holds the ``ready`` marker, which the supervisor writes when all of them loaded
  and warmed up (so a probe never lands on a worker that would refuse the traffic);
- SIGTERM/SIGINT: the marker goes, every worker gets SIGTERM and drains its in-flight requests;
  the supervisor exits 0 when all of them did;
- a worker that exits on its own (crash, OOM kill, failed start-up) stops the others (drained)
  and the supervisor exits non-zero (the worker's code, 1 for a signal), so the kubelet restarts
  the container and reports it: no half-capacity server that still looks healthy.

Per process, not shared: the response cache (each worker gets ``size / N`` of ``--cache-config``,
so the memory bound stays the configured one, and a request hits only if its own worker answered
it before), dynamic batches (each worker batches the requests of its own connections), log
settings (a ``/v2/logging`` update reaches one worker), and model load/unload
(``--model-control-mode explicit`` needs one worker).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import logging
import math
import os
import shutil
import signal
import socket
import sys
import tempfile
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any

from aiohttp import web

from modelserver.handoff import channel_pair, distribute
from modelserver.worker_stats import supervisor_metrics_handler

log = logging.getLogger("modelserver.workers")

READY_MARKER = "ready"
_PR_SET_PDEATHSIG = 1
# Workers are started and stopped by the supervisor; beyond the drain timeout they get this long.
_STOP_GRACE_S = 10.0
# Without a CPU quota the share of the node is unknown: one process, as before --workers.
_DEFAULT_WITHOUT_QUOTA = 1


def cgroup_cpu_limit() -> float | None:
    """The container's CPU limit in cores (cgroup v2 ``cpu.max`` or v1 CFS quota); None: unlimited."""
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        quota_us = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us").read_text())
        period_us = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return None if quota_us <= 0 else quota_us / period_us


def usable_cpus() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def default_workers(limit: float | None = None, cpus: int | None = None) -> int:
    """One worker per whole core of the CPU limit (at least 1, at most the usable cores); 1 without a limit."""
    limit = cgroup_cpu_limit() if limit is None else limit
    cpus = usable_cpus() if cpus is None else cpus
    if limit is None:
        return _DEFAULT_WITHOUT_QUOTA
    return max(1, min(cpus, math.floor(limit)))


def intra_op_threads_per_worker(workers: int, cpus: int | None = None) -> int:
    """ORT threads per session so that workers x threads fit the cores (ORT's default is one per core)."""
    cpus = usable_cpus() if cpus is None else cpus
    return max(1, cpus // workers)


def _die_with_parent() -> None:
    """In the worker before exec: SIGTERM (a drain) if the supervisor dies, e.g. SIGKILLed."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def _reserve(host: str, port: int) -> tuple[int, socket.socket | None]:
    """gRPC port 0 means "any": pick one for every worker to share, held (bound, not listening) meanwhile."""
    if port != 0:
        return port, None
    sock = socket.socket(_family(host), socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, 0))
    return int(sock.getsockname()[1]), sock


def _exit_code(returncode: int) -> int:
    return returncode if returncode > 0 else 1  # negative: killed by a signal


async def supervise(
    argv: Sequence[str],
    *,
    workers: int,
    host: str,
    http_port: int,
    grpc_port: int,
    metrics_port: int,
    drain_timeout_s: float,
    worker_overrides: Sequence[str] = (),
) -> int:
    """Run ``workers`` worker processes until SIGTERM/SIGINT or one of them exits; the exit code."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    run_dir = Path(tempfile.mkdtemp(prefix="modelserver-workers-"))
    listener = socket.socket(_family(host), socket.SOCK_STREAM)
    try:
        # Bound now (the port is ours), listening only once every worker can take connections:
        # until then clients are refused, as by a single process that has not bound yet.
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((host, http_port))
    except OSError as exc:
        listener.close()
        shutil.rmtree(run_dir, ignore_errors=True)
        print(f"modelserver: error: cannot listen on HTTP port {http_port}: {exc}", file=sys.stderr)
        return 1
    http_port = int(listener.getsockname()[1])
    grpc_port, grpc_hold = _reserve(host, grpc_port)
    channels = [channel_pair() for _ in range(workers)]
    handing_off: list[asyncio.Task[None]] = []  # the accept loop, once the workers are started
    metrics_app = web.Application()
    metrics_app.router.add_get("/metrics", supervisor_metrics_handler(run_dir))
    metrics_runner = web.AppRunner(metrics_app, access_log=None)
    await metrics_runner.setup()
    procs: list[asyncio.subprocess.Process] = []
    code = 0
    try:
        try:
            await web.TCPSite(metrics_runner, host, metrics_port).start()
        except OSError as exc:
            print(f"modelserver: error: cannot listen on metrics port {metrics_port}: {exc}", file=sys.stderr)
            return 1
        for index in range(workers):
            procs.append(
                await asyncio.create_subprocess_exec(
                    sys.executable,
                    "-m",
                    "modelserver",
                    *argv,
                    *worker_overrides,
                    "--workers",
                    "1",
                    "--worker-dir",
                    str(run_dir),
                    "--worker-index",
                    str(index),
                    "--http-port",
                    str(http_port),
                    "--grpc-port",
                    str(grpc_port),
                    "--worker-channel-fd",
                    str(channels[index][1].fileno()),
                    pass_fds=(channels[index][1].fileno(),),
                    preexec_fn=_die_with_parent,
                )
            )
            channels[index][1].close()  # the worker has its own copy
        handing_off.append(loop.create_task(_hand_off(run_dir, listener, [ours for ours, _ in channels])))
        log.info("workers started", extra={"workers": workers, "pids": [p.pid for p in procs], "run_dir": str(run_dir),
                                           "http_port": http_port, "grpc_port": grpc_port})  # fmt: skip
        code = await _watch(procs, run_dir, stop)
    finally:
        for task in handing_off:  # stop accepting before the workers drain
            task.cancel()
        await asyncio.gather(*handing_off, return_exceptions=True)
        listener.close()
        if grpc_hold is not None:
            grpc_hold.close()
        for ours, theirs in channels:
            ours.close()
            theirs.close()
        (run_dir / READY_MARKER).unlink(missing_ok=True)
        code = max(code, await _stop_all(procs, drain_timeout_s + _STOP_GRACE_S))
        await metrics_runner.cleanup()
        shutil.rmtree(run_dir, ignore_errors=True)
    log.info("stopped", extra={"exit_code": code})
    return code


async def _watch(procs: list[asyncio.subprocess.Process], run_dir: Path, stop: asyncio.Event) -> int:
    """Until stop (0) or a worker's own exit (its code); writes the ready marker once all are ready."""
    exits: dict[asyncio.Future[Any], asyncio.subprocess.Process] = {asyncio.ensure_future(p.wait()): p for p in procs}
    stopped: asyncio.Future[Any] = asyncio.ensure_future(stop.wait())
    all_ready: asyncio.Future[Any] = asyncio.ensure_future(_wait_all_ready(run_dir, len(procs)))
    pending = {stopped, all_ready, *exits}
    try:
        while True:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            if all_ready in done:
                (run_dir / READY_MARKER).touch()
                log.info("ready", extra={"workers": len(procs)})
            if stopped in done:
                return 0
            for fut in done:
                proc = exits.get(fut)
                if proc is not None:
                    log.error("worker exited; stopping the others", extra={"pid": proc.pid, "code": proc.returncode})
                    return _exit_code(proc.returncode or 0)
    finally:
        for fut in (stopped, all_ready):
            fut.cancel()


async def _hand_off(run_dir: Path, listener: socket.socket, channels: list[socket.socket]) -> None:
    """Listen once every worker takes connections, then hand them out in turn."""
    while not all((run_dir / f"listening-{i}").exists() for i in range(len(channels))):
        await asyncio.sleep(0.02)
    listener.listen(1024)
    await distribute(listener, channels)


async def _wait_all_ready(run_dir: Path, workers: int) -> None:
    while not all((run_dir / f"ready-{i}").exists() for i in range(workers)):
        await asyncio.sleep(0.05)


async def _stop_all(procs: list[asyncio.subprocess.Process], timeout_s: float) -> int:
    """SIGTERM every running worker, wait for their drains, SIGKILL what outlives ``timeout_s``."""
    for p in procs:
        if p.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                p.send_signal(signal.SIGTERM)
    try:
        await asyncio.wait_for(asyncio.gather(*(p.wait() for p in procs)), timeout_s)
    except TimeoutError:
        for p in procs:
            if p.returncode is None:
                log.error("worker did not stop in time; killed", extra={"pid": p.pid})
                with contextlib.suppress(ProcessLookupError):
                    p.kill()
        await asyncio.gather(*(p.wait() for p in procs))
    codes = [p.returncode or 0 for p in procs]
    return max((_exit_code(c) for c in codes if c != 0), default=0)


def resolve_workers(args: argparse.Namespace) -> int:
    """``--workers``, or its default: from the CPU limit on the CPU, 1 with a GPU (one CUDA context
    and model copy per process) or with ``--model-control-mode explicit`` (a load or unload would
    reach one worker only). Raises ValueError for an explicit combination that cannot work."""
    if args.model_control_mode == "explicit":
        if args.workers is not None and args.workers > 1:
            raise ValueError(
                "--workers above 1 cannot be combined with --model-control-mode explicit "
                "(a load/unload request would reach one worker process only)"
            )
        return 1
    if args.workers is not None:
        return int(args.workers)
    from modelserver.session import select_providers

    try:
        on_gpu = "CUDAExecutionProvider" in select_providers(args.device)
    except RuntimeError:
        on_gpu = True  # --device cuda without CUDA: the worker reports it; start one
    return 1 if on_gpu else default_workers()


def run_supervisor(
    args: argparse.Namespace,
    argv: Sequence[str],
    workers: int,
    runner: Callable[[Coroutine[Any, Any, None]], None],
) -> int:
    """``modelserver serve`` as the supervisor of ``workers`` processes; the exit code."""
    from modelserver.response_cache import parse_cache_config

    overrides: list[str] = []
    if args.intra_op_threads == 0:  # ORT's default (a thread per core) in every process would oversubscribe
        overrides += ["--intra-op-threads", str(intra_op_threads_per_worker(workers))]
    try:
        cache_bytes = parse_cache_config(args.cache_config)
    except ValueError as exc:
        print(f"modelserver: error: {exc}", file=sys.stderr)
        return 2
    if cache_bytes > 0:  # the configured size bounds the whole server's cache memory
        overrides += ["--cache-config", f"local,size={max(1, cache_bytes // workers)}"]
    result: list[int] = []

    async def main() -> None:
        result.append(
            await supervise(
                argv,
                workers=workers,
                host=args.host,
                http_port=args.http_port,
                grpc_port=args.grpc_port,
                metrics_port=args.metrics_port,
                drain_timeout_s=args.drain_timeout,
                worker_overrides=overrides,
            )
        )

    runner(main())
    return result[0] if result else 1
