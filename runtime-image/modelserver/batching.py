"""Request scheduling: a queue per model version drained by ``instance_count`` ORT threads.

With batching on, a worker takes the first waiting request and then every compatible one
already queued (same non-batch dims), waiting up to ``max_queue_delay_us`` for more until
the batch reaches the largest preferred size (or max_batch_size). Concatenation, the ORT
run and the split all happen in an ORT thread, off the event loop (except tiny models at low
load, see INLINE_MAX_NS). Requests of a different shape wait for the next batch rather than
being dropped.

Pipelining: one dispatcher coroutine gathers batches and hands them to dedicated ORT threads
through a ``queue.SimpleQueue``; each thread posts its result back with a single
``call_soon_threadsafe``. For models whose compute per sample outweighs the event loop's
per-request work, up to ``instances + 1`` batches are in flight, so the next batch is already
queued for the ORT thread while the event loop is still writing the previous batch's
responses (a strictly sequential gather -> run -> deliver loop left the ORT thread idle for
that whole time). For cheap models the loop is the bottleneck and an early second batch only
makes batches smaller (more executions and thread handoffs per request), so they keep one
batch per thread. The dedicated thread also saves the executor's thread hops
(concurrent.futures.Future + wrap_future + a task step) on every request at low concurrency.
While every thread is busy, that early batch keeps taking compatible requests until shortly
before the running batch should end (``_top_up``), so it is not sealed small.

Metrics per execution: queue time per request, and Triton's three stage times (compute_input =
assembling the batch, compute_infer = the ORT run, compute_output = splitting the outputs),
each charged to every request of the batch as Triton does. Models with ``response_cache``
enabled answer repeated requests from ``response_cache.ResponseCache`` without queueing.
"""

from __future__ import annotations

import asyncio
import collections
import queue
import threading
import time
from typing import Any

import numpy as np

from modelserver.errors import ServingError
from modelserver.metrics import ModelStats
from modelserver.response_cache import ResponseCache
from modelserver.session import Array, ModelSession

Outputs = dict[str, Array]
# Pipeline batches only when a sample costs more compute than the event loop spends per request
# (~50-250 us): then the ORT thread is the bottleneck and must not wait for the loop.
PIPELINE_MIN_SAMPLE_NS = 100_000
# A batch expected to take at most this long runs on the event loop itself at low load (requests
# further apart than INLINE_MIN_GAP_NS, nothing else queued, arriving or running): the two thread
# handoffs (wake the ORT thread, wake the loop) cost more than such a run blocks the loop. Under
# load the thread keeps the loop free to read the next requests, which then batch together.
INLINE_MAX_NS = 50_000
INLINE_MIN_GAP_NS = 100_000
# A pipelined batch is handed to the busy ORT thread this long before the running batch is
# expected to end: enough for the loop to get it there in time, the rest is spent filling it.
TOP_UP_MARGIN_NS = 300_000
_ERROR = "\0error"  # key marking a per-request failure inside a batch result
# (compute_input, compute_infer, compute_output) nanoseconds of one execution
StageTimes = tuple[int, int, int]


def _drop_traceback(exc: BaseException) -> None:
    """A request error (ServingError) needs no traceback, and keeping it would pin the request's
    arrays: its frames (session.run's feeds, the batch) form a cycle with the future holding the
    error, alive until the cyclic GC runs (measured: +8 MB per refused 8 MB request). Bugs keep
    theirs, for the log."""
    if isinstance(exc, ServingError):
        exc.with_traceback(None)


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


class _Pending:
    __slots__ = ("batch", "cache_key", "cache_ns", "enqueued", "feeds", "future", "outputs")

    def __init__(
        self, feeds: dict[str, Array], batch: int, outputs: list[str] | None, future: asyncio.Future[Any]
    ) -> None:
        self.feeds = feeds
        self.batch = batch
        self.outputs = outputs
        self.future = future
        self.enqueued = time.perf_counter_ns()
        self.cache_key: bytes | None = None  # set on a response-cache miss: store the result under it
        self.cache_ns = 0  # time spent on the cache lookup

    def key(self) -> tuple[tuple[str, np.dtype[Any], tuple[int, ...]], ...]:
        """What must agree for two requests to share a batch (non-batch dims and dtypes)."""
        return tuple((n, a.dtype, a.shape[1:]) for n, a in self.feeds.items())


class Scheduler:
    def __init__(
        self,
        session: ModelSession,
        stats: ModelStats,
        *,
        instances: int = 1,
        dynamic_batching: bool = False,
        max_queue_delay_us: int = 0,
        preferred_batch_sizes: tuple[int, ...] = (),
    ) -> None:
        self.session = session
        self.stats = stats
        self.batching = dynamic_batching and session.max_batch_size > 0
        limit = session.max_batch_size
        preferred = [p for p in preferred_batch_sizes if 0 < p <= limit]
        self.target = max(preferred) if preferred else limit
        self.delay_s = max_queue_delay_us / 1e6
        self.instances = max(1, instances)
        # A plain deque plus one waiter future instead of asyncio.Queue: the queue's bookkeeping
        # (unfinished-task counter, Event, waiter deque) and wait_for's extra task per timed wait
        # were a visible share of the per-request event-loop work. Only the dispatcher waits.
        self._queue: collections.deque[_Pending] = collections.deque()
        self._waiter: asyncio.Future[None] | None = None
        self._held: collections.deque[_Pending] = collections.deque()
        self._workers: list[asyncio.Task[None]] = []
        # Batches handed to the ORT threads (None tells a thread to exit).
        self._jobs: queue.SimpleQueue[list[_Pending] | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._in_flight = 0
        self._sample_ns = -1  # smoothed compute time per sample (-1: not measured yet)
        self._busy_until = 0  # perf_counter_ns when the batches handed to the threads should be done
        self._slot: asyncio.Future[None] | None = None  # the dispatcher waits on it when all slots are used
        # Requests whose body is still being received/decoded; the front ends keep it up to date.
        self.arriving = 0
        self._last_group = 1
        self._last_arrival = 0
        self._gap_ns = 1_000_000_000
        self._last_gap_ns = 1_000_000_000  # unsmoothed, so inline runs stop from a burst's second request
        self.waiting = 0  # submitted, not yet handed to an execution (stats.pending may span two schedulers)
        self.cache: ResponseCache | None = None  # set when config.pbtxt has response_cache { enable: true }

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._threads = [
            threading.Thread(target=self._thread_main, name=f"ort-{self.session.name}-{i}", daemon=True)
            for i in range(self.instances)
        ]
        for t in self._threads:
            t.start()
        self._workers = [asyncio.create_task(self._work())]

    async def stop(self) -> None:
        for w in self._workers:
            w.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        for _ in self._threads:
            self._jobs.put(None)
        for t in self._threads:  # batches already handed over still run to the end
            t.join()

    def submit(self, feeds: dict[str, Array], batch: int, outputs: list[str] | None) -> asyncio.Future[Outputs]:
        """Queue a request; the future resolves to its outputs (or a ServingError)."""
        fut: asyncio.Future[Outputs] = asyncio.get_running_loop().create_future()
        cache_key, cache_ns = None, 0
        if self.cache is not None:
            t0 = time.perf_counter_ns()
            cache_key = self.cache.key(self.session.name, self.session.version, feeds, outputs)
            hit = self.cache.get(cache_key)
            cache_ns = time.perf_counter_ns() - t0
            if hit is not None:  # answered from the cache: no queue, no execution
                self.stats.observe_cache(True, cache_ns)
                fut.set_result(hit)
                return fut
        self.stats.pending += 1
        self.waiting += 1
        pending = _Pending(feeds, batch, outputs, fut)
        pending.cache_key, pending.cache_ns = cache_key, cache_ns
        # Smoothed inter-arrival gap (capped so one idle pause does not dominate it).
        gap = min(pending.enqueued - self._last_arrival, 1_000_000_000)
        self._gap_ns = (3 * self._gap_ns + gap) // 4
        self._last_gap_ns = gap
        self._last_arrival = pending.enqueued
        self._queue.append(pending)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        return fut

    async def infer(self, feeds: dict[str, Array], batch: int, outputs: list[str] | None) -> Outputs:
        return await self.submit(feeds, batch, outputs)

    async def _next(self) -> _Pending:
        if self._held:
            return self._held.popleft()
        while not self._queue:
            await self._arrival(None)
        return self._queue.popleft()

    async def _arrival(self, timeout_s: float | None) -> None:
        """Wait until ``submit`` queues a request, or at most ``timeout_s`` seconds."""
        loop = asyncio.get_running_loop()
        waiter = self._waiter = loop.create_future()
        timer = None if timeout_s is None else loop.call_later(timeout_s, _wake, waiter)
        try:
            await waiter
        finally:
            self._waiter = None
            if timer is not None:
                timer.cancel()

    async def _gather(self, first: _Pending) -> list[_Pending]:
        group, size = [first], first.batch
        key: tuple[Any, ...] | None = None  # computed only once a second request shows up
        deadline = first.enqueued + int(self.delay_s * 1e9)
        idle_turns = 0
        while size < self.target:
            if self._queue:
                item = self._queue.popleft()
            else:
                now = time.perf_counter_ns()
                if now >= deadline:
                    break
                # Waiting only pays off if a request is on its way, so unlike Triton we do not
                # always sit out the whole delay (at concurrency 1 that only adds latency):
                # 1. after a batch that showed concurrent clients, give the loop two turns to
                #    dispatch requests whose bytes are already on the sockets (cheap, precise);
                # 2. wait (up to the deadline) while a request is still being received, or for
                #    about two inter-arrival gaps when requests usually come faster than that.
                if idle_turns < 2 and self._last_group > 1:
                    idle_turns += 1
                    await asyncio.sleep(0)
                    continue
                if self.arriving > 0:
                    wait_ns = deadline - now
                elif self._gap_ns < deadline - now:
                    wait_ns = min(deadline - now, 2 * self._gap_ns)
                else:
                    break
                await self._arrival(wait_ns / 1e9)
                if not self._queue:
                    break  # timed out
                item = self._queue.popleft()
            idle_turns = 0
            if key is None:
                key = first.key()
            if size + item.batch > self.session.max_batch_size or item.key() != key:
                self._held.append(item)
                break
            group.append(item)
            size += item.batch
        self._last_group = len(group)
        return group

    async def _top_up(self, group: list[_Pending]) -> None:
        """Every ORT thread is busy, so this pipelined batch cannot start yet: keep adding
        compatible requests until the batch is full, a thread frees up, or shortly before the
        running batch is expected to end (then it is handed over, so the thread goes straight on
        to it). Triton likewise forms a batch when an instance is free; sealing the next batch
        right after the previous one started kept batches small for compute-heavy models."""
        if self._held:  # an incompatible request is first in line: do not pass it
            return
        loop = asyncio.get_running_loop()
        key = group[0].key()
        size = sum(p.batch for p in group)
        deadline = self._busy_until - TOP_UP_MARGIN_NS
        while size < self.target and self._in_flight >= self.instances:
            if self._queue:
                item = self._queue[0]
                if size + item.batch > self.session.max_batch_size or item.key() != key:
                    break
                group.append(self._queue.popleft())
                size += item.batch
                continue
            now = time.perf_counter_ns()
            if now >= deadline:
                break
            slot = self._slot = loop.create_future()
            arrival = self._waiter = loop.create_future()
            timer = loop.call_later((deadline - now) / 1e9, _wake, arrival)
            try:
                await asyncio.wait((slot, arrival), return_when=asyncio.FIRST_COMPLETED)
            finally:
                self._waiter = None
                timer.cancel()
        self._last_group = len(group)

    async def _work(self) -> None:
        """Dispatcher: gather a batch, hand it to an ORT thread, go on with the next one."""
        while True:
            # One batch per thread running, plus (when compute-bound) one ready to start the
            # moment a thread frees up.
            limit = self.instances + (self._sample_ns >= PIPELINE_MIN_SAMPLE_NS)
            if self._in_flight >= limit:
                self._slot = asyncio.get_running_loop().create_future()
                await self._slot
                continue
            first = await self._next()
            group = await self._gather(first) if self.batching else [first]
            if self.batching and self._in_flight >= self.instances:
                await self._top_up(group)
            self.stats.pending -= len(group)
            self.waiting -= len(group)
            self._in_flight += 1
            if (
                self._in_flight == 1
                and not self._queue
                and not self._held
                and self.arriving == 0
                and self._last_gap_ns >= INLINE_MIN_GAP_NS
                and 0 <= self._sample_ns * sum(p.batch for p in group) <= INLINE_MAX_NS
            ):
                start = time.perf_counter_ns()
                try:
                    results, times = self._execute(group)
                except Exception as exc:
                    self._deliver(group, start, [], (0, 0, 0), exc)
                else:
                    self._deliver(group, start, results, times, None)
                continue
            # When the threads should be through with what they have (for _top_up's deadline).
            expected = max(0, self._sample_ns) * sum(p.batch for p in group) // self.instances
            self._busy_until = max(self._busy_until, time.perf_counter_ns()) + expected
            self._jobs.put(group)

    def _thread_main(self) -> None:
        loop = self._loop
        assert loop is not None
        while True:
            group = self._jobs.get()
            if group is None:
                return
            # Queue time runs until the batch actually starts (it may have waited for the thread).
            start = time.perf_counter_ns()
            times: StageTimes = (0, 0, 0)
            try:
                results, times = self._execute(group)
                exc: BaseException | None = None
            except Exception as e:
                results, exc = [], e
            try:
                loop.call_soon_threadsafe(self._deliver, group, start, results, times, exc)
            except RuntimeError:  # the loop is closed: nobody is waiting any more
                return

    def _deliver(
        self, group: list[_Pending], start: int, results: list[Outputs], times: StageTimes, exc: BaseException | None
    ) -> None:
        """On the loop: free the slot (first, so the dispatcher is woken first) and resolve futures."""
        self._in_flight -= 1
        slot = self._slot
        if slot is not None and not slot.done():
            slot.set_result(None)
        if exc is not None:
            _drop_traceback(exc)
            for p in group:
                if p.cache_key is not None:
                    self.stats.observe_cache(False, p.cache_ns)
                if not p.future.done():
                    p.future.set_exception(exc)
            return
        input_ns, compute_ns, output_ns = times
        samples = sum(p.batch for p in group)
        # Per request, as Triton counts: each request of a batch is charged the batch's stage times
        # (so the compute sums grow with the batch's request count; batch_stats have them once).
        self.stats.observe_execution(
            sum(start - p.enqueued for p in group),
            compute_ns,
            requests=len(group),
            batch_size=samples,
            input_ns=input_ns,
            output_ns=output_ns,
        )
        per_sample = compute_ns // (samples or 1)
        self._sample_ns = per_sample if self._sample_ns < 0 else (3 * self._sample_ns + per_sample) // 4
        for p, out in zip(group, results, strict=True):
            if p.future.done():  # the client went away
                continue
            err = out.get(_ERROR)
            if err is not None:
                _drop_traceback(err)  # type: ignore[arg-type]
                p.future.set_exception(err)  # type: ignore[arg-type]
                continue
            if p.cache_key is not None and self.cache is not None:
                t0 = time.perf_counter_ns()
                self.cache.put(p.cache_key, out)
                self.stats.observe_cache(False, p.cache_ns + time.perf_counter_ns() - t0)
            p.future.set_result(out)

    def _execute(self, group: list[_Pending]) -> tuple[list[Outputs], StageTimes]:
        """Run one batch; the stage times are Triton's compute_input (assembling the batch's
        inputs), compute_infer (the ORT run) and compute_output (splitting the outputs per request)."""
        t0 = time.perf_counter_ns()
        if len(group) == 1:  # the request's own arrays go to ORT as they are: no input/output stage
            out = self.session.run(group[0].feeds, group[0].outputs)
            return [out], (0, time.perf_counter_ns() - t0, 0)
        feeds = {n: np.concatenate([p.feeds[n] for p in group]) for n in group[0].feeds}
        t1 = time.perf_counter_ns()
        try:
            merged = self.session.run(feeds)
        except ServingError:
            # One bad request must not fail its batch-mates: rerun them one by one so the
            # error lands only on the request that caused it.
            return self._execute_each(group, t0, t1)
        t2 = time.perf_counter_ns()
        results: list[Outputs] = []
        offset = 0
        for p in group:
            wanted = p.outputs or self.session.output_names
            results.append({n: merged[n][offset : offset + p.batch] for n in wanted})
            offset += p.batch
        return results, (t1 - t0, t2 - t1, time.perf_counter_ns() - t2)

    def _execute_each(self, group: list[_Pending], t0: int, t1: int) -> tuple[list[Outputs], StageTimes]:
        results: list[Outputs] = []
        for p in group:
            try:
                results.append(self.session.run(p.feeds, p.outputs))
            except ServingError as exc:
                results.append({_ERROR: exc})  # type: ignore[dict-item]
        return results, (t1 - t0, time.perf_counter_ns() - t1, 0)

    async def drain(self, timeout_s: float) -> bool:
        """Wait until no request is queued or running (before an unload); False on timeout."""
        deadline = time.monotonic() + timeout_s
        while self.waiting or self._in_flight:
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(0.005)
        return True
