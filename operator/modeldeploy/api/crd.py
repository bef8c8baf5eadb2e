"""Generate the CustomResourceDefinition from the pydantic models (the only source of the CRD).

pydantic's JSON schema is turned into a Kubernetes *structural* schema: `$ref`s inlined,
`null` branches of optionals dropped (an unset field is simply absent), titles dropped,
`additionalProperties: false` dropped (the API server prunes unknown fields instead), and
free-form objects marked `x-kubernetes-preserve-unknown-fields`.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema
from pydantic_core import core_schema

from .spec import ModelDeploymentSpec
from .status import ModelDeploymentStatus
from .types import GROUP, KIND, PLURAL, SHORT_NAME, SINGULAR, VERSION

CRD_FILE_NAME = f"{GROUP}_{PLURAL}.yaml"
_KEPT_KEYS = {
    "type", "description", "default", "enum", "pattern", "format", "minimum", "maximum",
    "exclusiveMinimum", "exclusiveMaximum", "minLength", "maxLength", "minItems", "maxItems",
    "minProperties", "maxProperties", "not",
    "required", "x-kubernetes-validations", "x-kubernetes-int-or-string",
    "x-kubernetes-preserve-unknown-fields", "anyOf",
}


def _structural(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    node = dict(node)
    ref = node.pop("$ref", None)
    if ref is None and "allOf" in node and len(node["allOf"]) == 1:
        ref = node.pop("allOf")[0]["$ref"]
    if ref is not None:
        target = _structural(defs[ref.rsplit("/", 1)[-1]], defs)
        # The property's own description and default win over the referenced model's.
        return {**target, **{key: value for key, value in _structural(node, defs).items() if key != "type"}}
    if "anyOf" in node and "type" not in node and not node.get("x-kubernetes-int-or-string"):
        # pydantic's `X | None`. An anyOf next to a type is a value validation of ours: kept as is.
        branches = [branch for branch in node.pop("anyOf") if branch.get("type") != "null"]
        if len(branches) != 1:
            raise ValueError(f"unions are not structural: {branches}")
        if node.get("default", 0) is None:
            del node["default"]
        return _structural({**branches[0], **node}, defs)
    if "const" in node:
        node["enum"] = [node.pop("const")]
    if "exclusiveMinimum" in node:
        # Kubernetes wants the boolean form of OpenAPI v3.0.
        node["minimum"] = node["exclusiveMinimum"]
        node["exclusiveMinimum"] = True
    out: dict[str, Any] = {key: value for key, value in node.items() if key in _KEPT_KEYS}
    if out.get("type") == "string" and "enum" in out and "maxLength" not in out:
        # The API server estimates a CEL rule's cost from maxLength, not from the enum.
        out["maxLength"] = max(len(value) for value in out["enum"])
    if out.get("default", 0) is None:
        del out["default"]
    if node.get("type") == "object":
        properties = node.get("properties")
        extra = node.get("additionalProperties")
        if properties:
            out["properties"] = {name: _structural(prop, defs) for name, prop in properties.items()}
        elif isinstance(extra, dict) and extra:
            out["additionalProperties"] = _structural(extra, defs)
        else:
            out["x-kubernetes-preserve-unknown-fields"] = True
    if node.get("type") == "array":
        out["items"] = _structural(node["items"], defs)
    if "required" in out and not out["required"]:
        del out["required"]
    return _ordered(out)


def _ordered(node: dict[str, Any]) -> dict[str, Any]:
    """description and type first, nested schemas last: easier to read in review."""
    head = [key for key in ("description", "type") if key in node]
    tail = [key for key in ("properties", "additionalProperties", "items") if key in node]
    middle = sorted(key for key in node if key not in head and key not in tail)
    return {key: node[key] for key in head + middle + tail}


class _WithFactoryDefaults(GenerateJsonSchema):
    """Emit `default_factory` values too, so the API server defaults them like the operator does.

    A nested model defaults to `{}`: the API server then applies that model's own defaults.
    """

    def get_default_value(self, schema: core_schema.WithDefaultSchema) -> Any:
        factory = schema.get("default_factory")
        if factory is None or schema.get("default_factory_takes_data"):
            return super().get_default_value(schema)
        value = factory()  # type: ignore[call-arg]
        if isinstance(value, BaseModel):
            return {}
        if isinstance(value, list):
            return [item.model_dump(mode="json", by_alias=True, exclude_none=True)
                    if isinstance(item, BaseModel) else item for item in value]
        return value


def structural_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The structural OpenAPI v3 schema of a pydantic model, as the API server wants it."""
    schema = model.model_json_schema(by_alias=True, mode="validation", schema_generator=_WithFactoryDefaults)
    return _structural(schema, schema.get("$defs", {}))


def _without_defaults(node: Any) -> Any:
    if isinstance(node, dict):
        return {key: _without_defaults(value) for key, value in node.items() if key != "default"}
    if isinstance(node, list):
        return [_without_defaults(item) for item in node]
    return node


def _printer_columns() -> list[dict[str, Any]]:
    return [
        {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
        {"name": "Stable", "type": "string", "jsonPath": ".status.stableRevision"},
        {"name": "Canary", "type": "string", "jsonPath": ".status.canaryRevision"},
        {"name": "Weight", "type": "integer", "jsonPath": ".status.canaryWeight"},
        {"name": "Ready", "type": "string", "jsonPath": '.status.conditions[?(@.type=="Ready")].status'},
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    ]


def custom_resource_definition() -> dict[str, Any]:
    spec_schema = structural_schema(ModelDeploymentSpec)
    # Only the operator writes status, always whole: defaults there would only hide its bugs.
    status_schema = _without_defaults(structural_schema(ModelDeploymentStatus))
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{PLURAL}.{GROUP}",
            "labels": {"app.kubernetes.io/name": "modeldeploy", "app.kubernetes.io/part-of": "modeldeploy"},
        },
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": KIND,
                "listKind": f"{KIND}List",
                "plural": PLURAL,
                "singular": SINGULAR,
                "shortNames": [SHORT_NAME],
                "categories": ["modeldeploy"],
            },
            "versions": [{
                "name": VERSION,
                "served": True,
                "storage": True,
                "subresources": {"status": {}},
                "additionalPrinterColumns": _printer_columns(),
                "schema": {"openAPIV3Schema": {
                    "type": "object",
                    "description": "ModelDeployment serves a model on GPU-scheduled inference pods, "
                                   "autoscales it, and rolls every new revision out as a canary.",
                    "required": ["spec"],
                    "properties": {
                        "apiVersion": {"type": "string", "description": "API version of this object."},
                        "kind": {"type": "string", "description": "Kind of this object."},
                        "metadata": {"type": "object"},
                        "spec": spec_schema,
                        "status": status_schema,
                    },
                }},
            }],
        },
    }


def crd_yaml() -> str:
    header = "# Generated by `modeldeploy crd` from operator/modeldeploy/api. Do not edit.\n"
    return header + yaml.safe_dump(custom_resource_definition(), sort_keys=False, width=120)


def write_crd(directory: Path) -> Path:
    path = directory / CRD_FILE_NAME
    path.write_text(crd_yaml())
    return path


if __name__ == "__main__":
    sys.stdout.write(crd_yaml())
