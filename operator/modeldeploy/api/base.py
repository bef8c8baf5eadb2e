"""The base model of every API object: camelCase on the wire, docstrings become descriptions."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel


def cel(rule: str, message: str, field_path: str | None = None) -> dict[str, str]:
    """One `x-kubernetes-validations` entry: a CEL rule the API server checks on admission.

    The API server also checks every rule against each `default: {}` of the schema when the CRD is
    written, before that object's own field defaults are filled in. So a rule must hold when a field
    that has a default is absent: guard it with `!has(self.field) || ...`. The strings and lists a
    rule reads need maxLength/maxItems, or its estimated cost exceeds the API server's budget.
    """
    entry = {"rule": rule, "message": message}
    if field_path:
        entry["fieldPath"] = field_path
    return entry


def validations(*rules: dict[str, str]) -> dict[str, Any]:
    return {"x-kubernetes-validations": list(rules)}


class ApiModel(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        use_attribute_docstrings=True,
        frozen=True,
    )

    def to_dict(self) -> dict[str, Any]:
        """The object as it is written to the API: camelCase keys, unset optionals left out."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)
