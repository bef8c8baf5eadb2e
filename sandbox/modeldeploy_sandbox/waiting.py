"""Waiting for something to become true, as tests and the demo do (never a bare sleep)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Literal, TypeVar

T = TypeVar("T")


def wait_until(
    predicate: Callable[[], T | Literal[False] | None], timeout: float = 10.0, interval: float = 0.05,
    message: str = "condition",
) -> T:
    """Poll ``predicate`` until it returns something truthy; return that, or fail with the last value.

    (Typed so that ``wait_until(lambda: ready and pods)`` and ``wait_until(lambda: kube.get(...))`` give
    the truthy value's type: a falsy ``False`` / ``None`` is never returned.)"""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {message}; last value: {result!r}")
        time.sleep(interval)


def holds(predicate: Callable[[], object], seconds: float, interval: float = 0.1,
          message: str = "condition") -> None:
    """Check ``predicate`` again and again for ``seconds``: something that must *stay* true (a paused
    rollout does not move, nothing is written). AssertionError at the first falsy value."""
    deadline = time.monotonic() + seconds
    while True:
        result = predicate()
        if not result:
            raise AssertionError(f"{message} stopped holding after "
                                 f"{seconds - (deadline - time.monotonic()):.1f}s: {result!r}")
        if time.monotonic() >= deadline:
            return
        time.sleep(interval)
