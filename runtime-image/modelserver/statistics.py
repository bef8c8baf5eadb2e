"""Triton's statistics extension: per model version, from the same counters as /metrics.

The JSON shape is Triton's REST ``/v2/models[/{m}[/versions/{v}]]/stats`` response; the gRPC
``ModelStatistics`` RPC parses the same dict into its protobuf message.
"""

from __future__ import annotations

from typing import Any

from modelserver.errors import InvalidInput, ServingError
from modelserver.metrics import ModelStats, ServerMetrics
from modelserver.models import LoadedModel, ModelManager


def _duration(count: int, ns: int) -> dict[str, int]:
    return {"count": count, "ns": ns}


def model_statistics(name: str, st: ModelStats) -> dict[str, Any]:
    executed = st.executed_requests
    return {
        "name": name,
        "version": st.version,
        "last_inference": st.last_inference_ms,
        "inference_count": st.inference_count,
        "execution_count": st.exec_count,
        "inference_stats": {
            "success": _duration(st.success, st.success_ns),
            "fail": _duration(sum(st.failure.values()), st.fail_ns),
            "queue": _duration(executed, st.queue_ns),
            "compute_input": _duration(executed, st.compute_input_ns),
            "compute_infer": _duration(executed, st.compute_ns),
            "compute_output": _duration(executed, st.compute_output_ns),
            "cache_hit": _duration(st.cache_hits, st.cache_hit_ns),
            "cache_miss": _duration(st.cache_misses, st.cache_miss_ns),
        },
        "response_stats": {},
        "batch_stats": [
            {
                "batch_size": size,
                "compute_input": _duration(n, input_ns),
                "compute_infer": _duration(n, infer_ns),
                "compute_output": _duration(n, output_ns),
            }
            for size, (n, input_ns, infer_ns, output_ns) in sorted(st.batch_stats.items())
        ],
        "memory_usage": [],
    }


def statistics(
    manager: ModelManager, name: str = "", version: str = "", totals: ServerMetrics | None = None
) -> dict[str, Any]:
    """Every loaded version of every model, of one model, or one version (Triton's URL forms).

    Raises ``InvalidInput`` (400 / INVALID_ARGUMENT, Triton's answer) for a model or version that
    is not served.
    """
    selected: list[LoadedModel]
    if not name:
        selected = [m for versions in manager.loaded.values() for _, m in sorted(versions.items())]
    elif version:
        try:
            selected = [manager.resolve(name, version)]
        except ServingError:
            raise InvalidInput(f"requested model version is not available for model '{name}'") from None
    else:
        versions = manager.loaded.get(name)
        if not versions:  # unknown, or not loaded: Triton answers 400 / INVALID_ARGUMENT for both
            raise InvalidInput(f"requested model '{name}' is not available")
        selected = [m for _, m in sorted(versions.items())]
    if totals is None:
        return {"model_stats": [model_statistics(m.name, m.stats) for m in selected]}
    return {
        "model_stats": [
            model_statistics(m.name, totals.models.get((m.name, str(m.version)), m.stats)) for m in selected
        ]
    }


async def server_statistics(manager: ModelManager, name: str = "", version: str = "") -> dict[str, Any]:
    """``statistics``, summed over every worker process when serving with ``--workers N``."""
    own = statistics(manager, name, version)  # refuses an unknown model before asking anyone
    if manager.peer_stats is None:
        return own
    return statistics(manager, name, version, await manager.peer_stats())
