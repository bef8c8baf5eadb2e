"""PrometheusProvider against a real Prometheus (Debian's `prometheus` package) scraping fake pods.

CI installs it with `apt-get install -y --no-install-recommends prometheus`; without the
binary these tests fail (tests/docs/test_ci.py checks that they do).
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from modeldeploy.metrics import MetricsUnavailable, PrometheusProvider, RevisionTarget
from modeldeploy_sandbox.prometheus import PrometheusServer, StaticTarget

from .conftest import FakePod

pytestmark = [
    # No skip: without the binary these tests fail with PrometheusServer's "no prometheus binary (apt-get ...)".
    pytest.mark.timeout(60),
]

CANARY = RevisionTarget("ml", "resnet", "resnet-canary", "resnet")
STABLE = RevisionTarget("ml", "resnet", "resnet-stable", "resnet")


class Setup:
    def __init__(self, server: PrometheusServer, canary: FakePod, stable: FakePod) -> None:
        self.server, self.address, self.canary, self.stable = server, server.url, canary, stable
        self.provider = PrometheusProvider(server.url)

    def scraped(self, revision: str, requests: int, timeout: float = 15) -> None:
        """Wait until Prometheus has seen `requests` answered requests of the revision, and one more scrape."""
        query = (f'sum(nv_inference_request_success{{revision="{revision}"}}) '
                 f'+ sum(nv_inference_request_failure{{revision="{revision}"}})')
        deadline = time.monotonic() + timeout
        while self.provider.query(query) != requests:
            assert time.monotonic() < deadline, f"Prometheus never saw {requests} requests of {revision}"
            time.sleep(0.2)
        time.sleep(1.2)


def _targets(canary: FakePod, stable: FakePod) -> list[StaticTarget]:
    return [StaticTarget(pod.endpoint, {"namespace": "ml", "revision": revision, "pod": f"{revision}-0"})
            for pod, revision in ((canary, CANARY.revision), (stable, STABLE.revision))]


@pytest.fixture(scope="module")
def prometheus() -> Iterator[Setup]:
    canary, stable = FakePod("127.0.0.2"), FakePod("127.0.0.3")
    # Series must exist before the traffic: increase() ignores a series' first value.
    canary.serve("resnet", ok=1, failed=1)
    stable.serve("resnet", ok=1, failed=1)
    try:
        with PrometheusServer(static=_targets(canary, stable)) as server:  # waits for /-/ready
            setup = Setup(server, canary, stable)
            setup.scraped(CANARY.revision, 2)
            setup.scraped(STABLE.revision, 2)
            yield setup
    finally:
        canary.stop()
        stable.stop()


def test_builtin_queries(prometheus: Setup) -> None:
    prometheus.canary.serve("resnet", ok=270, failed=30, seconds=0.2, queue_us=900)
    prometheus.stable.serve("resnet", ok=995, failed=5, seconds=0.004)
    prometheus.scraped(CANARY.revision, 302)
    prometheus.scraped(STABLE.revision, 1002)
    canary = prometheus.provider.sample(CANARY, 30, {})
    stable = prometheus.provider.sample(STABLE, 30, {})
    assert canary is not None and stable is not None
    # increase() extrapolates to the window's edges: counts are close, ratios exact.
    assert canary.requests == pytest.approx(300, rel=0.25) and stable.requests == pytest.approx(1000, rel=0.25)
    assert canary.failures / canary.requests == pytest.approx(0.1, abs=0.01)
    assert stable.failures / stable.requests == pytest.approx(0.005, abs=0.002)
    assert canary.latency_mean == pytest.approx(0.2, rel=0.05)
    assert stable.latency_mean == pytest.approx(0.004, rel=0.05)
    assert canary.queue_time_mean == pytest.approx(900e-6 / 270, rel=0.05)
    assert canary.latency_p99 is not None and 0.1 < canary.latency_p99 <= 0.25
    assert stable.latency_p99 is not None and 0.0025 < stable.latency_p99 <= 0.005


def test_custom_queries(prometheus: Setup) -> None:
    queries = {
        "failures": 'sum(increase(nv_inference_request_failure{namespace="{{namespace}}",'
                    'revision="{{revision}}"}[{{interval}}]))',
        "named": 'count(nv_inference_request_success{namespace="{{namespace}}",model="{{name}}",'
                  'pod="{{revision}}-0"}) * 7',
        # Answers 7 if sent, but does not pin the namespace: never sent (another namespace's data).
        "elsewhere": 'count(nv_inference_request_success{model="{{name}}",pod="{{revision}}-0"}) * 7',
        "scalar": "scalar(vector(3))",
        "nan": "scalar(vector(0) / 0)",
        "empty": 'nv_inference_request_success{revision="nope"}',
        "broken": "sum(rate(",
    }
    sample = prometheus.provider.sample(CANARY, 30, queries)
    assert sample is not None
    failures = sample.custom["failures"]
    assert failures is not None and failures == pytest.approx(30, rel=0.25)
    assert sample.custom["named"] == 7 and sample.custom["scalar"] == 3
    assert sample.custom["elsewhere"] is None
    assert sample.custom["nan"] is None and sample.custom["empty"] is None and sample.custom["broken"] is None


def test_unknown_revision_has_no_sample(prometheus: Setup) -> None:
    missing = RevisionTarget("ml", "resnet", "resnet-unknown", "resnet")
    assert prometheus.provider.sample(missing, 30, {}) is None


def test_down_prometheus_is_unavailable_not_a_verdict(prometheus: Setup) -> None:
    # Runs last in this module: stops the shared Prometheus.
    prometheus.server.stop()
    assert not prometheus.provider.is_online()
    with pytest.raises(MetricsUnavailable, match=r"Prometheus at http://127\.0\.0\.1"):
        prometheus.provider.sample(CANARY, 30, {"x": "vector(1)"})
