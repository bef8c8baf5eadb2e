"""The traffic routers' objects on the real apiserver, written as the operator's ServiceAccount.

The real HTTPRoute CRD (Gateway API, standard channel) defaults and validates what the gatewayAPI
router writes; the real endpoint controller turns the service router's selector into endpoints.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from modeldeploy.api import ModelDeploymentSpec
from modeldeploy.kubeapi import Invalid, KubeClient
from modeldeploy.render import Owner, RuntimeImages, render_deployment, spec_hash
from modeldeploy.traffic import GatewayRouter, RouterTarget, ServiceRouter, router_for
from modeldeploy_sandbox.cluster import LocalCluster
from modeldeploy_sandbox.sandbox import API_VERSION, KIND, Sandbox
from modeldeploy_sandbox.waiting import wait_until

from .audit import forbidden, mark

NAME = "resnet"
HTTPROUTE = "gateway.networking.k8s.io/v1"


@pytest.fixture()
def operator_kube(bare_sandbox: Sandbox, cluster: LocalCluster) -> Iterator[KubeClient]:
    """The API client with the chart's RBAC for the sandbox's namespace; no 403 allowed."""
    since = mark(cluster)
    kubeconfig = cluster.operator_kubeconfig({"watchNamespaces": [bare_sandbox.namespace]})
    client = KubeClient.from_kubeconfig(kubeconfig)
    yield client
    client.close()
    assert forbidden(cluster, since) == []


def owned_spec(sb: Sandbox, **traffic: Any) -> tuple[Owner, ModelDeploymentSpec]:
    """A real ModelDeployment (no operator runs here) to own what the router writes, and its spec."""
    artifact = sb.artifacts.linear(f"{NAME}/1/model.onnx")
    body = {"model": {"uri": artifact.url, "digest": artifact.digest},
            "rollout": {"traffic": {"router": "service", **traffic}}}
    created = sb.kube.create({"apiVersion": API_VERSION, "kind": KIND,
                              "metadata": {"name": NAME, "namespace": sb.namespace}, "spec": body})
    owner = Owner(API_VERSION, KIND, NAME, sb.namespace, created["metadata"]["uid"])
    return owner, ModelDeploymentSpec.model_validate(body)


def test_the_service_router_selects_one_revision_or_all_and_weighs_by_ready_pods(
        bare_sandbox: Sandbox, operator_kube: KubeClient, admin: KubeClient) -> None:
    sb = bare_sandbox
    owner, spec = owned_spec(sb)
    router = router_for(RouterTarget(operator_kube, owner, spec))
    assert isinstance(router, ServiceRouter)
    assert router.set_weights({"resnet-aaaaa": 100}) is True
    assert router.set_weights({"resnet-aaaaa": 100}) is False  # the stored, defaulted Service already matches
    service = sb.kube.get("v1", "Service", sb.namespace, NAME)
    assert service is not None and service["metadata"]["ownerReferences"][0]["uid"] == owner.uid
    assert service["spec"]["selector"] == {"modeldeploy.dev/name": NAME, "modeldeploy.dev/revision": "resnet-aaaaa"}
    assert router.get_weights() == {"resnet-aaaaa": 100}
    # Stable a, canary b, and c: a superseded canary still running out its scale-down delay.
    for revision, replicas in (("resnet-aaaaa", 2), ("resnet-bbbbb", 1), ("resnet-ccccc", 1)):
        operator_kube.create(render_deployment(
            spec, name=NAME, namespace=sb.namespace, revision=revision, spec_hash=spec_hash(spec),
            role="stable", replicas=replicas, owner=owner, images=RuntimeImages()))

    def ready_pods() -> dict[str, str]:
        pods = admin.list("v1", "Pod", sb.namespace, {"modeldeploy.dev/name": NAME})
        return {pod["metadata"]["name"]: pod["metadata"]["labels"]["modeldeploy.dev/revision"] for pod in pods
                if any(c["type"] == "Ready" and c["status"] == "True" for c in pod["status"].get("conditions", []))}

    def endpoint_revisions() -> list[str]:
        slices = admin.list("discovery.k8s.io/v1", "EndpointSlice", sb.namespace, {"kubernetes.io/service-name": NAME})
        pods = ready_pods()
        return sorted(pods.get(e["targetRef"]["name"], "?") for s in slices for e in s.get("endpoints") or []
                      if e["conditions"].get("ready"))

    wait_until(lambda: len(ready_pods()) == 4, timeout=90, message="4 ready pods")
    assert router.set_weights({"resnet-aaaaa": 90, "resnet-bbbbb": 10}) is True
    service = sb.kube.get("v1", "Service", sb.namespace, NAME)
    assert service is not None and service["spec"]["selector"] == {
        "modeldeploy.dev/name": NAME, "modeldeploy.dev/traffic": "serving"}  # the revision key removed
    assert router.set_weights({"resnet-aaaaa": 90, "resnet-bbbbb": 10}) is False
    # Only the serving revisions get traffic: c's pod runs on, but is no endpoint.
    wanted = ["resnet-aaaaa", "resnet-aaaaa", "resnet-bbbbb"]
    wait_until(lambda: endpoint_revisions() == wanted, timeout=30,
               message=f"only a and b behind the Service: {endpoint_revisions()}")
    assert router.get_weights() == {"resnet-aaaaa": 67, "resnet-bbbbb": 33}
    assert router.set_weights({"resnet-bbbbb": 100}) is True
    wait_until(lambda: endpoint_revisions() == ["resnet-bbbbb"], timeout=30, message="b alone")
    pods = admin.list("v1", "Pod", sb.namespace, {"modeldeploy.dev/name": NAME})
    labelled = {pod["metadata"]["labels"]["modeldeploy.dev/revision"] for pod in pods
                if "modeldeploy.dev/traffic" in pod["metadata"]["labels"]}
    assert labelled == {"resnet-bbbbb"}  # kept on the one serving: ready for the next canary


def test_the_gateway_router_writes_weighted_backend_refs_the_real_crd_accepts(
        bare_sandbox: Sandbox, operator_kube: KubeClient) -> None:
    sb = bare_sandbox
    owner, spec = owned_spec(sb, router="gatewayAPI", gateway={
        "parentRefs": [{"name": "public", "namespace": "gateways"}], "hostnames": ["resnet.example"]})
    router = router_for(RouterTarget(operator_kube, owner, spec))
    assert isinstance(router, GatewayRouter)
    assert router.set_weights({"resnet-aaaaa": 90, "resnet-bbbbb": 10}) is True
    assert router.set_weights({"resnet-aaaaa": 90, "resnet-bbbbb": 10}) is False  # against the defaulted route
    route = sb.kube.get(HTTPROUTE, "HTTPRoute", sb.namespace, NAME)
    assert route is not None and route["metadata"]["ownerReferences"][0]["uid"] == owner.uid
    assert route["spec"]["parentRefs"] == [{"group": "gateway.networking.k8s.io", "kind": "Gateway",
                                            "name": "public", "namespace": "gateways"}]  # the CRD's defaults
    assert route["spec"]["hostnames"] == ["resnet.example"]
    (rule,) = route["spec"]["rules"]
    assert rule["backendRefs"] == [
        {"group": "", "kind": "Service", "name": "resnet-aaaaa", "port": 8000, "weight": 90},
        {"group": "", "kind": "Service", "name": "resnet-bbbbb", "port": 8000, "weight": 10}]
    assert router.get_weights() == {"resnet-aaaaa": 90, "resnet-bbbbb": 10}
    assert router.set_weights({"resnet-bbbbb": 100}) is True
    assert router.get_weights() == {"resnet-bbbbb": 100}


def test_the_httproute_crd_refuses_a_route_gateway_api_forbids(
        bare_sandbox: Sandbox, operator_kube: KubeClient) -> None:
    sb = bare_sandbox
    owner, _ = owned_spec(sb, router="gatewayAPI", gateway={"parentRefs": [{"name": "public"}]})
    spec = ModelDeploymentSpec.model_validate({
        "model": {"uri": "https://models.example/m.onnx", "allowUnverified": True},
        "rollout": {"traffic": {"router": "gatewayAPI", "gateway": {"parentRefs": [{"name": "public"}],
                                                                    "hostnames": ["Not_A_Host"]}}}})
    with pytest.raises(Invalid) as refused:
        router_for(RouterTarget(operator_kube, owner, spec)).set_weights({"resnet-aaaaa": 100})
    assert "spec.hostnames[0]" in refused.value.message
    assert sb.kube.get(HTTPROUTE, "HTTPRoute", sb.namespace, NAME) is None
