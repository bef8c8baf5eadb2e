"""The `kubectl apply` install path: the CRD file is a valid object, and the real API server, through the
real kubectl, accepts every sample once the CRD is installed."""

from __future__ import annotations

from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from modeldeploy.kubeapi import KubeClient
from modeldeploy_sandbox.controlplane import ControlPlane

from ..controlplane.kubectl import CRD_DIRECTORIES, apply_crds, kubectl
from .rendering import ROOT

SAMPLES = sorted((ROOT / "samples").glob("*.yaml"))


def test_crds_directory_validates() -> None:
    files = sorted((ROOT / "crds").glob("*.yaml"))
    assert files
    for path in files:
        for document in yaml.safe_load_all(path.read_text()):
            if document:
                kubernetes_validate.validate(document, "1.30", strict=True)
                assert document["kind"] == "CustomResourceDefinition"


@pytest.fixture(scope="module")
def sample_namespaces(control_plane: ControlPlane, admin: KubeClient) -> set[str]:
    """The chart's CRDs installed, and the namespaces the samples name."""
    apply_crds(control_plane, CRD_DIRECTORIES[1])
    names = {document["metadata"]["namespace"] for path in SAMPLES
             for document in yaml.safe_load_all(path.read_text()) if document}
    for name in names:
        admin.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    return names


@pytest.mark.compat
@pytest.mark.parametrize("path", SAMPLES, ids=lambda path: path.name)
def test_kubectl_apply_accepts_the_sample(control_plane: ControlPlane, sample_namespaces: set[str],
                                          path: Path) -> None:
    documents = [document for document in yaml.safe_load_all(path.read_text()) if document]
    assert all(document["metadata"].get("namespace") in sample_namespaces for document in documents), (
        "samples name their namespace")
    # Server-side dry run: the API server defaults and validates everything (schema, CEL), stores nothing.
    applied = kubectl(control_plane, "apply", "--dry-run=server", "-f", str(path))
    assert applied.returncode == 0, applied.stderr
    assert "modeldeployment.serving.modeldeploy.dev/" in applied.stdout


def test_there_are_samples() -> None:
    assert len(SAMPLES) >= 3
