"""The load generator routes as the cluster's data plane would: by the EndpointSlices the real
EndpointSlice controller publishes for a Service, and by an HTTPRoute's backend weights; it counts per revision."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from modeldeploy_sandbox.cluster import LocalCluster
from modeldeploy_sandbox.loadgen import NO_ENDPOINT, LoadGenerator
from modeldeploy_sandbox.network import loopback_for
from modeldeploy_sandbox.sandbox import Sandbox
from modeldeploy_sandbox.waiting import wait_until

from .manifests import NAME, create_main_service, create_revision, owner, ready_endpoints

ROUTE = ("gateway.networking.k8s.io/v1", "HTTPRoute")


@pytest.fixture(scope="module")
def two_revisions(cluster: LocalCluster) -> Iterator[Sandbox]:
    """Revisions resnet-a (healthy) and resnet-b (every inference answered 500), one pod each."""
    with Sandbox(cluster) as sb:
        model = sb.artifacts.linear("resnet/1/model.onnx")
        create_revision(sb.kube, sb.namespace, model, "resnet-a")
        create_revision(sb.kube, sb.namespace, model, "resnet-b", env={"MODELSERVER_FAULT_ERROR_RATE": "1"})
        wait_until(lambda: len(sb.running_pods(ready=True)) == 2, timeout=30, message="2 ready pods")
        wait_until(lambda: all(len(ready_endpoints(sb.kube, sb.namespace, revision)) == 1
                               for revision in ("resnet-a", "resnet-b")), timeout=20,
                   message="one ready endpoint in each revision's EndpointSlice")
        yield sb


def _route(sb: Sandbox, weights: dict[str, int]) -> None:
    refs = [{"name": name, "port": 8000, "weight": weight} for name, weight in weights.items()]
    body = {"apiVersion": ROUTE[0], "kind": ROUTE[1], "metadata": {"name": NAME, "namespace": sb.namespace},
            "spec": {"rules": [{"backendRefs": refs}]}}
    if sb.kube.get(*ROUTE, sb.namespace, NAME) is None:
        sb.kube.create(body)
    else:
        sb.kube.merge_patch(*ROUTE, sb.namespace, NAME, {"spec": body["spec"]})


def _run(sb: Sandbox, rate: float = 100, duration: float = 1.5) -> LoadGenerator:
    with LoadGenerator(sb.kube, sb.namespace, NAME, rate=rate, duration=duration, seed=7) as load:
        assert load.wait(20)
    assert load.error is None
    return load


def test_the_main_service_splits_by_its_ready_endpoints(two_revisions: Sandbox) -> None:
    sb = two_revisions
    create_main_service(sb.kube, sb.namespace, {"modeldeploy.dev/name": NAME})  # both revisions, one pod each
    endpoints = wait_until(lambda: len(found := ready_endpoints(sb.kube, sb.namespace, NAME)) == 2 and found,
                           timeout=20, message="the main Service's EndpointSlice with both pods")
    assert {loopback_for(ip) for ip in endpoints} == {p.address for p in sb.running_pods()}
    report = _run(sb).report()
    assert report.revisions() == {"resnet-a", "resnet-b"}
    assert report.failures("resnet-a") == 0 and report.successes("resnet-b") == 0
    assert report.by_revision["resnet-b"].errors == {"HTTP 500": report.failures("resnet-b")}
    assert 0.3 < report.total("resnet-a") / report.total() < 0.7, report


def test_an_httproute_splits_by_weight_and_weight_zero_gets_nothing(two_revisions: Sandbox) -> None:
    sb = two_revisions
    _route(sb, {"resnet-a": 100, "resnet-b": 0})
    report = _run(sb).report()
    assert report.total("resnet-b") == 0 and report.success_rate() == 1.0 and report.total() >= 140, report

    _route(sb, {"resnet-a": 80, "resnet-b": 20})
    report = _run(sb).report()
    assert 0.65 < report.total("resnet-a") / report.total() < 0.92, report
    assert report.latency_ms(0.5, "resnet-a") < 1000
    sb.kube.delete(*ROUTE, sb.namespace, NAME)


def test_no_ready_endpoint_is_counted_and_bounds_are_enforced(bare_sandbox: Sandbox) -> None:
    sb = bare_sandbox
    create_main_service(sb.kube, sb.namespace, {"modeldeploy.dev/name": "nothing"})
    owner(sb.kube, sb.namespace)
    report = _run(sb, rate=50, duration=0.5).report()
    assert report.failures(NO_ENDPOINT) == report.total() > 0 and report.revisions() == set()
    assert report.by_revision[NO_ENDPOINT].errors == {"no ready endpoint": report.total()}
    with pytest.raises(ValueError):
        LoadGenerator(sb.kube, sb.namespace, NAME, rate=10_000)
    with pytest.raises(ValueError):
        LoadGenerator(sb.kube, sb.namespace, NAME, duration=3600)
