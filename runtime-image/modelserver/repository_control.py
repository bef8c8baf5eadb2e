"""Triton's model repository extension: index, load and unload, under a model-control mode.

Modes (``--model-control-mode``, Triton's flag):

- ``none`` (default): every model of the repository is loaded at start-up; load and unload
  requests are refused (as Triton does). The index still lists what is served.
- ``explicit``: load/unload requests are allowed. Unlike Triton, start-up still loads every
  model of the repository (a modelserver pod serves the repository ``modelserver fetch`` wrote
  for it, and its readiness means "the model is served"); afterwards a client may unload a
  model, or (re)load one after changing its files: the repository is re-scanned on every load.
- ``poll`` is refused at start-up: Triton's background polling reloads models behind the
  operator's back, while a rollout replaces the pod instead.

A reload keeps the old versions serving until the new ones are loaded; a failed load leaves
them in place. An unload first takes the model out of lookups, then waits for the requests
already queued to finish.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import grpc

from modelserver.errors import InvalidInput, ModelNotFound, ServingError
from modelserver.models import LoadedModel, ModelManager
from modelserver.repository import scan_repository

log = logging.getLogger("modelserver.repository")

MODES = ("none", "explicit")
UNLOAD_DRAIN_S = 30.0


class ControlDisabled(ServingError):
    http_status = 503
    grpc_code = grpc.StatusCode.UNAVAILABLE


def check_mode(mode: str) -> str:
    if mode == "poll":
        raise ValueError("--model-control-mode poll is not supported: a rollout replaces the pod; use none or explicit")
    if mode not in MODES:
        raise ValueError(f"--model-control-mode must be one of none, explicit; got {mode!r}")
    return mode


class RepositoryControl:
    def __init__(self, manager: ModelManager, root: Path, mode: str = "none") -> None:
        self.manager = manager
        self.root = root
        self.mode = check_mode(mode)
        self.unloaded: set[str] = set()  # models unloaded on request (the index says why)
        self._lock = asyncio.Lock()

    def index(self, ready_only: bool = False) -> list[dict[str, Any]]:
        """Triton's ``/v2/repository/index`` rows: one per version, state READY or UNAVAILABLE."""
        rows: list[dict[str, Any]] = []
        try:
            on_disk = {e.name: e for e in scan_repository(self.root)}
        except Exception:  # the directory went away: list what is served
            on_disk = {}
        names = sorted(set(on_disk) | set(self.manager.entries) | set(self.manager.loaded))
        for name in names:
            loaded = self.manager.loaded.get(name, {})
            known, disk = self.manager.entries.get(name), on_disk.get(name)
            versions = sorted(set(loaded) | set(known.versions if known else ()) | set(disk.versions if disk else ()))
            for v in versions:
                if v in loaded:  # Triton leaves "reason" out of READY rows
                    rows.append({"name": name, "version": str(v), "state": "READY"})
                elif not ready_only:
                    reason = "unloaded" if name in self.unloaded else self._reason(name, v)
                    rows.append({"name": name, "version": str(v), "state": "UNAVAILABLE", "reason": reason})
        return rows

    def _reason(self, name: str, version: int) -> str:
        # ModelManager records why a version is not served (e.g. a failed warm-up).
        return self.manager.unavailable.get((name, version)) or "not loaded"

    def _allowed(self, action: str, name: str) -> None:
        if self.mode != "explicit":
            raise ControlDisabled(
                f"explicit model load / unload is not allowed: model control mode is {self.mode} "
                f"(cannot {action} '{name}'; start modelserver with --model-control-mode explicit)"
            )

    async def load(self, name: str, parameters: dict[str, Any] | None = None) -> None:
        self._allowed("load", name)
        for key in parameters or {}:
            raise InvalidInput(f"failed to load '{name}': parameter '{key}' is not supported (no config override)")
        async with self._lock:
            entries = {e.name: e for e in await asyncio.to_thread(scan_repository, self.root)}
            entry = entries.get(name)
            if entry is None:
                raise InvalidInput(f"failed to load '{name}': no such model in the repository {self.root}")
            loop = asyncio.get_running_loop()
            fresh: dict[int, LoadedModel] = {}
            try:
                for version, path in entry.versions.items():
                    fresh[version] = await loop.run_in_executor(None, self.manager._load, entry, version, path)
            except Exception as exc:
                for m in fresh.values():
                    await m.scheduler.stop()
                raise InvalidInput(f"failed to load '{name}': {exc}") from None
            for m in fresh.values():
                m.scheduler.start()
            old = self.manager.loaded.get(name, {})
            self.manager.entries[name] = entry
            self.manager.loaded[name] = fresh
            self.unloaded.discard(name)
            if old:
                self.manager.response_cache.clear()  # answers of the old files may not hold
            log.info("model loaded on request", extra={"model": name, "versions": sorted(fresh)})
            await self._retire(list(old.values()))

    async def unload(self, name: str, parameters: dict[str, Any] | None = None) -> None:
        self._allowed("unload", name)
        for key in parameters or {}:
            if key != "unload_dependents":  # no ensembles here: there are never dependents
                raise InvalidInput(f"failed to unload '{name}': parameter '{key}' is not supported")
        async with self._lock:
            if name not in self.manager.entries and name not in self.manager.loaded:
                raise ModelNotFound(f"failed to unload '{name}': unknown model")
            old = self.manager.loaded.pop(name, {})
            self.unloaded.add(name)
            log.info("model unloaded on request", extra={"model": name, "versions": sorted(old)})
            await self._retire(list(old.values()))

    async def _retire(self, models: list[LoadedModel]) -> None:
        for m in models:
            if not await m.scheduler.drain(UNLOAD_DRAIN_S):
                log.warning("unload: requests still queued after the drain timeout", extra={"model": m.name})
            await m.scheduler.stop()
