"""Canary analysis of one interval: samples of canary and stable in, a verdict per check out.

Pure: no clock, no network. The providers in ``modeldeploy.metrics`` produce the samples.

Verdicts
    Every check gives Pass, Fail or Inconclusive; the interval fails if any check fails, else is
    inconclusive if any check is, else passes. Inconclusive never counts as passed: a missing
    sample (provider outage, first scrape) or fewer than ``minSamples`` canary requests makes
    every check inconclusive, and a relative bound (``maxDrop``, ``maxRatio``) is inconclusive
    when the stable revision is missing or has fewer than ``minSamples`` requests.

Error rates are tested, not compared raw (at ``CONFIDENCE`` = 99 %, one-sided)
    ``min`` on successRate: exact binomial test of H0 "the canary's failure rate is at most
    1 - min" (Clopper-Pearson's tail, via the incomplete beta function). Fail when p < 0.01;
    Pass when the observed rate meets ``min``; in between (observed below ``min`` but not
    significantly) Inconclusive — the interval neither advances the step nor counts towards a
    rollback. Exact rather than normal-approximated because failures are rare events.

    ``maxDrop``: one-sided test of H0 "canary error rate <= stable error rate + maxDrop" in
    the same interval, by inverting Newcombe's hybrid score interval for a difference of
    proportions, continuity-corrected (built from two Wilson intervals). The canary usually has
    a ninth of the stable's requests (10 % weight) and failures are rare: there the plain
    two-proportion z-test calls one stray failure significant and the Farrington-Manning (Miettinen-
    Nurminen) score test rejects a true H0 up to 4 % of the time at a nominal 1 %; this test stays at <= 1.5 %
    (exact enumeration over n = 50..9000, rates 0.02 %..10 %, see tests/unit/test_statistics.py).
    Fail when p < 0.01; Pass when the observed drop is within maxDrop; otherwise Inconclusive.

    Why 99 %: a rollback needs ``failureLimit`` (default 2) failed intervals in a row, so a
    healthy canary is rolled back by chance with probability ~1e-4 per pair of intervals and
    check, while a real regression (10 % vs 0.1 % errors, 500 requests each) gives p ~ 1e-33
    against ``min: 0.99`` and p ~ 4e-10 against ``maxDrop: 0.005``: it fails in the first
    interval it is measured. Numbers for both, and the raw-threshold baseline: docs/analysis.md.

Latency, queue time and custom values
    p99 from histograms and means are already aggregates of the whole interval: they are
    compared directly with ``min``/``max`` and with ``maxRatio`` x the stable's value. A p99 of
    fewer than ``P99_MIN_REQUESTS`` (100) requests is little more than the slowest request, so
    below that latencyP99 is Inconclusive (for ``maxRatio``, on either side): at low traffic two
    healthy revisions' "p99"s differ by 1.5x often, and a raw comparison rolls them back.

``fixed_threshold_verdict`` is the comparison baseline for the benchmarks: Flagger's rule
(raw values against the thresholds, no statistics, a missing value counts as a failure).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import cast

from ..api.spec import Analysis, Check
from ..api.status import CheckResult, Verdict
from ..api.types import bound_value
from ..formatting import metric_value
from .statistics import exceedance_pvalue, risk_difference_pvalue

CONFIDENCE = 0.99
P99_MIN_REQUESTS = 100


@dataclass(frozen=True)
class RevisionSample:
    """One revision over one analysis interval."""

    requests: int  # requests answered (success + failure) in the interval
    failures: int
    latency_p99: float | None  # seconds
    latency_mean: float | None  # seconds
    queue_time_mean: float | None  # seconds per request
    custom: Mapping[str, float | None] = field(default_factory=dict)  # check name -> value

    @property
    def success_rate(self) -> float | None:
        return (self.requests - self.failures) / self.requests if self.requests > 0 else None


@dataclass(frozen=True)
class IntervalResult:
    verdict: Verdict
    checks: tuple[CheckResult, ...]
    failed: CheckResult | None  # the first failing check (for the rollback reason)


def custom_queries(analysis: Analysis) -> dict[str, str]:
    """Check name -> PromQL of the custom checks, for ``MetricsProvider.sample``."""
    return {check.display_name: check.query for check in analysis.checks if check.query}


def combine(verdicts: list[Verdict]) -> Verdict:
    if "Fail" in verdicts:
        return "Fail"
    if "Inconclusive" in verdicts or not verdicts:
        return "Inconclusive"
    return "Pass"


def value_of(check: Check, sample: RevisionSample | None) -> float | None:
    """The check's value for one revision (success rate as a fraction, times in seconds)."""
    if sample is None:
        return None
    if check.metric == "successRate":
        return sample.success_rate
    if check.metric == "latencyP99":
        return sample.latency_p99
    if check.metric == "latencyMean":
        return sample.latency_mean
    if check.metric == "queueTime":
        return sample.queue_time_mean
    return sample.custom.get(check.display_name)


def _fmt(value: float | None, metric: str | None = None) -> str:
    """A value or bound in its metric's unit, as `kubectl modeldeploy status` shows it (99.50%, 4.6ms)."""
    return "n/a" if value is None else metric_value(metric, value)


def _pfmt(p: float) -> str:
    return f"{p:.2g}"


@dataclass(frozen=True)
class _Bound:
    verdict: Verdict
    message: str


class _CheckContext:
    def __init__(self, check: Check, canary: RevisionSample, stable: RevisionSample | None, min_samples: int):
        self.check, self.canary, self.stable = check, canary, stable
        self.name = check.display_name
        self.canary_value = value_of(check, canary)
        self.stable_value = value_of(check, stable)
        self.stable_ok = stable is not None and stable.requests >= min_samples
        stable_n = stable.requests if stable is not None else 0
        self.counts = f"n={canary.requests}/{stable_n}"

    def detail(self, p: float | None = None) -> str:
        extra = f", p={_pfmt(p)}" if p is not None else ""
        return f"(stable {_fmt(self.stable_value, self.check.metric)}, {self.counts}{extra})"


def _min_success(ctx: _CheckContext, minimum: float) -> _Bound:
    n, failures = ctx.canary.requests, ctx.canary.failures
    rate = ctx.canary_value
    assert rate is not None
    p = exceedance_pvalue(failures, n, 1.0 - minimum)
    shown, bound = _fmt(rate, ctx.check.metric), _fmt(minimum, ctx.check.metric)
    if p < 1.0 - CONFIDENCE:
        return _Bound("Fail", f"{ctx.name} {shown} < min {bound} {ctx.detail(p)}")
    if rate >= minimum:
        return _Bound("Pass", f"{ctx.name} {shown} >= min {bound} {ctx.detail()}")
    return _Bound("Inconclusive",
                  f"{ctx.name} {shown} below min {bound} but not significantly {ctx.detail(p)}")


def _max_drop(ctx: _CheckContext, max_drop: float) -> _Bound:
    if not ctx.stable_ok or ctx.stable is None:
        return _Bound("Inconclusive", f"{ctx.name}: too few stable requests for maxDrop {ctx.detail()}")
    c, s = ctx.canary, ctx.stable
    p = risk_difference_pvalue(c.failures, c.requests, s.failures, s.requests, max_drop)
    drop = (ctx.stable_value or 0.0) - (ctx.canary_value or 0.0)
    metric = ctx.check.metric
    shown_drop, bound = _fmt(drop, metric), _fmt(max_drop, metric)
    if p < 1.0 - CONFIDENCE:
        return _Bound("Fail", f"{ctx.name} {_fmt(ctx.canary_value, metric)} dropped {shown_drop} > maxDrop {bound} "
                              f"{ctx.detail(p)}")
    if drop <= max_drop:
        return _Bound("Pass", f"{ctx.name} drop {shown_drop} <= maxDrop {bound} {ctx.detail()}")
    return _Bound("Inconclusive", f"{ctx.name} drop {shown_drop} above maxDrop {bound} but not significantly "
                                  f"{ctx.detail(p)}")


def _absolute(ctx: _CheckContext, minimum: float | None, maximum: float | None) -> _Bound:
    value = ctx.canary_value
    if value is None:
        return _Bound("Inconclusive", f"{ctx.name}: no canary value {ctx.detail()}")
    metric = ctx.check.metric
    if minimum is not None and value < minimum:
        return _Bound("Fail", f"{ctx.name} {_fmt(value, metric)} < min {_fmt(minimum, metric)} {ctx.detail()}")
    if maximum is not None and value > maximum:
        return _Bound("Fail", f"{ctx.name} {_fmt(value, metric)} > max {_fmt(maximum, metric)} {ctx.detail()}")
    return _Bound("Pass", f"{ctx.name} {_fmt(value, metric)} within bounds {ctx.detail()}")


def _max_ratio(ctx: _CheckContext, max_ratio: float) -> _Bound:
    canary, stable = ctx.canary_value, ctx.stable_value
    if canary is None:
        return _Bound("Inconclusive", f"{ctx.name}: no canary value {ctx.detail()}")
    if not ctx.stable_ok or stable is None:
        return _Bound("Inconclusive", f"{ctx.name}: too few stable requests for maxRatio {ctx.detail()}")
    if stable <= 0.0:
        # No ratio to a zero: the canary is no worse only if it is zero (or less) too.
        if canary <= stable:
            return _Bound("Pass", f"{ctx.name} {_fmt(canary, ctx.check.metric)} <= stable {ctx.detail()}")
        return _Bound("Inconclusive",
                      f"{ctx.name} {_fmt(canary, ctx.check.metric)}: stable is 0, no ratio {ctx.detail()}")
    ratio = canary / stable
    shown = _fmt(canary, ctx.check.metric)
    if ratio > max_ratio:
        return _Bound("Fail", f"{ctx.name} {shown} is {ratio:.3g}x stable > maxRatio {max_ratio:g} {ctx.detail()}")
    return _Bound("Pass", f"{ctx.name} {shown} is {ratio:.3g}x stable <= maxRatio {max_ratio:g} {ctx.detail()}")


def _check_bounds(ctx: _CheckContext) -> list[_Bound]:
    check = ctx.check
    maximum = bound_value(check.max) if check.max is not None else None
    bounds: list[_Bound] = []
    if check.metric == "successRate" and ctx.canary_value is not None:
        if check.min is not None:
            bounds.append(_min_success(ctx, check.min))
        if maximum is not None:
            bounds.append(_absolute(ctx, None, maximum))
        if check.max_drop is not None:
            bounds.append(_max_drop(ctx, check.max_drop))
    elif check.min is not None or maximum is not None:
        bounds.append(_absolute(ctx, check.min, maximum))
    if check.max_ratio is not None:
        bounds.append(_max_ratio(ctx, check.max_ratio))
    return bounds


def _result(ctx: _CheckContext, verdict: Verdict, message: str) -> CheckResult:
    return CheckResult(
        name=ctx.name, canary=ctx.canary_value, stable=ctx.stable_value, canary_samples=ctx.canary.requests,
        stable_samples=ctx.stable.requests if ctx.stable is not None else 0, verdict=verdict, message=message)


def _run_check(check: Check, canary: RevisionSample, stable: RevisionSample | None, min_samples: int) -> CheckResult:
    if check.metric == "latencyP99":
        min_samples = max(min_samples, P99_MIN_REQUESTS)
    ctx = _CheckContext(check, canary, stable, min_samples)
    if canary.requests < min_samples:
        return _result(ctx, "Inconclusive", f"{ctx.name}: {canary.requests} canary requests < minSamples "
                                            f"{min_samples} {ctx.detail()}")
    bounds = _check_bounds(ctx)
    verdict = combine([bound.verdict for bound in bounds])
    if not bounds:
        return _result(ctx, "Inconclusive", f"{ctx.name}: no canary value {ctx.detail()}")
    # The message explains the verdict: the bounds that decided it, first.
    message = "; ".join(bound.message for bound in bounds if bound.verdict == verdict)
    return _result(ctx, verdict, message)


def analyse(analysis: Analysis, canary: RevisionSample | None, stable: RevisionSample | None,
            canary_missing: str | None = None) -> IntervalResult:
    """Verdict of one interval. ``None`` samples mean the provider had nothing: inconclusive
    (``canary_missing``: the provider's reason, quoted in each check's message)."""
    if canary is None:
        why = f" ({canary_missing})" if canary_missing else ""
        checks = tuple(CheckResult(name=check.display_name, stable=value_of(check, stable),
                                   stable_samples=stable.requests if stable is not None else 0,
                                   verdict="Inconclusive", message=f"{check.display_name}: no canary metrics{why}")
                       for check in analysis.checks)
        return IntervalResult("Inconclusive", checks, None)
    results = tuple(_run_check(check, canary, stable, analysis.min_samples) for check in analysis.checks)
    failed = next((result for result in results if result.verdict == "Fail"), None)
    # Our own checks wrote these verdicts: they are Verdicts (status only reads them as open strings).
    return IntervalResult(combine([cast(Verdict, result.verdict) for result in results]), results, failed)


def fixed_threshold_verdict(analysis: Analysis, canary: RevisionSample | None,
                            stable: RevisionSample | None) -> Verdict:
    """Benchmark baseline, Flagger-style: raw values against the thresholds, no statistics.

    As in Flagger, a metric with no value counts as a failed check, and there is no
    minimum sample size; the caller rolls back after ``failureLimit`` consecutive Fails
    (Flagger's ``threshold``). Only for comparison: the operator uses :func:`analyse`.
    """
    if canary is None or canary.requests == 0:
        return "Fail"
    for check in analysis.checks:
        value = value_of(check, canary)
        reference = value_of(check, stable)
        if value is None:
            return "Fail"
        maximum = bound_value(check.max) if check.max is not None else None
        if (check.min is not None and value < check.min) or (maximum is not None and value > maximum):
            return "Fail"
        if check.max_drop is not None and (reference is None or reference - value > check.max_drop):
            return "Fail"
        if check.max_ratio is not None and (reference is None or (reference > 0 and value / reference > check.max_ratio)
                                            or (reference <= 0 < value)):
            return "Fail"
    return "Pass"
