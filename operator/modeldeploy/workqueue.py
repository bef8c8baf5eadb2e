"""A work queue of ModelDeployment keys, as client-go's workqueue: fair, deduplicated, rate limited.

- A key waits in the queue at most once; a key added while a worker has it is marked dirty and
  queued again when the worker is done (one worker per key at a time: one writer per object).
- Keys are served first in, first out, so an object waits behind at most the objects woken before
  it, never behind timers that are not due. Urgent keys (a spec change, a user's intent, a new
  object: what a person waits for) go before the others, as controller-runtime's priority queue
  puts user-driven events before the initial list and resyncs: a thousand objects catching up with
  their pods do not delay one `kubectl apply`.
- `add_after` is a due timer (a step's pause ends, an analysis interval comes due, the resync).
- `add_rate_limited` is a retry after an error: exponential per key, beside an overall token bucket,
  so a thousand failing objects do not retry in a burst; `forget` resets a key's failures.
"""

from __future__ import annotations

import heapq
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable

from .ratelimit import TokenBucket

Key = Hashable


class ShutDown(Exception):
    pass


class WorkQueue:
    def __init__(self, retry_bucket: TokenBucket | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._urgent: deque[Key] = deque()
        self._ready: deque[Key] = deque()
        self._queued: dict[Key, bool] = {}  # key -> urgent; each key is in (at most) the deque it says
        self._processing: set[Key] = set()
        self._dirty: dict[Key, bool] = {}  # added while processed -> urgent
        self._timers: list[tuple[float, int, Key]] = []  # (due, sequence, key)
        self._due: dict[Key, float] = {}  # each key's earliest timer: later ones are dropped
        self._sequence = 0
        self._failures: dict[Key, int] = {}
        self._bucket = retry_bucket or TokenBucket(10.0, 100)  # controller-runtime's overall default
        self._cond = threading.Condition()
        self._shut_down = False

    def __len__(self) -> int:
        """Keys waiting for a worker now (the queue depth; timers not yet due are not counted)."""
        with self._cond:
            return len(self._queued)

    def pending_timers(self) -> int:
        with self._cond:
            return len(self._due)

    def add(self, key: Key, urgent: bool = False) -> None:
        with self._cond:
            self._add(key, urgent)

    def _add(self, key: Key, urgent: bool = False) -> None:
        if self._shut_down:
            return
        if key in self._processing:
            self._dirty[key] = self._dirty.get(key, False) or urgent
            return
        queued = self._queued.get(key)
        if queued is not None and (queued or not urgent):
            return
        # New, or waiting as a normal key and now urgent: its stale normal entry is skipped in `get`.
        self._queued[key] = urgent
        (self._urgent if urgent else self._ready).append(key)
        self._cond.notify()

    def _pop(self) -> Key | None:
        for queue, urgent in ((self._urgent, True), (self._ready, False)):
            while queue:
                key = queue.popleft()
                if self._queued.get(key) is urgent:
                    del self._queued[key]
                    return key
        return None

    def add_after(self, key: Key, seconds: float) -> None:
        if seconds <= 0:
            self.add(key)
            return
        with self._cond:
            due = self._clock() + seconds
            if self._due.get(key, float("inf")) <= due:
                return  # an earlier timer of this key wakes it anyway
            self._due[key] = due
            self._sequence += 1
            heapq.heappush(self._timers, (due, self._sequence, key))
            self._cond.notify()

    def cancel_timers(self, key: Key) -> None:
        with self._cond:
            self._due.pop(key, None)  # its heap entries are skipped when they come due

    def add_rate_limited(self, key: Key, backoff: Callable[[int], float]) -> float:
        """Retry `key` after its own back-off (`backoff(failures so far)`) or the overall bucket's wait,
        whichever is longer; returns the delay."""
        with self._cond:
            failures = self._failures.get(key, 0)
            self._failures[key] = failures + 1
        delay = max(backoff(failures), self._bucket.reserve())
        self.add_after(key, delay)
        return delay

    def forget(self, key: Key) -> None:
        with self._cond:
            self._failures.pop(key, None)

    def failures(self, key: Key) -> int:
        with self._cond:
            return self._failures.get(key, 0)

    def _move_due(self) -> float | None:
        """Queue the keys whose timer is due; seconds until the next one (None: no timer)."""
        now = self._clock()
        while self._timers:
            due, _, key = self._timers[0]
            if self._due.get(key) != due:
                heapq.heappop(self._timers)  # superseded by an earlier timer, or cancelled
                continue
            if due > now:
                return due - now
            heapq.heappop(self._timers)
            del self._due[key]
            self._add(key)
        return None

    def get(self, timeout: float | None = None) -> Key | None:
        """The next key (the caller must call `done`); None after `timeout`. Raises ShutDown."""
        deadline = None if timeout is None else self._clock() + timeout
        with self._cond:
            while True:
                if self._shut_down:
                    raise ShutDown()
                next_due = self._move_due()
                key = self._pop()
                if key is not None:
                    self._processing.add(key)
                    return key
                wait = next_due
                if deadline is not None:
                    left = deadline - self._clock()
                    if left <= 0:
                        return None
                    wait = left if wait is None else min(wait, left)
                self._cond.wait(wait)

    def done(self, key: Key) -> None:
        with self._cond:
            self._processing.discard(key)
            if key in self._dirty:
                self._add(key, self._dirty.pop(key))

    def shut_down(self) -> None:
        with self._cond:
            self._shut_down = True
            self._cond.notify_all()
