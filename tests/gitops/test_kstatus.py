"""Flux (kustomize-controller health checks, `wait: true`) judges custom resources with kstatus.

`kstatus` below is kstatus' generic computation for a custom resource (sigs.k8s.io/cli-utils
pkg/kstatus/status: Compute -> checkGenericProperties, checkGeneration), ported line by line:
deletionTimestamp -> Terminating; observedGeneration present and != metadata.generation ->
InProgress; Reconciling=True -> InProgress; Stalled=True -> Failed; otherwise Current. kstatus
never reads Ready, so the operator must set Reconciling or Stalled whenever it is not Ready.
"""

from __future__ import annotations

from typing import Any

import pytest

from .statuses import Case, cases, statuses


def kstatus(obj: dict[str, Any]) -> str:
    if obj["metadata"].get("deletionTimestamp"):
        return "Terminating"
    status = obj.get("status") or {}
    generation = obj["metadata"].get("generation")
    observed = status.get("observedGeneration")
    if generation is not None and observed is not None and observed != generation:
        return "InProgress"
    for condition in status.get("conditions", []):
        if condition["type"] == "Reconciling" and condition["status"] == "True":
            return "InProgress"
        if condition["type"] == "Stalled" and condition["status"] == "True":
            return "Failed"
    return "Current"


@pytest.mark.parametrize("case", cases(), ids=lambda case: case.name)
def test_kstatus_for_every_phase(case: Case) -> None:
    assert kstatus(case.obj) == case.kstatus


@pytest.mark.parametrize("case", [c for c in cases() if "status" in c.obj and c.obj["status"].get("conditions")],
                         ids=lambda case: case.name)
def test_conditions_follow_kstatus_conventions(case: Case) -> None:
    status = case.obj["status"]
    conditions = {c["type"]: c for c in status["conditions"]}
    assert {"Ready", "Reconciling", "Stalled"} <= set(conditions)
    # Abnormal-true conditions are never both True; Ready excludes both.
    assert not (conditions["Reconciling"]["status"] == "True" and conditions["Stalled"]["status"] == "True")
    if conditions["Ready"]["status"] == "True":
        assert conditions["Reconciling"]["status"] == conditions["Stalled"]["status"] == "False"
    for condition in conditions.values():
        assert condition["status"] in ("True", "False", "Unknown")
        assert condition["reason"] and condition["reason"][0].isupper() and " " not in condition["reason"]
        assert condition["observedGeneration"] == status["observedGeneration"]
        assert condition["lastTransitionTime"].endswith("Z")


def test_every_status_the_planner_writes_has_the_kstatus_conditions() -> None:
    """Without Ready/Reconciling/Stalled kstatus would call any status Current: the operator always writes them."""
    for name, status in statuses().items():
        types = {condition.type for condition in status.conditions}
        assert {"Ready", "Reconciling", "Stalled"} <= types, name


def test_not_ready_is_always_reconciling_or_stalled() -> None:
    """kstatus ignores Ready: a status that is not Ready must say Reconciling or Stalled, or Flux sees Current."""
    for name, status in statuses().items():
        conditions = {condition.type: condition.status for condition in status.conditions}
        if conditions["Ready"] != "True":
            assert "True" in (conditions["Reconciling"], conditions["Stalled"]), name


def test_argo_and_flux_agree() -> None:
    """Healthy <-> Current; Degraded <-> Failed; the rest are both 'not done yet'.

    The one exception is inherent to kstatus: before the operator's first status write an object
    has no status at all, which kstatus calls Current (docs/gitops.md says so).
    """
    mapping = {"Healthy": "Current", "Degraded": "Failed", "Progressing": "InProgress", "Suspended": "InProgress"}
    for case in cases():
        if case.name == "no-status":
            assert (case.argo, case.kstatus) == ("Progressing", "Current")
            continue
        assert mapping[case.argo] == case.kstatus, case.name


def test_terminating() -> None:
    assert kstatus({"metadata": {"deletionTimestamp": "2026-01-01T00:00:00Z"}}) == "Terminating"
