"""What the CRD cannot express, the operator catches (`spec_problems`), naming the field.

The cases are shared with tests/controlplane/, which proves that the real API server accepts every one
of them (so only the operator can catch them) and refuses the API-server-level cases itself.
"""

from __future__ import annotations

import pytest

from modeldeploy.api.semantics import spec_problems

from ..controlplane.invalid_objects import APISERVER_CASES, BASE, OPERATOR_LEVEL_CASES, Case, build


def test_the_base_object_has_no_problem() -> None:
    assert spec_problems(BASE["metadata"]["name"], BASE["spec"])[1] == []


@pytest.mark.parametrize("case", OPERATOR_LEVEL_CASES, ids=[case.id for case in OPERATOR_LEVEL_CASES])
def test_the_operator_names_the_field(case: Case) -> None:
    obj = build(case)
    _, problems = spec_problems(obj["metadata"]["name"], obj["spec"])
    assert any(problem.startswith(f"{case.field}: ") and case.message in problem for problem in problems), problems


def test_there_are_at_least_forty_distinct_invalid_objects() -> None:
    assert len({case.id for case in APISERVER_CASES} | {case.id for case in OPERATOR_LEVEL_CASES}) >= 40
