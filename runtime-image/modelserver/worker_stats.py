"""Counters of several worker processes (``--workers N``), summed into one view.

Each worker keeps its ``ModelStats`` as plain integers (the hot path stays a few attribute
increments) and serves a snapshot of them on a Unix socket in the run directory. The
supervisor's ``/metrics`` asks every worker at scrape time, sums the snapshots into fresh
``ModelStats`` and renders them with the very same collector as a single process, so the names,
labels and series are those of a single process by construction, and the numbers are exact
(no periodic flush, nothing stale).

Why not prometheus-client's multiprocess mode: it stores samples of the library's own metric
objects (a lock and an mmap write per increment, ~1 us each, a dozen per request) and renders
counters with the ``_total`` sample suffix, while Triton's counters have none; this module keeps
the custom collector and its exposition unchanged.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from modelserver import jsonio
from modelserver.metrics import ModelStats, ServerMetrics

log = logging.getLogger("modelserver.workers")

STATS_PATH = "/stats"
# Counters that add up across processes; the rest are merged by the rules in ``merge``.
_SUMMED = (
    "success", "success_ns", "fail_ns", "inference_count", "exec_count", "executed_requests", "request_ns",
    "queue_ns", "compute_input_ns", "compute_ns", "compute_output_ns", "pending", "latency_sum", "cache_hits",
    "cache_hit_ns", "cache_misses", "cache_miss_ns",
)  # fmt: skip


def socket_path(run_dir: Path, index: int) -> Path:
    return run_dir / f"worker-{index}.sock"


def snapshot(metrics: ServerMetrics) -> list[dict[str, Any]]:
    """Every model version's counters as plain JSON data."""
    rows = []
    for (model, _), st in list(metrics.models.items()):
        row: dict[str, Any] = {name: getattr(st, name) for name in _SUMMED}
        row |= {
            "model": model,
            "version": st.version,
            "failure": dict(st.failure),
            "buckets": list(st.buckets),
            "last_inference_ms": st.last_inference_ms,
            "batch_stats": [[size, *values] for size, values in st.batch_stats.items()],
            "cache_enabled": st.cache_enabled,
        }
        rows.append(row)
    return rows


def merge(metrics: ServerMetrics, rows: Iterable[dict[str, Any]]) -> None:
    """Add one worker's snapshot to ``metrics``: counters summed, last inference the latest."""
    for row in rows:
        st: ModelStats = metrics.stats(row["model"], row["version"])
        for name in _SUMMED:
            setattr(st, name, getattr(st, name) + row[name])
        for reason, n in row["failure"].items():
            st.failure[reason] = st.failure.get(reason, 0) + n
        st.buckets = [a + b for a, b in zip(st.buckets, row["buckets"], strict=True)]
        st.last_inference_ms = max(st.last_inference_ms, row["last_inference_ms"])
        for size, *values in row["batch_stats"]:
            per_size = st.batch_stats.setdefault(size, [0] * len(values))
            for i, v in enumerate(values):
                per_size[i] += v
        st.cache_enabled = st.cache_enabled or row["cache_enabled"]


def worker_stats_app(metrics: ServerMetrics) -> web.Application:
    """What a worker serves on its Unix socket: its own counters, for the supervisor to sum."""

    async def handler(request: web.Request) -> web.Response:
        return web.Response(body=jsonio.dumps(snapshot(metrics)), content_type="application/json")

    app = web.Application()
    app.router.add_get(STATS_PATH, handler)
    return app


async def _fetch(path: Path, timeout_s: float) -> list[dict[str, Any]] | None:
    """One worker's snapshot; None when it is not serving (not started yet, or already gone)."""
    if not path.exists():
        return None
    try:
        async with (
            aiohttp.ClientSession(
                connector=aiohttp.UnixConnector(path=str(path)), timeout=aiohttp.ClientTimeout(total=timeout_s)
            ) as session,
            session.get(f"http://worker{STATS_PATH}") as resp,
        ):
            resp.raise_for_status()
            rows: list[dict[str, Any]] = jsonio.loads(await resp.read())
            return rows
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        log.warning("worker statistics unavailable", extra={"socket": str(path), "error": str(exc)})
        return None


async def gather(run_dir: Path, timeout_s: float = 5.0) -> ServerMetrics:
    """The counters of every worker that serves its socket in ``run_dir``, summed."""
    total = ServerMetrics()
    results = await asyncio.gather(*(_fetch(path, timeout_s) for path in sorted(run_dir.glob("worker-*.sock"))))
    for rows in results:
        if rows is not None:
            merge(total, rows)
    return total


def supervisor_metrics_handler(run_dir: Path) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def handler(request: web.Request) -> web.Response:
        total = await gather(run_dir)
        return web.Response(body=total.exposition(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    return handler
