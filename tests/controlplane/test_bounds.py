"""`analysis.checks[].max` is a number (0.01) or a duration (250ms): the API server and the pydantic
model accept and refuse the same values, and read the accepted ones the same way."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from modeldeploy.api.spec import Check
from modeldeploy.api.types import bound_value
from modeldeploy.kubeapi import KubeClient

from . import dry_run
from .invalid_objects import Case, at, build

pytestmark = pytest.mark.compat

# (as written, what it means: the number, or the duration in seconds)
ACCEPTED: list[tuple[Any, float]] = [
    (0.01, 0.01), (1, 1.0), (0, 0.0), (-2, -2.0), (2.5e-3, 0.0025), ("0.05", 0.05), ("1e-3", 0.001),
    ("250ms", 0.25), ("1m30s", 90.0), ("1.5s", 1.5), ("2h", 7200.0),
]
REFUSED: list[Any] = ["soon", "inf", "NaN", "0.01 ", "-250ms", "1d", "", True, False, {}, {"value": 1}, [], [1],
                     "9" * 65]


def _object(value: Any, namespace: str) -> dict[str, Any]:
    check = {"name": "bounded", "metric": "latencyP99", "max": value}
    return build(Case("bound", at("spec.rollout.analysis.checks", [check]), ""), namespace)


@pytest.mark.parametrize("value,meaning", ACCEPTED, ids=[repr(value) for value, _ in ACCEPTED])
def test_accepted_by_both_and_read_alike(admin: KubeClient, dry_run_namespace: str, value: Any, meaning: float) -> None:
    stored = dry_run.create(admin, _object(value, dry_run_namespace))["spec"]["rollout"]["analysis"]["checks"][0]
    assert stored["max"] == value
    check = Check.model_validate(stored)
    assert check.max is not None and bound_value(check.max) == pytest.approx(meaning)
    again = Check.model_validate(check.to_dict()).max  # what the model serializes reads the same
    assert again is not None and bound_value(again) == pytest.approx(meaning)


@pytest.mark.parametrize("value", REFUSED, ids=repr)
def test_refused_by_both(admin: KubeClient, dry_run_namespace: str, value: Any) -> None:
    message = dry_run.refusal(admin, _object(value, dry_run_namespace))
    assert message is not None and "spec.rollout.analysis.checks[0].max" in message
    with pytest.raises(ValidationError):
        Check.model_validate({"metric": "latencyP99", "max": value})
