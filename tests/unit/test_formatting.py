"""The one formatter of durations, percentages, times and counts (issue 13, item 8)."""

from __future__ import annotations

import datetime

import pytest

from modeldeploy.formatting import age, count, duration, metric_value, number, percent, timestamp


@pytest.mark.parametrize(("seconds", "text"), [
    (0.0000042, "4µs"), (0.0046, "4.6ms"), (0.004292, "4.3ms"), (0.25, "250.0ms"), (0.99996, "1.0s"),
    (1.0, "1.0s"), (12.34, "12.3s"), (59.96, "1m0s"), (90, "1m30s"), (3599.4, "59m59s"), (3600, "1h0m"),
    (7500, "2h5m"), (90000, "1d1h"), (-0.0046, "-4.6ms"), (None, "-"), (float("nan"), "-"),
])
def test_durations_read_in_the_unit_that_fits(seconds: float | None, text: str) -> None:
    assert duration(seconds) == text


def test_percentages_numbers_and_metric_values() -> None:
    assert percent(1) == "100.0%" and percent(0.9991) == "99.9%" and percent(0.9991, 2) == "99.91%"
    assert percent(None) == "-" and number(0.004292) == "0.004292" and number(None) == "-"
    assert metric_value("successRate", 1.0) == "100.00%"
    assert metric_value("latencyP99", 0.004292) == "4.3ms"
    assert metric_value("queueTime", 0.00005) == "50µs"
    assert metric_value(None, 12.5) == "12.5" and metric_value("custom-errors", 3) == "3"


def test_timestamps_carry_no_microseconds() -> None:
    assert timestamp("2026-12-04T23:14:25.123456Z") == "2026-12-04T23:14:25Z"
    assert timestamp("2026-12-04T23:14:25.123456+01:00") == "2026-12-04T22:14:25Z"
    assert timestamp(datetime.datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=datetime.UTC)) == "2026-01-02T03:04:05Z"
    assert timestamp(None) == "-" and timestamp("yesterday") == "yesterday"


def test_ages_as_kubectl_shows_them() -> None:
    now = datetime.datetime(2026, 1, 2, 0, 0, 0, tzinfo=datetime.UTC)
    assert age("2026-01-01T23:59:15Z", now) == "45s"
    assert age("2026-01-01T23:55:00Z", now) == "5m"
    assert age("2026-01-01T21:00:00Z", now) == "3h"
    assert age("2025-12-28T00:00:00Z", now) == "5d"
    assert age(None, now) == "-"


def test_counts_agree_with_their_number() -> None:
    assert count(1, "pod") == "1 pod" and count(0, "pod") == "0 pods" and count(3, "pod") == "3 pods"
    assert count(2, "replica") == "2 replicas" and count(2, "entry", "entries") == "2 entries"
