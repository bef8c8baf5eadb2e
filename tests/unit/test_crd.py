"""The generated CRD, offline: up to date, structural, described, bounded.

What the API server itself does with it (install, defaults, refusals) is in tests/controlplane/.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from modeldeploy.api.crd import CRD_FILE_NAME, crd_yaml, custom_resource_definition
from modeldeploy.api.types import is_number_or_string

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
    untyped = is_number_or_string(node) and node.get("x-kubernetes-preserve-unknown-fields") is True
    assert "type" in node or int_or_string or untyped, f"{path}: every level needs a type"
    assert "$ref" not in node and "allOf" not in node and "oneOf" not in node, path
    if "anyOf" in node and int_or_string:
        assert node["anyOf"] == [{"type": "integer"}, {"type": "string"}], path
    elif "anyOf" in node:
        # Value validations only: "at least one of these fields", each of them a property of the node.
        assert all(list(branch) == ["required"] for branch in node["anyOf"]), path
        assert {name for branch in node["anyOf"] for name in branch["required"]} <= set(node["properties"]), path
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


def test_every_spec_string_is_bounded_so_cel_cost_is_estimable() -> None:
    unbounded = [path for path, node in _walk(SCHEMA["properties"]["spec"], ".spec")
                 if (node.get("type") == "string" or node.get("x-kubernetes-int-or-string")
                     or is_number_or_string(node)) and "maxLength" not in node]
    assert unbounded == []


def _rules() -> list[tuple[str, dict[str, Any], str]]:
    return [(path, node, rule["rule"]) for path, node in _walk(SCHEMA["properties"]["spec"], ".spec")
            for rule in node.get("x-kubernetes-validations", [])]


def _unguarded(node: dict[str, Any], rule: str) -> list[str]:
    """Optional fields the rule reads without `has()`: "no such key" where they are absent."""
    missing = []
    for chain in set(re.findall(r"self((?:\.\w+)+)", rule)):
        schema, prefix = node, "self"
        for name in chain.strip(".").split("."):
            if name not in schema.get("properties", {}):
                break  # a method such as .startsWith(): the chain ends here
            prefix += f".{name}"
            if name not in schema.get("required", []) and f"has({prefix})" not in rule:
                missing.append(prefix)
            schema = schema["properties"][name]
    return missing


@pytest.mark.parametrize("path,node,rule", _rules(), ids=[rule for _, _, rule in _rules()])
def test_every_cel_rule_guards_the_optional_fields_it_reads(path: str, node: dict[str, Any], rule: str) -> None:
    # Fields with a default count too: the API server checks each rule against `default: {}` as it is.
    assert _unguarded(node, rule) == [], f"{path}: {rule}"


def test_the_guard_check_sees_a_missing_guard() -> None:
    node = {"properties": {"a": {"type": "integer", "default": 1}, "b": {"type": "integer"}}, "required": ["b"]}
    assert _unguarded(node, "self.a > self.b") == ["self.a"]
    assert _unguarded(node, "!has(self.a) || self.a > self.b") == []


def test_enums_get_their_longest_value_as_max_length() -> None:
    strategy = SCHEMA["properties"]["spec"]["properties"]["rollout"]["properties"]["strategy"]
    assert strategy["enum"] == ["canary", "immediate"] and strategy["maxLength"] == len("immediate")


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
