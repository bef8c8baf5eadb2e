"""A p99 of a handful of requests is not judged: low traffic must not roll back on latency noise."""

from __future__ import annotations

from modeldeploy.api.spec import Analysis
from modeldeploy.rollout.analysis import P99_MIN_REQUESTS, RevisionSample, analyse

CHECKS = Analysis.model_validate({"minSamples": 20, "checks": [{"metric": "latencyP99", "maxRatio": 1.5}]})


def sample(requests: int, p99: float) -> RevisionSample:
    return RevisionSample(requests=requests, failures=0, latency_p99=p99, latency_mean=p99 / 3, queue_time_mean=0.0)


def test_p99_below_the_quantile_floor_is_inconclusive_on_either_side() -> None:
    few = P99_MIN_REQUESTS - 1
    assert analyse(CHECKS, sample(few, 0.3), sample(500, 0.1)).verdict == "Inconclusive"
    assert analyse(CHECKS, sample(500, 0.3), sample(few, 0.1)).verdict == "Inconclusive"


def test_p99_with_enough_requests_is_judged() -> None:
    assert analyse(CHECKS, sample(P99_MIN_REQUESTS, 0.3), sample(500, 0.1)).verdict == "Fail"
    assert analyse(CHECKS, sample(P99_MIN_REQUESTS, 0.12), sample(500, 0.1)).verdict == "Pass"
