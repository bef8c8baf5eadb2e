"""Services, HPA and PDB: schema-valid and wired to the right pods."""

from __future__ import annotations

from typing import Any

import kubernetes_validate
import pytest

from modeldeploy.render import (
    MANAGED_BY_LABEL,
    NAME_LABEL,
    REVISION_LABEL,
    ROLE_LABEL,
    Owner,
    owner_reference,
    render_hpa,
    render_main_service,
    render_pdb,
    render_revision_service,
    selector,
)

from .conftest import SpecFactory

K8S_VERSION = "1.30"


def test_revision_service(render_owner: Owner) -> None:
    service = render_revision_service(name="resnet", namespace="ml", revision="resnet-7f9c2", role="canary",
                                      owner=render_owner)
    kubernetes_validate.validate(service, K8S_VERSION, strict=True)
    assert service["metadata"]["name"] == "resnet-7f9c2"
    assert service["metadata"]["labels"][ROLE_LABEL] == "canary"
    assert service["metadata"]["ownerReferences"] == [owner_reference(render_owner)]
    assert service["spec"]["selector"] == {NAME_LABEL: "resnet", REVISION_LABEL: "resnet-7f9c2"}
    ports = {port["name"]: port for port in service["spec"]["ports"]}
    assert {name: port["port"] for name, port in ports.items()} == {"http": 8000, "grpc": 8001, "metrics": 8002}
    assert ports["grpc"]["appProtocol"] == "kubernetes.io/h2c"
    assert all(port["targetPort"] == name for name, port in ports.items())


def test_main_service_uses_the_routers_selector(render_owner: Owner) -> None:
    chosen = selector("resnet")
    service = render_main_service(name="resnet", namespace="ml", owner=render_owner, selector=chosen)
    kubernetes_validate.validate(service, K8S_VERSION, strict=True)
    assert service["metadata"]["name"] == "resnet"
    assert service["metadata"]["labels"] == {MANAGED_BY_LABEL: "modeldeploy", NAME_LABEL: "resnet"}
    assert service["spec"]["selector"] == chosen and service["spec"]["selector"] is not chosen
    assert [(port["name"], port["port"]) for port in service["spec"]["ports"]] == [("http", 8000), ("grpc", 8001)]


def test_pdb(render_owner: Owner) -> None:
    pdb = render_pdb(name="resnet", namespace="ml", owner=render_owner)
    kubernetes_validate.validate(pdb, K8S_VERSION, strict=True)
    assert pdb["spec"] == {"maxUnavailable": 1, "selector": {"matchLabels": {NAME_LABEL: "resnet"}}}
    assert pdb["metadata"]["ownerReferences"] == [owner_reference(render_owner)]


def hpa(spec_factory: SpecFactory, owner: Owner, autoscaling: dict[str, Any]) -> dict[str, Any]:
    manifest = render_hpa(spec_factory({"autoscaling": autoscaling}), name="resnet", namespace="ml",
                          target_deployment="resnet-7f9c2", owner=owner)
    kubernetes_validate.validate(manifest, K8S_VERSION, strict=True)
    return manifest


def test_hpa_defaults_to_cpu_80(render_spec: SpecFactory, render_owner: Owner) -> None:
    manifest = hpa(render_spec, render_owner, {"minReplicas": 2, "maxReplicas": 5})
    assert manifest["apiVersion"] == "autoscaling/v2" and manifest["metadata"]["name"] == "resnet"
    assert manifest["metadata"]["ownerReferences"] == [owner_reference(render_owner)]
    assert manifest["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                                  "name": "resnet-7f9c2"}
    assert (manifest["spec"]["minReplicas"], manifest["spec"]["maxReplicas"]) == (2, 5)
    assert manifest["spec"]["metrics"] == [{"type": "Resource", "resource": {
        "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}}]
    assert "behavior" not in manifest["spec"]


@pytest.mark.parametrize("metric,expected", [
    ({"type": "cpu", "targetUtilization": 70},
     {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}}}),
    ({"type": "memory", "targetUtilization": 85},
     {"type": "Resource", "resource": {"name": "memory",
                                       "target": {"type": "Utilization", "averageUtilization": 85}}}),
    ({"type": "queueTime", "targetAverageMicroseconds": 5000},
     {"type": "Pods", "pods": {"metric": {"name": "nv_inference_queue_duration_us_per_request"},
                               "target": {"type": "AverageValue", "averageValue": "5000"}}}),
])
def test_hpa_metrics(metric: dict[str, Any], expected: dict[str, Any], render_spec: SpecFactory,
                     render_owner: Owner) -> None:
    manifest = hpa(render_spec, render_owner, {"maxReplicas": 4, "metrics": [metric]})
    assert manifest["spec"]["metrics"] == [expected]


def test_hpa_behavior_passthrough(render_spec: SpecFactory, render_owner: Owner) -> None:
    behavior = {"scaleDown": {"stabilizationWindowSeconds": 600,
                              "policies": [{"type": "Pods", "value": 1, "periodSeconds": 120}]}}
    manifest = hpa(render_spec, render_owner, {"maxReplicas": 4, "behavior": behavior})
    assert manifest["spec"]["behavior"] == behavior
