"""Flux (kustomize-controller health checks) and `kubectl wait` read kstatus: check its rules hold.

kstatus' generic rules for a custom resource (sigs.k8s.io/cli-utils/pkg/kstatus/status):
observedGeneration behind metadata.generation -> InProgress; Reconciling=True -> InProgress;
Stalled=True -> Failed; Ready present and not True -> InProgress; otherwise Current.
"""

from __future__ import annotations

from typing import Any

import pytest

from .statuses import Case, cases, statuses


def kstatus(obj: dict[str, Any]) -> str:
    status = obj.get("status")
    if status is None:
        return "InProgress"
    generation = obj["metadata"].get("generation")
    observed = status.get("observedGeneration")
    if generation is not None and observed is not None and observed != generation:
        return "InProgress"
    conditions = {c["type"]: c for c in status.get("conditions", [])}
    if conditions.get("Stalled", {}).get("status") == "True":
        return "Failed"
    if conditions.get("Reconciling", {}).get("status") == "True":
        return "InProgress"
    if "Ready" in conditions and conditions["Ready"]["status"] != "True":
        return "InProgress"
    return "Current"  # kstatus: no conditions at all and an up-to-date generation count as Current


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


def test_argo_and_flux_agree() -> None:
    """Healthy <-> Current; Degraded <-> Failed; the rest are both 'not done yet'."""
    mapping = {"Healthy": "Current", "Degraded": "Failed", "Progressing": "InProgress", "Suspended": "InProgress"}
    for case in cases():
        assert mapping[case.argo] == case.kstatus, case.name
