"""Children as the operator renders them, created without the operator: for kubelet and load-generator
tests, where the real kube-controller-manager and kube-scheduler take it from the Deployment on."""

from __future__ import annotations

from typing import Any

from modeldeploy.api import ModelDeploymentSpec
from modeldeploy.kubeapi import KubeClient
from modeldeploy.render import Owner, RuntimeImages, render_deployment, render_main_service, render_revision_service
from modeldeploy_sandbox.artifacts import Artifact

NAME = "resnet"


def owner(kube: KubeClient, namespace: str, name: str = NAME) -> Owner:
    """A stand-in owner (a ConfigMap): the children's ownerReferences need a live uid."""
    live = kube.get("v1", "ConfigMap", namespace, name) or kube.create(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": namespace}})
    return Owner("v1", "ConfigMap", name, namespace, live["metadata"]["uid"])


def spec(artifact: Artifact, env: dict[str, str] | None = None, **extra: Any) -> ModelDeploymentSpec:
    body: dict[str, Any] = {"model": {"uri": artifact.url, "digest": artifact.digest}, **extra}
    if env:
        body["runtime"] = {"env": [{"name": k, "value": v} for k, v in env.items()]}
    return ModelDeploymentSpec.model_validate(body)


def render_revision(kube: KubeClient, namespace: str, artifact: Artifact, revision: str, *, replicas: int = 1,
                    name: str = NAME, env: dict[str, str] | None = None, **extra: Any) -> dict[str, Any]:
    """The revision's Deployment as the operator renders it (not created)."""
    return render_deployment(spec(artifact, env, **extra), name=name, namespace=namespace, revision=revision,
                             spec_hash=revision, role="stable", replicas=replicas, owner=owner(kube, namespace, name),
                             images=RuntimeImages())


def create_revision(kube: KubeClient, namespace: str, artifact: Artifact, revision: str, *, replicas: int = 1,
                    name: str = NAME, env: dict[str, str] | None = None, **extra: Any) -> dict[str, Any]:
    """The revision's Deployment and Service, as the operator would create them."""
    deployment = render_revision(kube, namespace, artifact, revision, replicas=replicas, name=name, env=env, **extra)
    kube.create(render_revision_service(name=name, namespace=namespace, revision=revision, role="stable",
                                        owner=owner(kube, namespace, name)))
    return kube.create(deployment)


def create_main_service(kube: KubeClient, namespace: str, selector: dict[str, str],
                        name: str = NAME) -> dict[str, Any]:
    return kube.create(render_main_service(name=name, namespace=namespace, owner=owner(kube, namespace, name),
                                           selector=selector))


def pods(kube: KubeClient, namespace: str, revision: str) -> list[dict[str, Any]]:
    return kube.list("v1", "Pod", namespace, {"modeldeploy.dev/revision": revision})


def pod_statuses(kube: KubeClient, namespace: str, revision: str) -> list[dict[str, Any]]:
    return [p.get("status") or {} for p in pods(kube, namespace, revision)]


def ready_endpoints(kube: KubeClient, namespace: str, service: str) -> set[str]:
    """The addresses the EndpointSlice controller publishes as ready for ``service``."""
    slices = kube.list("discovery.k8s.io/v1", "EndpointSlice", namespace, {"kubernetes.io/service-name": service})
    return {address for s in slices for e in s.get("endpoints") or []
            if (e.get("conditions") or {}).get("ready") for address in e.get("addresses") or []}
