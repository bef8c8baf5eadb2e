"""The set of served model versions: loading, warm-up, lookup and the infer entry point
shared by the REST and gRPC front ends."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from modelserver.batching import Outputs, Scheduler
from modelserver.config_pbtxt import ModelSettings
from modelserver.errors import InjectedFault, ModelNotFound, ModelNotReady
from modelserver.faults import Faults
from modelserver.metrics import ModelStats, ServerMetrics
from modelserver.repository import ModelEntry
from modelserver.response_cache import DEFAULT_CACHE_BYTES, ResponseCache
from modelserver.session import Array, ModelSession
from modelserver.warmup import WarmupError, run_warmup, warmup_samples

log = logging.getLogger("modelserver.models")


def _always() -> bool:
    return True


class ModelLoadError(Exception):
    pass


class ModelWarmupFailed(ModelLoadError):
    """The model loaded but its config's warm-up failed: only this version becomes unavailable."""


@dataclass(frozen=True)
class Defaults:
    """Command-line defaults for models without a config.pbtxt."""

    max_batch_size: int = 0
    max_queue_delay_us: int = 0
    instances: int = 1
    intra_op_threads: int = 0
    providers: tuple[str, ...] = ("CPUExecutionProvider",)
    response_cache_bytes: int = DEFAULT_CACHE_BYTES  # shared by models with response_cache enabled


@dataclass
class LoadedModel:
    name: str
    version: int
    session: ModelSession
    scheduler: Scheduler
    stats: ModelStats
    settings: ModelSettings


class ModelManager:
    def __init__(self, entries: list[ModelEntry], metrics: ServerMetrics, defaults: Defaults, faults: Faults):
        self.entries = {e.name: e for e in entries}
        self.metrics = metrics
        self.defaults = defaults
        self.faults = faults
        self.loaded: dict[str, dict[int, LoadedModel]] = {}
        # Versions that are not served, with the reason (a failed warm-up); shown by model
        # readiness and the repository index. While any is listed the server is not ready
        # (Triton's strict readiness).
        self.unavailable: dict[tuple[str, int], str] = {}
        self._loaded_all = False
        # A worker of --workers N is ready only once every worker is (modelserver.workers).
        self.ready_gate: Callable[[], bool] = _always
        # With --workers N: every worker's counters summed (the statistics extension answers with them).
        self.peer_stats: Callable[[], Awaitable[ServerMetrics]] | None = None
        self.response_cache = ResponseCache(defaults.response_cache_bytes)

    @property
    def ready(self) -> bool:
        return self._loaded_all and not self.unavailable and self.ready_gate()

    @ready.setter
    def ready(self, value: bool) -> None:
        self._loaded_all = value

    async def load_all(self) -> None:
        """Load and warm up every version. A model that cannot be loaded aborts the whole server
        (like Triton with a bad model); one whose warm-up fails is only marked unavailable."""
        loop = asyncio.get_running_loop()
        for entry in self.entries.values():
            for version, path in entry.versions.items():
                try:
                    model = await loop.run_in_executor(None, self._load, entry, version, path)
                except ModelWarmupFailed as exc:
                    self.unavailable[(entry.name, version)] = str(exc)
                    log.error("model unavailable", extra={"model": entry.name, "version": version, "reason": str(exc)})
                    continue
                model.scheduler.start()
                self.loaded.setdefault(entry.name, {})[version] = model
                log.info(
                    "model loaded",
                    extra={
                        "model": entry.name,
                        "version": version,
                        "max_batch_size": model.session.max_batch_size,
                        "dynamic_batching": model.scheduler.batching,
                        "instances": model.scheduler.instances,
                    },
                )
        self.ready = True

    def _load(self, entry: ModelEntry, version: int, path: Path) -> LoadedModel:
        if self.faults.load_fail:
            raise ModelLoadError(f"model {entry.name} version {version}: load failed (MODELSERVER_FAULT_LOAD_FAIL)")
        st, d = entry.settings, self.defaults
        max_batch = st.max_batch_size if st.present else d.max_batch_size
        batching = st.dynamic_batching if st.present else d.max_batch_size > 0
        delay = st.max_queue_delay_us if st.present else d.max_queue_delay_us
        try:
            session = ModelSession(
                entry.name,
                version,
                path,
                providers=list(d.providers),
                intra_op_threads=d.intra_op_threads,
                max_batch_size=max_batch,
            )
        except Exception as exc:
            raise ModelLoadError(f"model {entry.name} version {version} ({path}): {exc}") from None
        try:
            run_warmup(session, warmup_samples(st.proto, session, path.parent.parent))
        except WarmupError as exc:
            raise ModelWarmupFailed(f"model {entry.name} version {version}: {exc}") from None
        self.unavailable.pop((entry.name, version), None)
        stats = self.metrics.stats(entry.name, version)
        scheduler = Scheduler(
            session,
            stats,
            instances=st.instance_count or d.instances,
            dynamic_batching=batching,
            max_queue_delay_us=delay,
            preferred_batch_sizes=st.preferred_batch_sizes,
        )
        if st.proto.response_cache.enable and self.response_cache.max_bytes > 0:
            scheduler.cache = self.response_cache
            stats.cache_enabled = True
        return LoadedModel(entry.name, version, session, scheduler, stats, st)

    async def close(self) -> None:
        for versions in self.loaded.values():
            for m in versions.values():
                await m.scheduler.stop()

    def versions(self, name: str) -> list[int]:
        entry = self.entries.get(name)
        if entry is None:
            raise ModelNotFound(f"unknown model '{name}'")
        return list(entry.versions)

    def resolve(self, name: str, version: str = "") -> LoadedModel:
        """The requested version (latest when empty); 404 if unknown, not-ready if still loading."""
        entry = self.entries.get(name)
        if entry is None:
            raise ModelNotFound(f"unknown model '{name}'")
        if version:
            if not (version.isascii() and version.isdigit()) or int(version) not in entry.versions:
                raise ModelNotFound(f"unknown version '{version}' of model '{name}'")
            v = int(version)
        else:
            v = entry.latest
        model = self.loaded.get(name, {}).get(v)
        if model is None:
            reason = self.unavailable.get((name, v))
            if reason is not None:
                raise ModelNotReady(f"model '{name}' version {v} is unavailable: {reason}")
            raise ModelNotReady(f"model '{name}' version {v} is not ready")
        return model

    async def infer(
        self, model: LoadedModel, feeds: dict[str, Array], batch: int, outputs: list[str] | None
    ) -> Outputs:
        if self.faults.active:
            await self._inject()
        return await model.scheduler.infer(feeds, batch, outputs)

    def submit(
        self, model: LoadedModel, feeds: dict[str, Array], batch: int, outputs: list[str] | None
    ) -> asyncio.Future[Outputs]:
        """``infer`` without a coroutine when no fault is injected (the REST hot path)."""
        if self.faults.active:
            return asyncio.ensure_future(self.infer(model, feeds, batch, outputs))
        return model.scheduler.submit(feeds, batch, outputs)

    async def _inject(self) -> None:
        if self.faults.latency_ms > 0:
            await asyncio.sleep(self.faults.latency_ms / 1000)
        if self.faults.error_rate > 0 and random.random() < self.faults.error_rate:
            raise InjectedFault("injected fault (MODELSERVER_FAULT_ERROR_RATE)")
