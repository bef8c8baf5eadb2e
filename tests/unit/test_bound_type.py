"""The analysis bound (`checks[].max`) in the pydantic model: a number or a duration, written back as such.

Whether the API server agrees value by value is tests/controlplane/test_bounds.py.
"""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from modeldeploy.api.spec import Check
from modeldeploy.api.types import bound_value


@pytest.mark.parametrize("written,meaning,serialized", [
    (0.01, 0.01, 0.01), (1, 1.0, 1), ("0.05", 0.05, 0.05), (-3, -3.0, -3), (1e-05, 1e-05, 1e-05),
    ("250ms", 0.25, "250ms"), ("1m30s", 90.0, "1m30s"),
])
def test_numbers_stay_numbers_and_durations_strings(written: Any, meaning: float, serialized: Any) -> None:
    check = Check(metric="latencyP99", max=written)
    assert check.max is not None and bound_value(check.max) == pytest.approx(meaning)
    assert check.to_dict()["max"] == serialized
    assert type(check.to_dict()["max"]) is type(serialized)


@pytest.mark.parametrize("value", [True, {}, [0.1], "fast", "inf", "1e", "1 s", "9" * 65])
def test_anything_else_is_refused(value: Any) -> None:
    with pytest.raises(ValidationError, match="max"):
        Check.model_validate({"metric": "latencyP99", "max": value})
