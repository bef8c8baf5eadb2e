"""Kubernetes resource quantities ("500m", "2Gi", "1e3") as floats, for the sandbox scheduler."""

from __future__ import annotations

import re

_SUFFIXES = {
    "n": 1e-9,
    "u": 1e-6,
    "m": 1e-3,
    "": 1.0,
    "k": 1e3,
    "M": 1e6,
    "G": 1e9,
    "T": 1e12,
    "P": 1e15,
    "E": 1e18,
    "Ki": 2.0**10,
    "Mi": 2.0**20,
    "Gi": 2.0**30,
    "Ti": 2.0**40,
    "Pi": 2.0**50,
    "Ei": 2.0**60,
}
_QUANTITY = re.compile(r"^\s*(?P<number>[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?)(?P<suffix>[a-zA-Z]*)\s*$")


def parse_quantity(value: str | int | float) -> float:
    """``"500m"`` -> 0.5, ``"2Gi"`` -> 2147483648.0; raises ValueError on anything else."""
    if isinstance(value, int | float):
        return float(value)
    match = _QUANTITY.match(value)
    if not match or match["suffix"] not in _SUFFIXES:
        raise ValueError(f"invalid quantity {value!r}")
    return float(match["number"]) * _SUFFIXES[match["suffix"]]
