"""Small, dependency-free statistics for canary analysis (``math`` only: the operator image stays light).

- :func:`binomial_sf` — exact upper tail of the binomial distribution, through the regularized
  incomplete beta function (a continued fraction, so it costs the same at n = 10 or n = 10**7).
- :func:`exceedance_pvalue` — one-sided exact binomial test "failures exceed a fixed rate".
- :func:`wilson_interval` — Wilson score interval of one proportion.
- :func:`risk_difference_pvalue` — one-sided test of ``p1 - p2 <= margin`` by inverting
  Newcombe's hybrid score interval with continuity correction (Newcombe 1998, method 11), which
  keeps its coverage with rare events, small counts and unequal group sizes (a canary at 10 %
  weight has a ninth of the stable's requests), where the plain two-proportion z-test and the
  Farrington-Manning score test reject a true H0 several times more often than nominal.
"""

from __future__ import annotations

import math
from statistics import NormalDist  # the standard library's module, not this one (absolute import)

_NORMAL = NormalDist()


def z_quantile(confidence: float) -> float:
    """One-sided standard-normal critical value: 0.99 -> 2.326."""
    return _NORMAL.inv_cdf(confidence)


def _beta_continued_fraction(a: float, b: float, x: float) -> float:
    # Lentz's method for the continued fraction of I_x(a, b) (Numerical Recipes 6.4).
    tiny = 1e-300
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 10_000):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 3e-16:
            break
    return h


def betainc(a: float, b: float, x: float) -> float:
    """Regularized incomplete beta function I_x(a, b) for a, b > 0."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    front = math.exp(log_front)
    # The fraction converges fast only on one side of the mean; use the symmetry otherwise.
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _beta_continued_fraction(a, b, x) / a
    return 1.0 - front * _beta_continued_fraction(b, a, 1.0 - x) / b


def binomial_sf(k: int, n: int, p: float) -> float:
    """P(X >= k) for X ~ Binomial(n, p)."""
    if k <= 0:
        return 1.0
    if k > n:
        return 0.0
    if p <= 0.0:
        return 0.0
    if p >= 1.0:
        return 1.0
    return min(1.0, max(0.0, betainc(k, n - k + 1, p)))


def exceedance_pvalue(failures: int, n: int, rate: float) -> float:
    """Exact one-sided p-value of H0 "the true failure rate is <= rate" after `failures` of `n`."""
    return binomial_sf(failures, n, min(1.0, max(0.0, rate)))


def wilson_interval(successes: int, n: int, z: float) -> tuple[float, float]:
    """Wilson score interval of a proportion at critical value z (z = 0 gives the point estimate)."""
    if n <= 0:
        return 0.0, 1.0
    p = successes / n
    z2 = z * z
    denominator = 1.0 + z2 / n
    centre = (p + z2 / (2 * n)) / denominator
    half = z * math.sqrt(max(0.0, p * (1 - p) / n + z2 / (4 * n * n))) / denominator
    return max(0.0, min(centre - half, p)), min(1.0, max(centre + half, p))  # rounding never excludes p


def wilson_cc_interval(successes: int, n: int, z: float) -> tuple[float, float]:
    """Wilson score interval with continuity correction (Newcombe 1998, method 4)."""
    if n <= 0:
        return 0.0, 1.0
    p, z2 = successes / n, z * z
    q = 1.0 - p
    lower = 0.0
    if successes > 0:
        lower = (2 * n * p + z2 - 1 - z * math.sqrt(max(0.0, z2 - 2 - 1 / n + 4 * p * (n * q + 1)))) / (2 * (n + z2))
    upper = 1.0
    if successes < n:
        upper = (2 * n * p + z2 + 1 + z * math.sqrt(max(0.0, z2 + 2 - 1 / n + 4 * p * (n * q - 1)))) / (2 * (n + z2))
    return max(0.0, min(lower, p)), min(1.0, max(upper, p))


def newcombe_lower(x1: int, n1: int, x2: int, n2: int, z: float) -> float:
    """Lower bound of p1 - p2 (Newcombe's hybrid score interval, continuity-corrected) at critical value z."""
    p1, p2 = x1 / n1, x2 / n2
    lower1, _ = wilson_cc_interval(x1, n1, z)
    _, upper2 = wilson_cc_interval(x2, n2, z)
    return (p1 - p2) - math.sqrt((p1 - lower1) ** 2 + (upper2 - p2) ** 2)


def risk_difference_pvalue(x1: int, n1: int, x2: int, n2: int, margin: float) -> float:
    """One-sided p-value of H0 "p1 - p2 <= margin" (x1 of n1 vs x2 of n2 events).

    It is the smallest alpha at which Newcombe's lower bound at z = z(1 - alpha) exceeds the
    margin, found by bisection on z (the bound falls monotonically as z grows). Returns 1.0
    when the observed difference is already on H0's side.
    """
    if n1 <= 0 or n2 <= 0 or x1 / n1 - x2 / n2 <= margin:
        return 1.0
    low, high = 0.0, 38.0  # z = 38 is p ~ 1e-316: beyond that, report 0
    if newcombe_lower(x1, n1, x2, n2, high) > margin:
        return 0.0
    for _ in range(80):
        mid = (low + high) / 2
        if newcombe_lower(x1, n1, x2, n2, mid) > margin:
            low = mid
        else:
            high = mid
    return _normal_upper_tail(low)


def _normal_upper_tail(z: float) -> float:
    # 1 - cdf(z) loses all precision past z ~ 8; erfc keeps it.
    return 0.5 * math.erfc(z / math.sqrt(2.0))
