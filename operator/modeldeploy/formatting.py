"""How numbers read for people: the one formatter the plugin, the demo and Events share.

Durations in the unit that fits ("850µs", "4.6ms", "12.3s", "1m30s", "2h5m"), fractions as
percentages ("100.0%"), timestamps to the second in UTC ("2026-01-01T00:00:00Z"), counts with
their noun in the right number ("1 pod", "3 pods"). Values that are missing print as "-".
Nothing here imports beyond the standard library: a base install can format.
"""

from __future__ import annotations

import datetime
import math

MISSING = "-"

# Analysis check metrics (spec.rollout.analysis.checks[].metric) whose values are seconds or fractions.
SECONDS_METRICS = frozenset({"latencyP99", "latencyMean", "queueTime"})
FRACTION_METRICS = frozenset({"successRate"})


def duration(seconds: float | None) -> str:
    """A duration in the unit that fits it: "850µs", "4.6ms", "12.3s", "1m30s", "2h5m", "3d4h"."""
    if seconds is None or not math.isfinite(seconds):
        return MISSING
    sign, value = ("-", -seconds) if seconds < 0 else ("", seconds)
    if value < 1e-3:
        return f"{sign}{value * 1e6:.0f}µs"
    if value < 1:
        # "1000.0ms" after rounding reads worse than "1.0s".
        return f"{sign}{value * 1e3:.1f}ms" if round(value * 1e3, 1) < 1000 else f"{sign}1.0s"
    if value < 60:
        return f"{sign}{value:.1f}s" if round(value, 1) < 60 else f"{sign}1m0s"
    whole = round(value)
    if whole < 3600:
        return f"{sign}{whole // 60}m{whole % 60}s"
    minutes = round(value / 60)
    if minutes < 24 * 60:
        return f"{sign}{minutes // 60}h{minutes % 60}m"
    hours = round(value / 3600)
    return f"{sign}{hours // 24}d{hours % 24}h"


def percent(fraction: float | None, digits: int = 1) -> str:
    """A fraction (0.9991) as a percentage ("99.9%")."""
    if fraction is None or not math.isfinite(fraction):
        return MISSING
    return f"{100 * fraction:.{digits}f}%"


def number(value: float | None) -> str:
    """A plain measured value with four significant digits ("0.9991", "12.5", "1.235e+04")."""
    if value is None or not math.isfinite(value):
        return MISSING
    return f"{value:.4g}"


def metric_value(metric: str | None, value: float | None) -> str:
    """An analysis value in its metric's unit: successRate as a percentage, latencies as durations."""
    if metric in FRACTION_METRICS:
        return percent(value, 2)
    if metric in SECONDS_METRICS:
        return duration(value)
    return number(value)


def _parse(value: str | datetime.datetime) -> datetime.datetime:
    if isinstance(value, datetime.datetime):
        parsed = value
    else:
        parsed = datetime.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    return parsed.replace(tzinfo=datetime.UTC) if parsed.tzinfo is None else parsed.astimezone(datetime.UTC)


def timestamp(value: str | datetime.datetime | None) -> str:
    """A point in time in UTC to the second ("2026-01-01T00:00:00Z"); an unparsable string is kept as is."""
    if value is None or value == "":
        return MISSING
    try:
        parsed = _parse(value)
    except ValueError:
        return str(value)
    return parsed.strftime("%Y-%m-%dT%H:%M:%SZ")


def age(value: str | datetime.datetime | None, now: datetime.datetime | None = None) -> str:
    """How long ago ``value`` was, as kubectl's AGE column says it, rounded to whole units ("45s", "5m", "3h")."""
    if value is None or value == "":
        return MISSING
    try:
        then = _parse(value)
    except ValueError:
        return MISSING
    seconds = max(0, int(((now or datetime.datetime.now(datetime.UTC)) - then).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= 2 * size or (unit == "m" and seconds >= size):
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def count(n: int, noun: str, plural: str | None = None) -> str:
    """``n`` with its noun in the right number: "1 pod", "0 pods", "3 replicas"; ``plural`` for irregular ones."""
    return f"{n} {noun if n == 1 else (plural or noun + 's')}"
