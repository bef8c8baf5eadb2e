"""The statistics behind the analysis: exact tails, intervals, and the real false-fail rate."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from modeldeploy.rollout.statistics import (
    betainc,
    binomial_sf,
    exceedance_pvalue,
    risk_difference_pvalue,
    wilson_cc_interval,
    wilson_interval,
    z_quantile,
)


def exact_sf(k: int, n: int, p: float) -> float:
    return sum(math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(max(k, 0), n + 1))


def pmf(n: int, p: float) -> list[float]:
    out = []
    for k in range(n + 1):
        value = math.exp(math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)
                         + k * math.log(p) + (n - k) * math.log1p(-p))
        out.append(value)
        if k > n * p + 10 and value < 1e-12:
            break
    return out


@pytest.mark.parametrize(("k", "n", "p"), [(3, 50, 0.01), (4, 50, 0.01), (10, 200, 0.01), (1, 5, 0.3),
                                           (50, 500, 0.01), (400, 1000, 0.5), (0, 10, 0.2), (11, 10, 0.2)])
def test_binomial_sf_matches_the_sum(k: int, n: int, p: float) -> None:
    assert binomial_sf(k, n, p) == pytest.approx(exact_sf(k, n, p), rel=1e-9, abs=1e-300)


@given(st.floats(0.1, 50), st.floats(0.1, 50), st.floats(0.001, 0.999))
def test_betainc_symmetry(a: float, b: float, x: float) -> None:
    assert betainc(a, b, x) == pytest.approx(1 - betainc(b, a, 1 - x), abs=1e-9)


def test_z_quantile() -> None:
    assert z_quantile(0.99) == pytest.approx(2.3263, abs=1e-4)


def test_exceedance_pvalue_edges() -> None:
    assert exceedance_pvalue(0, 100, 0.01) == 1.0
    assert exceedance_pvalue(1, 100, 0.0) == 0.0  # min 1.0: any failure is certain evidence
    assert exceedance_pvalue(4, 50, 0.01) < 0.01 < exceedance_pvalue(3, 50, 0.01)


@given(st.integers(1, 5000), st.data())
def test_wilson_intervals_contain_the_estimate(n: int, data: st.DataObject) -> None:
    x = data.draw(st.integers(0, n))
    for lower, upper in (wilson_interval(x, n, 2.33), wilson_cc_interval(x, n, 2.33)):
        assert 0.0 <= lower <= x / n <= upper <= 1.0
    cc_lower, cc_upper = wilson_cc_interval(x, n, 2.33)
    lower, upper = wilson_interval(x, n, 2.33)
    assert cc_lower <= lower + 1e-12 and cc_upper >= upper - 1e-12  # the correction only widens


def test_risk_difference_ignores_one_stray_failure() -> None:
    # 1 of 200 canary requests failed, none of 2000 stable ones: no evidence (z-test says p=0.0008).
    assert risk_difference_pvalue(1, 200, 0, 2000, 0.0) > 0.01
    assert risk_difference_pvalue(3, 200, 0, 2000, 0.0) < 0.001
    assert risk_difference_pvalue(50, 500, 1, 500, 0.005) < 1e-8
    assert risk_difference_pvalue(5, 500, 0, 500, 0.01) == 1.0  # observed difference within the margin


@given(st.integers(1, 3000), st.integers(1, 3000), st.data())
def test_risk_difference_pvalue_is_monotone_in_canary_failures(n1: int, n2: int, data: st.DataObject) -> None:
    x1 = data.draw(st.integers(0, n1 - 1))
    x2 = data.draw(st.integers(0, n2))
    margin = data.draw(st.sampled_from([0.0, 0.005, 0.02]))
    assert risk_difference_pvalue(x1 + 1, n1, x2, n2, margin) <= risk_difference_pvalue(x1, n1, x2, n2, margin)


def _false_fail_rate(n1: int, n2: int, p2: float, margin: float, alpha: float = 0.01) -> float:
    canary, stable = pmf(n1, p2 + margin), pmf(n2, p2)
    return sum(pa * pb for x1, pa in enumerate(canary) if pa > 1e-13 for x2, pb in enumerate(stable)
               if pb > 1e-13 and risk_difference_pvalue(x1, n1, x2, n2, margin) < alpha)


@pytest.mark.parametrize(("n1", "n2"), [(50, 450), (200, 1800), (500, 500)])
@pytest.mark.parametrize("p2", [0.0005, 0.005, 0.05])
@pytest.mark.parametrize("margin", [0.0, 0.005])
def test_real_false_fail_rate_on_the_h0_boundary(n1: int, n2: int, p2: float, margin: float) -> None:
    # Exact enumeration: at canary rate = stable rate + margin the test rejects at most ~1.5 % (nominal 1 %).
    assert _false_fail_rate(n1, n2, p2, margin) <= 0.015
