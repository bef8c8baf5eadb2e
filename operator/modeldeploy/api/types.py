"""Scalar types of the API: durations and Kubernetes quantities, with their CRD schema forms."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, PlainSerializer, WithJsonSchema

GROUP = "serving.modeldeploy.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "ModelDeployment"
PLURAL = "modeldeployments"
SINGULAR = "modeldeployment"
SHORT_NAME = "mdep"

DURATION_PATTERN = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"
_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> float:
    """`1m30s` -> 90.0 seconds. Raises ValueError naming the bad text."""
    if not re.fullmatch(DURATION_PATTERN, text):
        raise ValueError(f"invalid duration {text!r}: use forms like 500ms, 30s, 2m, 1h30m")
    return sum(float(number) * _DURATION_UNITS[unit] for number, unit in _DURATION_PART.findall(text))


def _coerce_duration(value: Any) -> str:
    if isinstance(value, bool):
        raise ValueError("a duration must be a string like 30s")
    if isinstance(value, int | float):
        # Bare numbers read as seconds, which is what YAML authors usually mean.
        return f"{value}s"
    if not isinstance(value, str):
        raise ValueError("a duration must be a string like 30s")
    parse_duration(value)
    return value


Duration = Annotated[
    str,
    BeforeValidator(_coerce_duration),
    WithJsonSchema({"type": "string", "pattern": DURATION_PATTERN}),
]
"""A Go-style duration string (`500ms`, `30s`, `2m`, `1h30m`)."""

QUANTITY_PATTERN = (
    r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
)
_QUANTITY_SUFFIX = {
    "": Decimal(1), "n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"),
    "k": Decimal(10**3), "M": Decimal(10**6), "G": Decimal(10**9), "T": Decimal(10**12),
    "P": Decimal(10**15), "E": Decimal(10**18),
    "Ki": Decimal(2**10), "Mi": Decimal(2**20), "Gi": Decimal(2**30), "Ti": Decimal(2**40),
    "Pi": Decimal(2**50), "Ei": Decimal(2**60),
}


def parse_quantity(text: str | int | float) -> Decimal:
    """Kubernetes quantity (`500m`, `2Gi`, `1e3`) -> Decimal in base units."""
    raw = str(text)
    if not re.fullmatch(QUANTITY_PATTERN, raw):
        raise ValueError(f"invalid quantity {raw!r}: use Kubernetes forms like 500m, 2, 4Gi")
    match = re.fullmatch(r"([+-]?[0-9.]+)([a-zA-Z]*)", raw)
    try:
        if match and match.group(2) in _QUANTITY_SUFFIX:
            return Decimal(match.group(1)) * _QUANTITY_SUFFIX[match.group(2)]
        return Decimal(raw)
    except InvalidOperation as error:
        raise ValueError(f"invalid quantity {raw!r}") from error


def _coerce_quantity(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError("a quantity must be a number or a string like 500m or 2Gi")
    parse_quantity(value)
    return str(value)


def _serialize_quantity(value: str) -> str | int:
    return int(value) if value.isdigit() else value


Quantity = Annotated[
    str,
    BeforeValidator(_coerce_quantity),
    PlainSerializer(_serialize_quantity),
    WithJsonSchema({"x-kubernetes-int-or-string": True, "anyOf": [{"type": "integer"}, {"type": "string"}],
                    "pattern": QUANTITY_PATTERN}),
]
"""A Kubernetes resource quantity (`1`, `500m`, `2Gi`)."""


def _coerce_bound(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError("a bound must be a number or a duration like 250ms")
    text = str(value)
    try:
        float(text)
    except ValueError:
        parse_duration(text)
    return text


def _serialize_bound(value: str) -> str | int:
    return int(value) if value.lstrip("-").isdigit() else value


Bound = Annotated[
    str,
    BeforeValidator(_coerce_bound),
    PlainSerializer(_serialize_bound),
    WithJsonSchema({"x-kubernetes-int-or-string": True, "anyOf": [{"type": "integer"}, {"type": "string"}]}),
]
"""An analysis bound: a number (`1`, `"0.05"`) or, for latency metrics, a duration (`250ms`)."""


def bound_value(text: str) -> float:
    """A bound as a float: numbers as they are, durations in seconds."""
    try:
        return float(text)
    except ValueError:
        return parse_duration(text)


DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
Name = Annotated[str, Field(pattern=DNS_LABEL, max_length=63)]
