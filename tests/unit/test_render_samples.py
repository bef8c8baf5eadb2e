"""samples/: valid ModelDeployments whose children all render and validate."""

from __future__ import annotations

from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from modeldeploy.api import API_VERSION, KIND, ModelDeploymentSpec
from modeldeploy.api.semantics import spec_problems
from modeldeploy.render import (
    Owner,
    RuntimeImages,
    render_deployment,
    render_hpa,
    render_main_service,
    render_pdb,
    render_revision_service,
    revision_name,
    selector,
    spec_hash,
)

SAMPLES = sorted((Path(__file__).resolve().parents[2] / "samples").glob("*.yaml"))


def test_expected_samples_exist() -> None:
    assert {path.name for path in SAMPLES} >= {
        "cpu-onnx.yaml", "gpu-triton.yaml", "canary-gateway.yaml", "canary-prometheus.yaml"}


@pytest.mark.parametrize("path", SAMPLES, ids=lambda path: path.name)
def test_sample_is_a_valid_model_deployment(path: Path) -> None:
    doc = yaml.safe_load(path.read_text())
    assert (doc["apiVersion"], doc["kind"]) == (API_VERSION, KIND)
    ModelDeploymentSpec.model_validate(doc["spec"])  # the API server's verdict: tests/chart/test_kubectl_apply.py
    assert spec_problems(doc["metadata"]["name"], doc["spec"])[1] == []


@pytest.mark.parametrize("path", SAMPLES, ids=lambda path: path.name)
def test_sample_children_validate(path: Path) -> None:
    doc = yaml.safe_load(path.read_text())
    name, namespace = doc["metadata"]["name"], doc["metadata"]["namespace"]
    spec = ModelDeploymentSpec.model_validate(doc["spec"])
    owner = Owner(API_VERSION, KIND, name, namespace, "00000000-0000-4000-8000-000000000001")
    digest = spec_hash(spec)
    revision = revision_name(name, digest)
    children = [
        render_deployment(spec, name=name, namespace=namespace, revision=revision, spec_hash=digest,
                          role="stable", replicas=None, owner=owner, images=RuntimeImages()),
        render_revision_service(name=name, namespace=namespace, revision=revision, role="stable", owner=owner),
        render_main_service(name=name, namespace=namespace, owner=owner, selector=selector(name)),
        render_hpa(spec, name=name, namespace=namespace, target_deployment=revision, owner=owner),
        render_pdb(name=name, namespace=namespace, owner=owner),
    ]
    for child in children:
        kubernetes_validate.validate(child, "1.30", strict=True)
