"""A load generator: real inference requests (Open Inference Protocol, REST + JSON tensors) at a
fixed rate, routed as the cluster would route them (:mod:`.routing`), with per-revision results.

    with LoadGenerator(kube, "ml", "resnet", rate=20, duration=10) as load:
        load.wait()
    report = load.report()
    report.successes("resnet-7f9c2"), report.failures(), report.latency_ms(0.99)

Open loop: request *i* is sent at ``start + i / rate`` whatever the answers, as independent
clients would; a request that would exceed ``max_in_flight`` is counted as ``dropped``. Bounded:
``rate`` <= 500 req/s, ``duration`` <= 600 s (also when running "until stopped"), loopback targets only.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import math
import random
import threading
import time
from collections.abc import Mapping
from types import TracebackType
from typing import Any

import aiohttp

from modeldeploy.kubeapi import KubeClient
from modeldeploy_sandbox.routing import RouteTable, resolve

MAX_RATE = 500.0
MAX_DURATION_S = 600.0
HTTP_PORT = 8000
NO_ENDPOINT = ""  # the revision key of requests that found no ready pod

DEFAULT_PAYLOAD: Mapping[str, Any] = {
    "inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32", "data": [0.5, -1.0, 2.0, 0.25]}]
}


@dataclasses.dataclass
class RevisionStats:
    successes: int = 0
    failures: int = 0
    latencies_ms: list[float] = dataclasses.field(default_factory=list)
    errors: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)


@dataclasses.dataclass(repr=False)
class LoadReport:
    """A snapshot of the results; the key ``""`` (:data:`NO_ENDPOINT`) holds requests with no ready pod."""

    by_revision: dict[str, RevisionStats]
    sent: int
    dropped: int
    elapsed_s: float

    def _pick(self, revision: str | None) -> list[RevisionStats]:
        if revision is None:
            return list(self.by_revision.values())
        return [self.by_revision[revision]] if revision in self.by_revision else []

    def successes(self, revision: str | None = None) -> int:
        return sum(s.successes for s in self._pick(revision))

    def failures(self, revision: str | None = None) -> int:
        return sum(s.failures for s in self._pick(revision))

    def total(self, revision: str | None = None) -> int:
        return self.successes(revision) + self.failures(revision)

    def success_rate(self, revision: str | None = None) -> float:
        total = self.total(revision)
        return self.successes(revision) / total if total else 0.0

    def latency_ms(self, quantile: float, revision: str | None = None) -> float:
        values = sorted(v for s in self._pick(revision) for v in s.latencies_ms)
        if not values:
            return math.nan
        return values[min(len(values) - 1, max(0, math.ceil(quantile * len(values)) - 1))]

    def __repr__(self) -> str:
        parts = [
            f"{rev or '<no endpoint>'}: {st.successes} ok, {st.failures} failed {dict(st.errors)}"
            for rev, st in sorted(self.by_revision.items())
        ]
        return f"LoadReport(sent={self.sent}, dropped={self.dropped}, {'; '.join(parts)})"

    def revisions(self) -> set[str]:
        return {rev for rev, s in self.by_revision.items() if rev != NO_ENDPOINT and s.successes + s.failures}


class LoadGenerator:
    """See the module docstring. ``start()``/``stop()`` or ``with``; ``report()`` any time."""

    def __init__(
        self,
        kube: KubeClient,
        namespace: str,
        name: str,
        *,
        rate: float = 20.0,
        duration: float | None = None,
        payload: Mapping[str, Any] | None = None,
        timeout: float = 5.0,
        max_in_flight: int = 64,
        refresh_s: float = 0.25,
        seed: int | None = None,
    ) -> None:
        if not 0 < rate <= MAX_RATE:
            raise ValueError(f"rate must be in (0, {MAX_RATE:g}] requests/s")
        if duration is not None and not 0 < duration <= MAX_DURATION_S:
            raise ValueError(f"duration must be in (0, {MAX_DURATION_S:g}] s")
        self.namespace, self.name, self.rate = namespace, name, rate
        self.duration = duration or MAX_DURATION_S
        self.payload = dict(payload or DEFAULT_PAYLOAD)
        self.timeout, self.max_in_flight, self.refresh_s = timeout, max_in_flight, refresh_s
        self._kube = kube  # thread-safe, and owned by the caller
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._stats: dict[str, RevisionStats] = collections.defaultdict(RevisionStats)
        self._sent = self._dropped = 0
        self._started = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._routes: RouteTable | None = None
        self.error: BaseException | None = None

    # ----- control -----

    def start(self) -> LoadGenerator:
        self._started = time.monotonic()
        self._thread = threading.Thread(target=self._main, name=f"loadgen-{self.name}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> LoadReport:
        self._stop.set()
        self.wait()
        return self.report()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the end of the run (its duration, or stop()); True if it ended."""
        if self._thread is None:
            return True
        self._thread.join(self.duration + self.timeout + 10 if timeout is None else timeout)
        return not self._thread.is_alive()

    def close(self) -> None:
        self.stop()

    def __enter__(self) -> LoadGenerator:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def report(self) -> LoadReport:
        with self._lock:
            stats = {
                rev: RevisionStats(s.successes, s.failures, list(s.latencies_ms), collections.Counter(s.errors))
                for rev, s in self._stats.items()
            }
            return LoadReport(stats, self._sent, self._dropped, time.monotonic() - self._started)

    def reset(self) -> None:
        """Forget the results so far (e.g. after a warm-up); the run goes on."""
        with self._lock:
            self._stats.clear()
            self._sent = self._dropped = 0
            self._started = time.monotonic()

    # ----- the run -----

    def _main(self) -> None:
        try:
            asyncio.run(self._run())
        except BaseException as error:  # reported through .error; the thread must not die silently
            self.error = error

    async def _refresh_routes(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(Exception):  # an API hiccup: keep the last table
                self._routes = await asyncio.to_thread(resolve, self._kube, self.namespace, self.name)
            await asyncio.sleep(self.refresh_s)

    async def _run(self) -> None:
        self._routes = await asyncio.to_thread(resolve, self._kube, self.namespace, self.name)
        refresher = asyncio.create_task(self._refresh_routes())
        in_flight: set[asyncio.Task[None]] = set()
        timeout = aiohttp.ClientTimeout(total=self.timeout)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            start, i = time.monotonic(), 0
            while not self._stop.is_set() and (due := start + i / self.rate) < start + self.duration:
                await asyncio.sleep(max(0.0, due - time.monotonic()))
                i += 1
                if len(in_flight) >= self.max_in_flight:
                    with self._lock:
                        self._dropped += 1
                    continue
                task = asyncio.create_task(self._one(session))
                in_flight.add(task)
                task.add_done_callback(in_flight.discard)
            if in_flight:
                await asyncio.wait(in_flight, timeout=self.timeout + 1)
        self._stop.set()
        refresher.cancel()
        await asyncio.gather(refresher, return_exceptions=True)

    def _record(self, revision: str, ok: bool, latency_ms: float | None, error: str | None = None) -> None:
        with self._lock:
            stats = self._stats[revision]
            if ok:
                stats.successes += 1
            else:
                stats.failures += 1
            if latency_ms is not None:
                stats.latencies_ms.append(latency_ms)
            if error:
                stats.errors[error] += 1

    async def _one(self, session: aiohttp.ClientSession) -> None:
        routes = self._routes
        with self._lock:
            self._sent += 1
        if routes is None:
            return
        backend, endpoint = routes.pick(self._rng)
        if endpoint is None:
            # A gateway answers 500 for a weighted backend without endpoints; a Service just has none.
            revision = backend.service if backend is not None and len(routes.backends) > 1 else NO_ENDPOINT
            self._record(revision, False, None, "no ready endpoint")
            return
        url = f"http://{endpoint.address}:{HTTP_PORT}/v2/models/{routes.model}/infer"
        began = time.perf_counter()
        try:
            async with session.post(url, json=self.payload) as response:
                await response.read()
                ok, error = response.status == 200, None if response.status == 200 else f"HTTP {response.status}"
        except (aiohttp.ClientError, TimeoutError) as exc:
            ok, error = False, type(exc).__name__
        self._record(endpoint.revision, ok, (time.perf_counter() - began) * 1000, error)
