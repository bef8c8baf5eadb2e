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
    if len(value) > DURATION_MAX_LENGTH:
        raise ValueError(f"a duration has at most {DURATION_MAX_LENGTH} characters")
    parse_duration(value)
    return value


DURATION_MAX_LENGTH = 32
Duration = Annotated[
    str,
    BeforeValidator(_coerce_duration),
    WithJsonSchema({"type": "string", "pattern": DURATION_PATTERN, "maxLength": DURATION_MAX_LENGTH}),
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


QUANTITY_MAX_LENGTH = 64


def _coerce_quantity(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError("a quantity must be a number or a string like 500m or 2Gi")
    if len(str(value)) > QUANTITY_MAX_LENGTH:
        raise ValueError(f"a quantity has at most {QUANTITY_MAX_LENGTH} characters")
    parse_quantity(value)
    return str(value)


def _serialize_quantity(value: str) -> str | int:
    return int(value) if value.isdigit() else value


Quantity = Annotated[
    str,
    BeforeValidator(_coerce_quantity),
    PlainSerializer(_serialize_quantity),
    WithJsonSchema({"x-kubernetes-int-or-string": True, "anyOf": [{"type": "integer"}, {"type": "string"}],
                    "pattern": QUANTITY_PATTERN, "maxLength": QUANTITY_MAX_LENGTH}),
]
"""A Kubernetes resource quantity (`1`, `500m`, `2Gi`)."""


BOUND_NUMBER = r"-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?"
BOUND_PATTERN = rf"^({BOUND_NUMBER}|([0-9]+(\.[0-9]+)?(ms|s|m|h))+)$"
BOUND_MAX_LENGTH = 64
# A bound is a JSON number (0.01) or a string (250ms). A structural schema can say "int or string"
# but not "number or string", and CEL cannot see an untyped field, so the field is untyped
# (x-kubernetes-preserve-unknown-fields) and plain OpenAPI value validations, each of which only
# applies to one JSON type, refuse everything else: `pattern` checks strings, an impossible
# property/item count refuses any object or array, and `not: enum` refuses booleans.
BOUND_SCHEMA: dict[str, Any] = {
    "x-kubernetes-preserve-unknown-fields": True,
    "pattern": BOUND_PATTERN,
    "maxLength": BOUND_MAX_LENGTH,
    "minProperties": 1, "maxProperties": 0,
    "minItems": 1, "maxItems": 0,
    "not": {"enum": [True, False]},
}


def is_number_or_string(node: dict[str, Any]) -> bool:
    """Whether a CRD schema node is the untyped number-or-string form of :data:`Bound`."""
    return "type" not in node and node.get("not") == BOUND_SCHEMA["not"]


def _coerce_bound(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError("a bound must be a number or a duration like 250ms")
    text = str(value)
    if len(text) > BOUND_MAX_LENGTH or not re.fullmatch(BOUND_PATTERN, text):
        raise ValueError(f"invalid bound {text!r}: use a number like 0.01 or a duration like 250ms")
    return text


def _serialize_bound(value: str) -> str | int | float:
    """Numbers go back to the API as JSON numbers, durations as strings."""
    if not re.fullmatch(BOUND_NUMBER, value):
        return value
    number = float(value)
    return int(number) if number.is_integer() and re.fullmatch(r"-?[0-9]+", value) else number


Bound = Annotated[
    str,
    BeforeValidator(_coerce_bound),
    PlainSerializer(_serialize_bound),
    WithJsonSchema(BOUND_SCHEMA),
]
"""An analysis bound: a number (`1`, `0.01`) or, for latency metrics, a duration (`250ms`)."""


def bound_value(text: str) -> float:
    """A bound as a float: numbers as they are, durations in seconds."""
    try:
        return float(text)
    except ValueError:
        return parse_duration(text)


DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
Name = Annotated[str, Field(pattern=DNS_LABEL, max_length=63)]
