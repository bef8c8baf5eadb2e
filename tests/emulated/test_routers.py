"""Routers against the emulated API: the Service's selector and the HTTPRoute's weighted backends."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from modeldeploy.api import ModelDeploymentSpec
from modeldeploy.kubeapi import KubeClient
from modeldeploy.render import Owner
from modeldeploy.sandbox.emulator_server import EmulatorHandle, running_emulator
from modeldeploy.traffic import GatewayRouter, RouterTarget, ServiceRouter, router_for

OWNER = Owner("serving.modeldeploy.dev/v1alpha1", "ModelDeployment", "resnet", "ml", "uid-1")


@pytest.fixture()
def emulator() -> Iterator[EmulatorHandle]:
    """Without garbage collection: the owner here is a bare reference, not a stored object."""
    with running_emulator(gc=False) as handle:
        yield handle


def spec(router: str = "service") -> ModelDeploymentSpec:
    traffic = {"router": router}
    if router == "gatewayAPI":
        traffic["gateway"] = {"parentRefs": [{"name": "public", "namespace": "gateways"}],  # type: ignore[assignment]
                              "hostnames": ["resnet.example"]}
    return ModelDeploymentSpec.model_validate({
        "model": {"uri": "https://m/model.onnx", "allowUnverified": True}, "rollout": {"traffic": traffic}})


def test_service_router_selects_one_revision_or_all(emulator: EmulatorHandle, kube: KubeClient) -> None:
    router = router_for(RouterTarget(kube, OWNER, spec()))
    assert isinstance(router, ServiceRouter)
    assert router.set_weights({"resnet-aaaaa": 100}) is True
    assert router.set_weights({"resnet-aaaaa": 100}) is False  # idempotent
    selector = emulator.get("v1/services", "ml", "resnet")["spec"]["selector"]  # type: ignore[index]
    assert selector == {"modeldeploy.dev/name": "resnet", "modeldeploy.dev/revision": "resnet-aaaaa"}
    assert router.get_weights() == {"resnet-aaaaa": 100}
    router.set_weights({"resnet-aaaaa": 90, "resnet-bbbbb": 10})
    selector = emulator.get("v1/services", "ml", "resnet")["spec"]["selector"]  # type: ignore[index]
    assert selector == {"modeldeploy.dev/name": "resnet"}  # the revision key is removed, not kept
    for revision, ready in (("resnet-aaaaa", 3), ("resnet-bbbbb", 1)):
        emulator.create({"apiVersion": "apps/v1", "kind": "Deployment",
                         "metadata": {"name": revision, "namespace": "ml",
                                      "labels": {"modeldeploy.dev/name": "resnet",
                                                 "modeldeploy.dev/revision": revision}},
                         "spec": {"replicas": ready}, "status": {"readyReplicas": ready}})
    assert router.get_weights() == {"resnet-aaaaa": 75, "resnet-bbbbb": 25}  # replica ratio is the weight


def test_gateway_router_writes_weighted_backend_refs(emulator: EmulatorHandle, kube: KubeClient) -> None:
    router = router_for(RouterTarget(kube, OWNER, spec("gatewayAPI")))
    assert isinstance(router, GatewayRouter)
    router.reconcile()
    assert router.set_weights({"resnet-aaaaa": 90, "resnet-bbbbb": 10}) is True
    assert router.set_weights({"resnet-aaaaa": 90, "resnet-bbbbb": 10}) is False
    route = emulator.get("gateway.networking.k8s.io/v1/httproutes", "ml", "resnet")
    assert route is not None
    assert route["spec"]["parentRefs"] == [{"name": "public", "namespace": "gateways"}]
    assert route["spec"]["hostnames"] == ["resnet.example"]
    assert route["spec"]["rules"][0]["backendRefs"] == [
        {"name": "resnet-aaaaa", "port": 8000, "weight": 90}, {"name": "resnet-bbbbb", "port": 8000, "weight": 10}]
    assert route["metadata"]["ownerReferences"][0]["uid"] == "uid-1"
    router.set_weights({"resnet-bbbbb": 100})
    assert router.get_weights() == {"resnet-bbbbb": 100}
