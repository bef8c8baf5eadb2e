"""Parse one pod's /metrics text into the counters the analysis needs, and subtract two scrapes."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families

from .base import FAILURE, LATENCY_HISTOGRAM, QUEUE_DURATION_US, REQUEST_DURATION_US, SUCCESS


@dataclass(frozen=True)
class Counters:
    """One pod's cumulative counters for one model (summed over versions and failure reasons)."""

    success: float = 0.0
    failure: float = 0.0
    duration_us: float = 0.0
    queue_us: float = 0.0
    buckets: dict[float, float] = field(default_factory=dict)  # le -> cumulative count

    def minus(self, earlier: Counters) -> Counters:
        """Increase since `earlier`; a counter that went backwards means a restart: count from zero."""
        reset = (self.success < earlier.success or self.failure < earlier.failure
                 or self.duration_us < earlier.duration_us or self.queue_us < earlier.queue_us
                 or any(self.buckets.get(le, 0.0) < n for le, n in earlier.buckets.items()))
        if reset:
            return self
        return Counters(
            success=self.success - earlier.success, failure=self.failure - earlier.failure,
            duration_us=self.duration_us - earlier.duration_us, queue_us=self.queue_us - earlier.queue_us,
            buckets={le: n - earlier.buckets.get(le, 0.0) for le, n in self.buckets.items()})

    def plus(self, other: Counters) -> Counters:
        les = set(self.buckets) | set(other.buckets)
        return Counters(
            success=self.success + other.success, failure=self.failure + other.failure,
            duration_us=self.duration_us + other.duration_us, queue_us=self.queue_us + other.queue_us,
            buckets={le: self.buckets.get(le, 0.0) + other.buckets.get(le, 0.0) for le in les})


_INF = -1.0  # +Inf as a bucket bound in JSON (which has no infinity); real bounds are never negative


def to_numbers(counters: Counters) -> list[float]:
    """Flat JSON-safe form: success, failure, duration_us, queue_us, then (le, count) pairs."""
    pairs = [value for le, n in sorted(counters.buckets.items()) for value in (_INF if math.isinf(le) else le, n)]
    return [counters.success, counters.failure, counters.duration_us, counters.queue_us, *pairs]


def from_numbers(numbers: list[float]) -> Counters | None:
    """The inverse of to_numbers; None when the list is not one (written by another version)."""
    if len(numbers) < 4 or len(numbers) % 2:
        return None
    pairs = numbers[4:]
    buckets = {math.inf if le == _INF else le: n for le, n in zip(pairs[::2], pairs[1::2], strict=True)}
    return Counters(success=numbers[0], failure=numbers[1], duration_us=numbers[2], queue_us=numbers[3],
                    buckets=buckets)


def parse(text: str, model: str) -> Counters:
    """The model's counters in a Prometheus text exposition. No series for the model: all zero."""
    totals = {SUCCESS: 0.0, FAILURE: 0.0, REQUEST_DURATION_US: 0.0, QUEUE_DURATION_US: 0.0}
    buckets: dict[float, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.labels.get("model") != model:
                continue
            # The parser may report a counter family without the _total suffix or with it.
            name = sample.name.removesuffix("_total")
            if name in totals:
                totals[name] += sample.value
            elif name == f"{LATENCY_HISTOGRAM}_bucket":
                le = float(sample.labels["le"])
                buckets[le] = buckets.get(le, 0.0) + sample.value
    return Counters(success=totals[SUCCESS], failure=totals[FAILURE], duration_us=totals[REQUEST_DURATION_US],
                    queue_us=totals[QUEUE_DURATION_US], buckets=buckets)


def histogram_quantile(q: float, buckets: dict[float, float]) -> float | None:
    """Prometheus' histogram_quantile over cumulative buckets (le -> count): linear inside the bucket.

    The lowest bucket interpolates from 0; a rank in the +Inf bucket returns the highest finite
    bound. None when there are no observations.
    """
    ordered = sorted(buckets.items())
    if not ordered or not math.isinf(ordered[-1][0]):
        return None
    total = ordered[-1][1]
    if total <= 0:
        return None
    rank = q * total
    lower_bound, lower_count = 0.0, 0.0
    for index, (le, count) in enumerate(ordered):
        if count >= rank:
            if math.isinf(le):
                return ordered[index - 1][0] if index > 0 else None
            if index == 0 and le <= 0:
                return le
            return lower_bound + (le - lower_bound) * (rank - lower_count) / max(count - lower_count, 1e-300)
        lower_bound, lower_count = le, count
    return None
