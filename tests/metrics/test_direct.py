"""DirectProvider against real HTTP /metrics endpoints (and one real modelserver process)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path

import pytest

from modeldeploy.api.spec import Analysis, Provider
from modeldeploy.metrics import DirectProvider, RevisionTarget, provider_for
from modeldeploy.metrics.exposition import histogram_quantile
from modeldeploy.rollout.analysis import analyse

from .conftest import FakePod, free_port

pytestmark = pytest.mark.timeout(60)


def target(*pods: FakePod, extra: tuple[str, ...] = ()) -> RevisionTarget:
    return RevisionTarget(namespace="ml", name="resnet", revision="resnet-a41d0", model="resnet",
                          endpoints=tuple(pod.endpoint for pod in pods) + extra)


def test_first_sample_is_a_baseline_then_deltas_are_summed_over_pods(pods: list[FakePod]) -> None:
    provider = DirectProvider()
    a, b, _ = pods
    a.serve("resnet", ok=50)  # before the baseline: never counted
    assert provider.sample(target(a, b), 30, {}) is None
    a.serve("resnet", ok=300, failed=10, seconds=0.004, queue_us=620)
    b.serve("resnet", ok=190, seconds=0.004)
    b.serve("other-model", ok=1000, failed=1000)  # another model on the same server is ignored
    sample = provider.sample(target(a, b), 30, {"custom": "up"})
    assert sample is not None
    assert (sample.requests, sample.failures) == (500, 10)
    assert sample.latency_mean == pytest.approx(0.004, rel=1e-3)
    assert sample.queue_time_mean == pytest.approx(620e-6 / 490)
    assert sample.latency_p99 is not None and 0.0025 < sample.latency_p99 <= 0.005
    assert sample.custom == {"custom": None}  # PromQL needs Prometheus
    again = provider.sample(target(a, b), 30, {})
    assert again is not None and (again.requests, again.failures) == (0, 0) and again.latency_p99 is None


def test_p99_interpolates_inside_the_bucket_like_prometheus(pods: list[FakePod]) -> None:
    provider = DirectProvider()
    pod = pods[0]
    provider.sample(target(pod), 30, {})
    pod.serve("resnet", ok=90, seconds=0.004)  # bucket le=0.005
    pod.serve("resnet", ok=10, seconds=0.2)  # bucket le=0.25
    sample = provider.sample(target(pod), 30, {})
    # rank 99 of 100 lies 9/10 of the way through the (0.1, 0.25] bucket
    assert sample is not None and sample.latency_p99 == pytest.approx(0.1 + 0.15 * 0.9)


def test_restarted_pod_counts_from_zero(pods: list[FakePod]) -> None:
    provider = DirectProvider()
    a, b, _ = pods
    a.serve("resnet", ok=1000, failed=5)
    b.serve("resnet", ok=1000)
    provider.sample(target(a, b), 30, {})
    a.restart()
    a.serve("resnet", ok=40, failed=2)
    b.serve("resnet", ok=60)
    sample = provider.sample(target(a, b), 30, {})
    assert sample is not None and (sample.requests, sample.failures) == (102, 2)


def test_unreachable_new_and_gone_pods(pods: list[FakePod]) -> None:
    provider = DirectProvider(timeout=0.5)
    a, b, c = pods
    dead = f"127.0.0.5:{free_port('127.0.0.5')}"  # nothing listens there
    provider.sample(target(a, b, extra=(dead,)), 30, {})
    a.serve("resnet", ok=100)
    b.serve("resnet", ok=200)
    c.serve("resnet", ok=400)  # c is new: baselined now, counted from the next interval
    sample = provider.sample(target(a, b, c, extra=(dead,)), 30, {})
    assert sample is not None and sample.requests == 300
    b.stop()
    a.serve("resnet", ok=10)
    c.serve("resnet", ok=20)
    sample = provider.sample(target(a, b, c), 30, {})  # b unreachable: skipped
    assert sample is not None and sample.requests == 30
    a.serve("resnet", ok=1)
    sample = provider.sample(target(a), 30, {})  # c is gone from the endpoints
    assert sample is not None and sample.requests == 1
    a.stop()
    c.stop()
    started = time.monotonic()
    assert provider.sample(target(a, c), 30, {}) is None  # every pod unreachable
    assert time.monotonic() - started < 2
    assert provider.sample(target(), 30, {}) is None  # no ready pod at all


def test_prime_starts_a_fresh_interval_and_revisions_are_separate(pods: list[FakePod]) -> None:
    provider = DirectProvider()
    pod = pods[0]
    provider.prime(target(pod))
    pod.serve("resnet", ok=7)
    provider.prime(target(pod))  # a new step began: what came before does not count
    pod.serve("resnet", ok=3)
    other = RevisionTarget("other-ns", "resnet", "resnet-a41d0", "resnet", (pod.endpoint,))
    assert provider.sample(other, 30, {}) is None  # same revision name in another namespace: own baseline
    sample = provider.sample(target(pod), 30, {})
    assert sample is not None and sample.requests == 3


def test_provider_for_keeps_one_direct_provider(monkeypatch: pytest.MonkeyPatch) -> None:
    assert provider_for(Provider()) is provider_for(Provider(type="direct"))
    monkeypatch.setenv("MODELDEPLOY_PROMETHEUS_ADDRESSES", "http://127.0.0.1")  # the operator's allow-list
    prometheus = provider_for(Provider(type="prometheus", address="http://127.0.0.1:9"))
    assert type(prometheus).__name__ == "PrometheusProvider" and not prometheus.is_online()


@pytest.mark.parametrize(("buckets", "expected"), [
    ({0.1: 0.0, 0.5: 0.0, math.inf: 0.0}, None),
    ({0.1: 10.0, 0.5: 10.0, math.inf: 10.0}, 0.099),  # lowest bucket interpolates from 0
    ({0.1: 0.0, 0.5: 0.0, math.inf: 5.0}, 0.5),  # rank in +Inf: the highest finite bound
    ({0.1: 50.0, 0.5: 100.0, math.inf: 100.0}, 0.1 + 0.4 * 49 / 50),
    ({0.1: 5.0}, None),  # no +Inf bucket: not a histogram
])
def test_histogram_quantile(buckets: dict[float, float], expected: float | None) -> None:
    result = histogram_quantile(0.99, buckets)
    assert result == (pytest.approx(expected) if expected is not None else None)


# ----- a real modelserver process -----

def _identity_model(repo: Path) -> None:
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Identity", ["X"], ["Y"])], "identity",
                              [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["N", 4])],
                              [helper.make_tensor_value_info("Y", TensorProto.FLOAT, ["N", 4])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    (repo / "ident" / "1").mkdir(parents=True)
    onnx.save(model, str(repo / "ident" / "1" / "model.onnx"))


def _post(url: str, payload: Mapping[str, object]) -> int:
    request = urllib.request.Request(url, json.dumps(payload).encode(), {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return error.code


def test_real_modelserver_deltas(tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    _identity_model(tmp_path)
    http, grpc, metrics = free_port(), free_port(), free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "modelserver", "serve", "--model-repository", str(tmp_path), "--host", "127.0.0.1",
         "--http-port", str(http), "--grpc-port", str(grpc), "--metrics-port", str(metrics),
         "--intra-op-threads", "1", "--drain-timeout", "1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while _status(f"http://127.0.0.1:{http}/v2/models/ident/ready") != 200:
            assert proc.poll() is None and time.monotonic() < deadline, "modelserver did not become ready"
            time.sleep(0.1)
        provider = DirectProvider()
        revision = RevisionTarget("ml", "ident", "ident-1", "ident", (f"127.0.0.1:{metrics}",))
        assert provider.sample(revision, 10, {}) is None
        infer = f"http://127.0.0.1:{http}/v2/models/ident/infer"
        good = {"inputs": [{"name": "X", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}]}
        bad = {"inputs": [{"name": "NOPE", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}]}
        assert [_post(infer, good) for _ in range(25)] == [200] * 25
        assert all(400 <= _post(infer, bad) < 500 for _ in range(3))
        sample = provider.sample(revision, 10, {})
        assert sample is not None and (sample.requests, sample.failures) == (28, 3)
        assert sample.latency_p99 is not None and 0 < sample.latency_p99 < 1
        assert sample.latency_mean is not None and 0 < sample.latency_mean < 1
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return int(response.status)
    except (OSError, urllib.error.HTTPError):
        return 0


def test_a_run_is_sampled_once_so_a_re_plan_gets_the_same_interval(pods: list[FakePod]) -> None:
    """A status Conflict re-plans at once: the same run must not re-sample a 0.2 s interval."""
    provider = DirectProvider()
    pod = pods[0]
    provider.sample(target(pod), 30, {}, run="r/0/t0")
    pod.serve("resnet", ok=400)
    first = provider.sample(target(pod), 30, {}, run="r/0/t1")
    again = provider.sample(target(pod), 30, {}, run="r/0/t1")  # the re-plan after a Conflict
    assert first is not None and again == first and first.requests == 400
    pod.serve("resnet", ok=100)
    assert (provider.sample(target(pod), 30, {}, run="r/0/t2") or first).requests == 100  # the next run


def test_a_new_process_measures_from_the_baseline_status_kept(pods: list[FakePod]) -> None:
    """The baselines go into status.analysis: a restarted operator loses no interval."""
    before_restart = DirectProvider()
    a, b, _ = pods
    a.serve("resnet", ok=1000, seconds=0.004)
    before_restart.prime(target(a, b))
    saved = json.loads(json.dumps(before_restart.baseline(target(a, b))))  # as status stores it
    assert set(saved) == {a.endpoint, b.endpoint}
    a.serve("resnet", ok=300, failed=3, seconds=0.2)
    after_restart = DirectProvider()
    after_restart.restore(target(a, b), saved)
    sample = after_restart.sample(target(a, b), 30, {})
    assert sample is not None and (sample.requests, sample.failures) == (303, 3)
    assert sample.latency_p99 is not None and sample.latency_p99 > 0.1  # +Inf bucket bound survived JSON
    assert DirectProvider().sample(target(a, b), 30, {}) is None  # without it: an inconclusive first interval


def test_forget_drops_a_deleted_model_deployments_baselines(pods: list[FakePod]) -> None:
    provider = DirectProvider()
    provider.prime(target(pods[0]))
    other = RevisionTarget(namespace="ml", name="bert", revision="bert-00000", model="bert",
                           endpoints=(pods[1].endpoint,))
    provider.prime(other)
    provider.forget("ml", "resnet")
    assert provider.baseline(target(pods[0])) == {} and provider.baseline(other) != {}


def test_a_deleted_revision_keeps_no_baselines(pods: list[FakePod]) -> None:
    """The soak's RSS grew with every promoted revision until baselines of deleted ones were dropped."""
    provider = DirectProvider()
    old = target(pods[0])
    new = RevisionTarget(namespace="ml", name="resnet", revision="resnet-b0000", model="resnet",
                         endpoints=(pods[1].endpoint,))
    provider.prime(old)
    provider.prime(new)
    provider.sample(old, 30, {}, run="r/0/a")
    provider.forget_revision("ml", old.revision)
    assert provider.baseline(old) == {} and provider.baseline(new) != {} and len(provider) == 1


def test_an_empty_interval_says_why_and_a_refusing_pod_is_named(pods: list[FakePod]) -> None:
    provider = DirectProvider(timeout=0.5)
    a, b, _ = pods
    assert provider.sample(target(a, b), 30, {}) is None
    assert provider.missing(target(a, b)).startswith("the first scrape of resnet-a41d0 is its baseline")
    assert provider.sample(target(), 30, {}) is None
    assert provider.missing(target()) == "no ready pod of resnet-a41d0 to scrape"
    a.answer = b.answer = 403
    assert provider.sample(target(a, b), 30, {}) is None
    why = provider.missing(target(a, b))
    assert why == f"no pod of resnet-a41d0 could be scraped: http://{a.endpoint}/metrics answered HTTP 403 (and 1 more)"
    assert "denied" not in why  # the pod's answer is never quoted
    # Back: they were dropped, so they are baselined again, and the interval after that counts.
    a.answer = b.answer = 200
    assert provider.sample(target(a, b), 30, {}) is None
    assert provider.missing(target(a, b)).startswith("the pods of resnet-a41d0 were scraped for the first time")
    a.serve("resnet", ok=7)
    sample = provider.sample(target(a, b), 30, {})
    assert sample is not None and sample.requests == 7


def test_the_reason_reaches_every_inconclusive_check() -> None:
    analysis = Analysis.model_validate({"checks": [{"metric": "successRate", "min": 0.99},
                                                   {"metric": "latencyMean", "max": "100ms"}]})
    result = analyse(analysis, None, None, "no pod of r could be scraped: http://p/metrics answered HTTP 403")
    assert result.verdict == "Inconclusive"
    assert [check.message for check in result.checks] == [
        "successRate: no canary metrics (no pod of r could be scraped: http://p/metrics answered HTTP 403)",
        "latencyMean: no canary metrics (no pod of r could be scraped: http://p/metrics answered HTTP 403)"]
