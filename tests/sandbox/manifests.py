"""Children as the operator renders them, without the operator: for kubelet and load-generator tests."""

from __future__ import annotations

from typing import Any

from modeldeploy.api import ModelDeploymentSpec
from modeldeploy.render import Owner, RuntimeImages, render_deployment, render_main_service, render_revision_service
from modeldeploy.sandbox.artifacts import Artifact
from modeldeploy.sandbox.emulator_server import EmulatorHandle

NS = "ml"
DEPLOYMENTS = "apps/v1/deployments"
PODS = "v1/pods"


def owner(emulator: EmulatorHandle, name: str = "resnet") -> Owner:
    """A stand-in owner object (a ConfigMap): the children's ownerReferences need a live uid."""
    live = emulator.get("v1/configmaps", NS, name) or emulator.create(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": NS}}
    )
    return Owner("v1", "ConfigMap", name, NS, live["metadata"]["uid"])


def spec(artifact: Artifact, env: dict[str, str] | None = None, **extra: Any) -> ModelDeploymentSpec:
    body: dict[str, Any] = {"model": {"uri": artifact.url, "digest": artifact.digest}, **extra}
    if env:
        body["runtime"] = {"env": [{"name": k, "value": v} for k, v in env.items()]}
    return ModelDeploymentSpec.model_validate(body)


def create_revision(
    emulator: EmulatorHandle,
    artifact: Artifact,
    revision: str,
    *,
    replicas: int = 1,
    name: str = "resnet",
    env: dict[str, str] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """The revision's Deployment and Service, as the operator would create them."""
    the_owner = owner(emulator, name)
    the_spec = spec(artifact, env, **extra)
    deployment = render_deployment(
        the_spec,
        name=name,
        namespace=NS,
        revision=revision,
        spec_hash=revision,
        role="stable",
        replicas=replicas,
        owner=the_owner,
        images=RuntimeImages(),
    )
    emulator.create(render_revision_service(name=name, namespace=NS, revision=revision, role="stable", owner=the_owner))
    return emulator.create(deployment)


def create_main_service(emulator: EmulatorHandle, selector: dict[str, str], name: str = "resnet") -> dict[str, Any]:
    return emulator.create(render_main_service(name=name, namespace=NS, owner=owner(emulator, name), selector=selector))


def pod_status(emulator: EmulatorHandle, revision: str) -> list[dict[str, Any]]:
    pods = emulator.list(PODS, NS, label_selector=f"modeldeploy.dev/revision={revision}")
    return [p.get("status") or {} for p in pods]
