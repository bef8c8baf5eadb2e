"""Read a status field by field: what one operator version cannot parse must not erase the rest.

An unreadable status once meant an empty one, and an empty status made the planner deploy the
candidate as if nothing served yet. Here a field that does not validate falls back to its default
(a list drops only its bad items), and every other field is kept as written.
"""

from __future__ import annotations

import types
import typing
from typing import Any, TypeVar

from pydantic import BaseModel, TypeAdapter, ValidationError

from .status import ModelDeploymentStatus

M = TypeVar("M", bound=BaseModel)


def _model_of(annotation: Any) -> type[BaseModel] | None:
    """The model class of `Model` or `Model | None`."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        models = [arg for arg in typing.get_args(annotation) if isinstance(arg, type) and issubclass(arg, BaseModel)]
        return models[0] if len(models) == 1 else None
    return None


def _field_value(annotation: Any, value: Any) -> tuple[bool, Any]:
    """(parsed?, value) of one field, recursing into models and lists of models."""
    model = _model_of(annotation)
    if model is not None and isinstance(value, dict):
        parsed = lenient(model, value)
        return parsed is not None, parsed
    if typing.get_origin(annotation) is list and isinstance(value, list):
        (item_type,) = typing.get_args(annotation)
        item_model = _model_of(item_type)
        if item_model is not None:
            items = [lenient(item_model, item) if isinstance(item, dict) else None for item in value]
            return True, [item for item in items if item is not None]
    try:
        return True, TypeAdapter(annotation).validate_python(value)
    except ValidationError:
        return False, None


def lenient(model: type[M], raw: dict[str, Any]) -> M | None:
    """`model` from `raw`, dropping only the fields that do not parse; None if a required one does not."""
    try:
        return model.model_validate(raw)
    except ValidationError:
        pass
    kept: dict[str, Any] = {}
    for name, field in model.model_fields.items():
        key = field.alias or name
        if key not in raw:
            continue
        ok, value = _field_value(field.annotation, raw[key])
        if ok:
            kept[name] = value
    try:
        return model.model_validate(kept)
    except ValidationError:
        return None


def parse_status(raw: dict[str, Any] | None) -> ModelDeploymentStatus:
    return lenient(ModelDeploymentStatus, raw or {}) or ModelDeploymentStatus()
