"""The invalid-object matrix on the real API server: each case is refused with its field path, and the
operator-level cases really are accepted by the API server (the operator must catch those)."""

from __future__ import annotations

import pytest

from modeldeploy.kubeapi import KubeClient

from .dry_run import refusal
from .invalid_objects import APISERVER_CASES, OPERATOR_LEVEL_CASES, Case, build

pytestmark = pytest.mark.compat


def test_the_base_object_is_accepted(admin: KubeClient, dry_run_namespace: str) -> None:
    assert refusal(admin, build(Case("base", {}, ""), dry_run_namespace)) is None


@pytest.mark.parametrize("case", APISERVER_CASES, ids=[case.id for case in APISERVER_CASES])
def test_the_apiserver_refuses(admin: KubeClient, dry_run_namespace: str, case: Case) -> None:
    message = refusal(admin, build(case, dry_run_namespace))
    assert message is not None, f"{case.id}: the API server accepted it"
    assert case.field in message, message
    assert case.message in message, message


@pytest.mark.parametrize("case", OPERATOR_LEVEL_CASES, ids=[case.id for case in OPERATOR_LEVEL_CASES])
def test_the_apiserver_accepts_what_only_the_operator_catches(admin: KubeClient, dry_run_namespace: str,
                                                               case: Case) -> None:
    assert refusal(admin, build(case, dry_run_namespace)) is None


def test_the_matrix_is_large_and_its_ids_unique() -> None:
    ids = [case.id for case in APISERVER_CASES + OPERATOR_LEVEL_CASES]
    assert len(APISERVER_CASES) >= 40
    assert len(ids) == len(set(ids))
    assert all(case.patch and case.field for case in APISERVER_CASES + OPERATOR_LEVEL_CASES)
