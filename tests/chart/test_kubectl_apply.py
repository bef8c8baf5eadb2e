"""The `kubectl apply` install path: the CRD file is a valid object and every sample is admitted."""

from __future__ import annotations

from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from modeldeploy.api.admission import admit

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


@pytest.mark.parametrize("path", SAMPLES, ids=lambda path: path.name)
def test_sample_is_admitted(path: Path) -> None:
    documents = [document for document in yaml.safe_load_all(path.read_text()) if document]
    assert documents
    for document in documents:
        if document["kind"] != "ModelDeployment":
            kubernetes_validate.validate(document, "1.30", strict=True)  # e.g. a golden-input ConfigMap
            continue
        assert document["apiVersion"] == "serving.modeldeploy.dev/v1alpha1"
        assert document["metadata"].get("namespace"), "samples name their namespace"
        _, problems = admit(document)
        assert problems == []


def test_there_are_samples() -> None:
    assert len(SAMPLES) >= 3
