"""What the API server does with a ModelDeployment on admission, done offline from the generated CRD.

Defaults are applied, the structural schema is checked, then every `x-kubernetes-validations`
CEL rule is evaluated with cel-python. Tests use it to prove the CRD refuses bad specs, and the
sandbox's emulated API server uses it so that it refuses them exactly as a cluster would.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from functools import lru_cache
from typing import Any

from .crd import custom_resource_definition


def _object_schema() -> dict[str, Any]:
    schema: dict[str, Any] = custom_resource_definition()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema


def apply_defaults(schema: dict[str, Any], value: Any) -> Any:
    """Fill in schema defaults the way the API server does (only where a parent object exists)."""
    if isinstance(value, dict):
        out = dict(value)
        for name, prop in schema.get("properties", {}).items():
            if name not in out and "default" in prop:
                out[name] = copy.deepcopy(prop["default"])
            if name in out:
                out[name] = apply_defaults(prop, out[name])
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            out = {key: apply_defaults(extra, item) for key, item in out.items()}
        return out
    if isinstance(value, list) and "items" in schema:
        return [apply_defaults(schema["items"], item) for item in value]
    return value


def _path(parts: Iterator[Any] | list[Any]) -> str:
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def schema_errors(schema: dict[str, Any], value: Any, root: str = "") -> list[str]:
    """OpenAPI v3.0 validation (types, enums, patterns, bounds) with field paths."""
    import jsonschema

    validator = jsonschema.Draft4Validator(schema)
    errors = []
    for error in sorted(validator.iter_errors(value), key=lambda e: list(e.absolute_path)):
        where = _path([root, *error.absolute_path] if root else list(error.absolute_path))
        errors.append(f"{where or '<root>'}: {error.message}")
    return errors


@lru_cache(maxsize=256)
def _program(rule: str) -> Any:
    import celpy

    environment = celpy.Environment()
    return environment.program(environment.compile(rule))


def cel_errors(schema: dict[str, Any], value: Any, path: str) -> list[str]:
    """Evaluate every CEL rule of the schema tree against the value, depth first."""
    import celpy

    errors: list[str] = []
    for rule in schema.get("x-kubernetes-validations", []):
        result = _program(rule["rule"]).evaluate({"self": celpy.json_to_cel(value)})
        if result is not True and not (isinstance(result, celpy.celtypes.BoolType) and bool(result)):
            field = path + rule.get("fieldPath", "")
            errors.append(f"{field}: {rule['message']}")
    if isinstance(value, dict):
        for name, prop in schema.get("properties", {}).items():
            if name in value:
                errors += cel_errors(prop, value[name], f"{path}.{name}")
    elif isinstance(value, list) and "items" in schema:
        for index, item in enumerate(value):
            errors += cel_errors(schema["items"], item, f"{path}[{index}]")
    return errors


def admit(obj: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Default and validate a ModelDeployment; returns the defaulted object and the refusals."""
    schema = _object_schema()
    defaulted = apply_defaults(schema, obj)
    spec_schema = schema["properties"]["spec"]
    if "spec" not in defaulted:
        return defaulted, ["spec: Required value"]
    errors = schema_errors(spec_schema, defaulted["spec"], "spec")
    if not errors:  # CEL only runs on schema-valid objects, as in the API server
        errors = cel_errors(spec_schema, defaulted["spec"], "spec")
    return defaulted, errors
