"""Token buckets: the client-side API rate limit (client-go's QPS/burst) and the work queue's overall
retry limit (controller-runtime's bucket beside its per-item exponential back-off)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class TokenBucket:
    """`rate` tokens a second, at most `burst` saved up. Thread-safe."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError(f"a token bucket needs rate > 0 and burst >= 1 (got rate={rate}, burst={burst})")
        self.rate, self.burst, self._clock = rate, burst, clock
        self._tokens = float(burst)
        self._at = clock()
        self._lock = threading.Lock()

    def reserve(self) -> float:
        """Take a token; seconds to wait before using it (0: now)."""
        with self._lock:
            now = self._clock()
            self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
            self._at = now
            self._tokens -= 1
            return 0.0 if self._tokens >= 0 else -self._tokens / self.rate


class RequestLimiter:
    """Every API request takes a token first, waiting when the bucket is empty (a thundering start)."""

    def __init__(self, qps: float, burst: int) -> None:
        self.bucket = TokenBucket(qps, burst)
        self.waited_seconds = 0.0  # total throttling, for the metrics and the bench

    def acquire(self) -> None:
        wait = self.bucket.reserve()
        if wait > 0:
            self.waited_seconds += wait
            time.sleep(wait)
