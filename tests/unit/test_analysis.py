"""Interval analysis: verdict rules, messages, and the statistical properties the design asks for."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from modeldeploy.api.spec import Analysis, Check
from modeldeploy.rollout.analysis import (
    IntervalResult,
    RevisionSample,
    analyse,
    custom_queries,
    fixed_threshold_verdict,
)

ANALYSIS = Analysis(min_samples=200, checks=[
    Check(metric="successRate", min=0.99, max_drop=0.005),
    Check(metric="latencyP99", max="250ms", max_ratio=1.2),
    Check(metric="queueTime", max_ratio=2),
])


def sample(requests: int = 1000, failures: int = 0, p99: float | None = 0.1, mean: float | None = 0.05,
           queue: float | None = 0.001, **custom: float | None) -> RevisionSample:
    return RevisionSample(requests, failures, p99, mean, queue, custom)


def by_name(result: IntervalResult) -> dict[str, str]:
    return {check.name: check.verdict for check in result.checks}


def test_healthy_canary_passes_with_values_recorded() -> None:
    result = analyse(ANALYSIS, sample(512, 1), sample(4608, 4))
    assert result.verdict == "Pass" and result.failed is None
    rate = result.checks[0]
    assert rate.canary == pytest.approx(511 / 512) and rate.stable == pytest.approx(4604 / 4608)
    assert (rate.canary_samples, rate.stable_samples) == (512, 4608)
    assert result.checks[1].canary == 0.1


def test_regression_fails_with_a_readable_reason() -> None:
    result = analyse(ANALYSIS, sample(512, 50), sample(498, 0))
    assert result.verdict == "Fail"
    assert result.failed is not None and result.failed.name == "successRate"
    assert "successRate 90.23% < min 99.00% (stable 100.00%, n=512/498, p=" in result.failed.message
    assert "maxDrop 0.50%" in result.failed.message


def test_latency_bounds_compare_values_directly() -> None:
    slow = analyse(ANALYSIS, sample(p99=0.3), sample(p99=0.28))
    assert by_name(slow)["latencyP99"] == "Fail" and "300.0ms > max 250.0ms (stable 280.0ms" in slow.checks[1].message
    ratio = analyse(ANALYSIS, sample(p99=0.2), sample(p99=0.1))
    assert by_name(ratio)["latencyP99"] == "Fail" and "2x stable > maxRatio 1.2" in ratio.checks[1].message
    assert by_name(analyse(ANALYSIS, sample(p99=0.11), sample(p99=0.1)))["latencyP99"] == "Pass"


def test_missing_canary_is_inconclusive() -> None:
    result = analyse(ANALYSIS, None, sample())
    assert result.verdict == "Inconclusive" and {c.verdict for c in result.checks} == {"Inconclusive"}
    assert result.checks[0].stable == 1.0


def test_too_few_canary_requests_is_inconclusive_even_when_terrible() -> None:
    result = analyse(ANALYSIS, sample(199, 199), sample())
    assert result.verdict == "Inconclusive" and "minSamples 200" in result.checks[0].message


def test_relative_bounds_need_enough_stable_requests() -> None:
    result = analyse(Analysis(checks=[Check(metric="latencyP99", max_ratio=1.2)]), sample(), sample(requests=10))
    assert result.verdict == "Inconclusive" and "too few stable requests" in result.checks[0].message
    absolute = analyse(Analysis(checks=[Check(metric="latencyP99", max="1s")]), sample(), None)
    assert absolute.verdict == "Pass"  # absolute bounds need no stable


def test_below_min_but_not_significantly_is_inconclusive() -> None:
    # 3 failures in 200 (98.5 %) is below min 0.99 but p = 0.32: neither proof of a regression nor a pass.
    result = analyse(Analysis(checks=[Check(metric="successRate", min=0.99)]), sample(200, 3), None)
    assert result.verdict == "Inconclusive" and "not significantly" in result.checks[0].message


def test_missing_latency_is_inconclusive() -> None:
    assert by_name(analyse(ANALYSIS, sample(p99=None), sample()))["latencyP99"] == "Inconclusive"


def test_custom_checks() -> None:
    analysis = Analysis(checks=[Check(name="gpuUtil", query="avg(x{revision='{{revision}}'})", max=0.9,
                                      max_ratio=1.5)])
    assert custom_queries(analysis) == {"gpuUtil": "avg(x{revision='{{revision}}'})"}
    assert analyse(analysis, sample(gpuUtil=0.5), sample(gpuUtil=0.4)).verdict == "Pass"
    assert analyse(analysis, sample(gpuUtil=0.95), sample(gpuUtil=0.9)).verdict == "Fail"
    assert analyse(analysis, sample(gpuUtil=0.8), sample(gpuUtil=0.4)).verdict == "Fail"
    assert analyse(analysis, sample(), sample()).verdict == "Inconclusive"  # direct provider: no value
    assert analyse(analysis, sample(gpuUtil=0.0), sample(gpuUtil=0.0)).verdict == "Pass"


def test_baseline_is_raw_and_eager() -> None:
    # One failure in 60 requests breaks min 0.99 for Flagger's rule; the statistical analysis waits.
    analysis = Analysis(min_samples=50, checks=[Check(metric="successRate", min=0.99)])
    assert fixed_threshold_verdict(analysis, sample(60, 1), sample(540, 0)) == "Fail"
    assert analyse(analysis, sample(60, 1), sample(540, 0)).verdict != "Fail"
    assert fixed_threshold_verdict(analysis, None, sample()) == "Fail"  # no data counts as failed
    assert fixed_threshold_verdict(ANALYSIS, sample(), sample()) == "Pass"
    assert fixed_threshold_verdict(ANALYSIS, sample(p99=0.2), sample(p99=0.1)) == "Fail"


# ----- properties -----

analyses = st.builds(
    lambda min_samples, minimum, drop: Analysis(min_samples=min_samples, checks=[
        Check(metric="successRate", min=minimum, max_drop=drop), Check(metric="latencyP99", max_ratio=1.5)]),
    st.integers(1, 1000), st.sampled_from([0.9, 0.99, 0.999]), st.sampled_from([0.0, 0.005, 0.02]))


@st.composite
def samples(draw: st.DrawFn, max_requests: int = 20_000) -> RevisionSample:
    requests = draw(st.integers(0, max_requests))
    failures = draw(st.integers(0, requests))
    return sample(requests, failures, draw(st.floats(0.001, 5)), draw(st.floats(0.001, 5)), 0.001)


@given(analyses, samples(), st.one_of(st.none(), samples()))
def test_never_pass_with_fewer_than_min_samples(analysis: Analysis, canary: RevisionSample,
                                                stable: RevisionSample | None) -> None:
    result = analyse(analysis, canary, stable)
    if canary.requests < analysis.min_samples:
        assert result.verdict == "Inconclusive"
    if result.verdict == "Pass":
        assert canary.requests >= analysis.min_samples


@given(analyses, st.one_of(st.none(), samples()))
def test_missing_sample_is_inconclusive(analysis: Analysis, other: RevisionSample | None) -> None:
    assert analyse(analysis, None, other).verdict == "Inconclusive"
    if other is not None and other.requests >= analysis.min_samples:
        assert analyse(analysis, other, None).verdict != "Pass"  # relative checks need the stable


@given(analyses, st.integers(1, 50_000), st.floats(0, 0.001), st.floats(0.001, 5))
def test_identical_healthy_revisions_never_fail(analysis: Analysis, requests: int, error_rate: float,
                                                p99: float) -> None:
    twin = sample(requests, round(requests * error_rate), p99)
    assert analyse(analysis, twin, twin).verdict != "Fail"


@given(st.integers(500, 100_000), st.integers(500, 100_000), st.sampled_from([0.9, 0.99, 0.999]),
       st.sampled_from([0.0, 0.005, 0.02]))
def test_ten_percent_errors_against_a_tenth_of_a_percent_always_fail(n_canary: int, n_stable: int, minimum: float,
                                                                     drop: float) -> None:
    analysis = Analysis(min_samples=200, checks=[Check(metric="successRate", max_drop=drop)])
    canary, stable = sample(n_canary, n_canary // 10), sample(n_stable, n_stable // 1000)
    assert analyse(analysis, canary, stable).verdict == "Fail"
    with_min = Analysis(min_samples=200, checks=[Check(metric="successRate", min=minimum)])
    if minimum >= 0.99:
        assert analyse(with_min, canary, stable).verdict == "Fail"


@given(analyses, samples(), samples(), st.integers(1, 1000))
def test_more_failures_never_turn_fail_into_pass(analysis: Analysis, canary: RevisionSample,
                                                 stable: RevisionSample, extra: int) -> None:
    worse = sample(canary.requests, min(canary.requests, canary.failures + extra), canary.latency_p99,
                   canary.latency_mean, canary.queue_time_mean)
    order = {"Pass": 0, "Inconclusive": 1, "Fail": 2}
    before, after = analyse(analysis, canary, stable).verdict, analyse(analysis, worse, stable).verdict
    assert order[after] >= order[before]  # so a Fail stays a Fail, and nothing becomes a Pass
