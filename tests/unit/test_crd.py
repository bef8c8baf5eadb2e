"""The generated CRD: up to date, structural, described, and consistent with the pydantic defaults."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from modeldeploy.api import ModelDeploymentSpec
from modeldeploy.api.admission import admit
from modeldeploy.api.crd import CRD_FILE_NAME, crd_yaml, custom_resource_definition

ROOT = Path(__file__).resolve().parents[2]
CRD = custom_resource_definition()
SCHEMA = CRD["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


def test_committed_crd_is_the_generated_one() -> None:
    committed = (ROOT / "crds" / CRD_FILE_NAME).read_text()
    assert committed == crd_yaml(), "crds/ is stale: run `modeldeploy crd --write crds/`"


def _walk(node: dict[str, Any], path: str = "") -> list[tuple[str, dict[str, Any]]]:
    nodes = [(path, node)]
    for name, child in node.get("properties", {}).items():
        nodes += _walk(child, f"{path}.{name}")
    if isinstance(node.get("additionalProperties"), dict):
        nodes += _walk(node["additionalProperties"], f"{path}.*")
    if "items" in node:
        nodes += _walk(node["items"], f"{path}[]")
    return nodes


@pytest.mark.parametrize("path,node", _walk(SCHEMA), ids=lambda value: value if isinstance(value, str) else "")
def test_schema_is_structural(path: str, node: dict[str, Any]) -> None:
    int_or_string = node.get("x-kubernetes-int-or-string") is True
    assert "type" in node or int_or_string, f"{path}: every level needs a type"
    assert "$ref" not in node and "allOf" not in node and "oneOf" not in node, path
    if "anyOf" in node:
        assert int_or_string and node["anyOf"] == [{"type": "integer"}, {"type": "string"}], path
    assert not ("properties" in node and "additionalProperties" in node), path
    assert node.get("additionalProperties") is not False, path
    if node.get("type") == "object" and path not in ("", ".metadata"):
        has_shape = "properties" in node or "additionalProperties" in node
        assert has_shape or node.get("x-kubernetes-preserve-unknown-fields") is True, path
    if node.get("type") == "array":
        assert "items" in node, path


def test_every_spec_field_has_a_description_for_kubectl_explain() -> None:
    missing = [path for path, node in _walk(SCHEMA["properties"]["spec"], ".spec")
               if not path.endswith(("[]", ".*")) and not node.get("description")]
    assert missing == []


def test_every_spec_array_is_bounded_so_cel_cost_is_estimable() -> None:
    unbounded = [path for path, node in _walk(SCHEMA["properties"]["spec"], ".spec")
                 if node.get("type") == "array" and "maxItems" not in node]
    assert unbounded == []


def test_status_has_no_defaults_and_spec_has_no_replicas() -> None:
    status_text = yaml.safe_dump(SCHEMA["properties"]["status"])
    assert "default:" not in status_text
    assert "replicas" not in SCHEMA["properties"]["spec"]["properties"]


def test_crd_metadata_columns_and_subresources() -> None:
    version = CRD["spec"]["versions"][0]
    assert CRD["metadata"]["name"] == "modeldeployments.serving.modeldeploy.dev"
    assert CRD["spec"]["names"]["shortNames"] == ["mdep"]
    assert version["subresources"] == {"status": {}}
    columns = {column["name"]: column["jsonPath"] for column in version["additionalPrinterColumns"]}
    assert list(columns) == ["Phase", "Stable", "Canary", "Weight", "Ready", "Age"]
    assert columns["Ready"] == '.status.conditions[?(@.type=="Ready")].status'


def test_crd_validates_against_the_apiextensions_schema() -> None:
    kubernetes_validate.validate(CRD, "1.30", strict=True)


def test_crd_defaults_match_the_operator_defaults() -> None:
    minimal = {"model": {"uri": "https://models.example/m.onnx", "digest": "sha256:" + "0" * 64}}
    defaulted, errors = admit({"spec": minimal})
    assert errors == []
    assert defaulted["spec"] == ModelDeploymentSpec.model_validate(minimal).to_dict()


def test_samples_are_admitted() -> None:
    samples = sorted((ROOT / "samples").glob("*.yaml"))
    for sample in samples:
        for document in yaml.safe_load_all(sample.read_text()):
            if document and document.get("kind") == "ModelDeployment":
                assert admit(document)[1] == [], sample.name
