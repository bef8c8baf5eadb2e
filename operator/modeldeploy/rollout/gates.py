"""Pure comparisons behind the pre-traffic gates: model signatures and smoke-test outputs."""

from __future__ import annotations

import math
from typing import Any


def _tensors(metadata: dict[str, Any], kind: str) -> dict[str, tuple[str, tuple[int, ...]]]:
    return {str(t["name"]): (str(t.get("datatype")), tuple(int(d) for d in t.get("shape", [])))
            for t in metadata.get(kind) or []}


def signature_differences(canary: dict[str, Any], stable: dict[str, Any]) -> list[str]:
    """What differs between two `/v2/models/{m}` answers: tensor names, datatypes and shapes.

    Dynamic dimensions (-1) must be dynamic on both sides: a fixed size where clients send a
    variable one would break them.
    """
    problems = []
    for kind in ("inputs", "outputs"):
        new, old = _tensors(canary, kind), _tensors(stable, kind)
        kind_name = kind[:-1]
        for name in sorted(old.keys() - new.keys()):
            problems.append(f"{kind_name} {name!r} is missing in the canary")
        for name in sorted(new.keys() - old.keys()):
            problems.append(f"{kind_name} {name!r} is new in the canary")
        for name in sorted(new.keys() & old.keys()):
            (new_type, new_shape), (old_type, old_shape) = new[name], old[name]
            if new_type != old_type:
                problems.append(f"{kind_name} {name!r} datatype {new_type} != stable {old_type}")
            if new_shape != old_shape:
                problems.append(f"{kind_name} {name!r} shape {list(new_shape)} != stable {list(old_shape)}")
    return problems


def _flat(values: Any) -> list[Any]:
    if isinstance(values, list):
        return [item for value in values for item in _flat(value)]
    return [values]


def output_differences(canary: dict[str, Any], stable: dict[str, Any], tolerance: float) -> list[str]:
    """Compare two infer responses (JSON outputs) within an absolute tolerance."""
    problems = []
    new = {o["name"]: o for o in canary.get("outputs") or []}
    old = {o["name"]: o for o in stable.get("outputs") or []}
    if new.keys() != old.keys():
        return [f"outputs {sorted(new)} != stable {sorted(old)}"]
    for name in sorted(new):
        a, b = _flat(new[name].get("data")), _flat(old[name].get("data"))
        if len(a) != len(b):
            problems.append(f"output {name!r} has {len(a)} values, stable {len(b)}")
            continue
        worst = 0.0
        for x, y in zip(a, b, strict=True):
            if isinstance(x, int | float) and isinstance(y, int | float):
                worst = max(worst, abs(float(x) - float(y)))
            elif x != y:
                worst = math.inf
        if worst > tolerance:
            problems.append(f"output {name!r} differs from stable by {worst:.3g} > tolerance {tolerance:g}")
    return problems
