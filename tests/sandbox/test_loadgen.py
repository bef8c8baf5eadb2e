"""The load generator routes like the cluster (Service selector, HTTPRoute weights) and counts per revision."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from modeldeploy.sandbox.artifacts import ArtifactServer
from modeldeploy.sandbox.emulator_server import EmulatorHandle, running_emulator, wait_until
from modeldeploy.sandbox.kubelet import Kubelet
from modeldeploy.sandbox.loadgen import NO_ENDPOINT, LoadGenerator

from .manifests import NS, create_main_service, create_revision, owner

ROUTES = "gateway.networking.k8s.io/v1/httproutes"


@pytest.fixture(scope="module")
def two_revisions() -> Iterator[EmulatorHandle]:
    """Revisions resnet-a (healthy) and resnet-b (every inference answered 500), one pod each."""
    with ArtifactServer() as artifacts, running_emulator() as emulator, Kubelet(emulator.url) as kubelet:
        model = artifacts.linear("resnet/1/model.onnx")
        create_revision(emulator, model, "resnet-a")
        create_revision(emulator, model, "resnet-b", env={"MODELSERVER_FAULT_ERROR_RATE": "1"})
        wait_until(lambda: len([p for p in kubelet.pods() if p.ready]) == 2, timeout=20, message="2 ready pods")
        yield emulator


def _route(emulator: EmulatorHandle, weights: dict[str, int]) -> None:
    refs = [{"name": name, "port": 8000, "weight": weight} for name, weight in weights.items()]
    body = {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": "resnet", "namespace": NS},
        "spec": {"rules": [{"backendRefs": refs}]},
    }
    if emulator.get(ROUTES, NS, "resnet") is None:
        emulator.create(body)
    else:
        emulator.patch(ROUTES, NS, "resnet", {"spec": body["spec"]})


def _run(emulator: EmulatorHandle, rate: float = 100, duration: float = 1.5) -> LoadGenerator:
    with LoadGenerator(emulator.url, NS, "resnet", rate=rate, duration=duration, seed=7) as load:
        assert load.wait(15)
    assert load.error is None
    return load


def test_the_main_service_splits_by_ready_pods(two_revisions: EmulatorHandle) -> None:
    emulator = two_revisions
    create_main_service(emulator, {"modeldeploy.dev/name": "resnet"})  # both revisions, one pod each
    report = _run(emulator).report()
    assert report.revisions() == {"resnet-a", "resnet-b"}
    assert report.failures("resnet-a") == 0 and report.successes("resnet-b") == 0
    assert report.by_revision["resnet-b"].errors == {"HTTP 500": report.failures("resnet-b")}
    assert 0.3 < report.total("resnet-a") / report.total() < 0.7, report


def test_an_httproute_splits_by_weight_and_weight_zero_gets_nothing(two_revisions: EmulatorHandle) -> None:
    emulator = two_revisions
    _route(emulator, {"resnet-a": 100, "resnet-b": 0})
    report = _run(emulator).report()
    assert report.total("resnet-b") == 0 and report.success_rate() == 1.0 and report.total() >= 140, report

    _route(emulator, {"resnet-a": 80, "resnet-b": 20})
    report = _run(emulator).report()
    assert 0.65 < report.total("resnet-a") / report.total() < 0.92, report
    assert report.latency_ms(0.5, "resnet-a") < 1000
    emulator.delete(ROUTES, NS, "resnet")


def test_no_ready_endpoint_is_counted_and_bounds_are_enforced() -> None:
    with running_emulator() as emulator:
        create_main_service(emulator, {"modeldeploy.dev/name": "nothing"})
        owner(emulator)
        report = _run(emulator, rate=50, duration=0.5).report()
        assert report.failures(NO_ENDPOINT) == report.total() > 0 and report.revisions() == set()
        with pytest.raises(ValueError):
            LoadGenerator(emulator.url, NS, "resnet", rate=10_000)
        with pytest.raises(ValueError):
            LoadGenerator(emulator.url, NS, "resnet", duration=3600)
