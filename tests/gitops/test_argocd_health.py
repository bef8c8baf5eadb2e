"""The Argo CD health check (gitops/argocd/health.lua), run in a real Lua VM (lupa) as Argo CD does."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lupa
import pytest
import yaml

from .statuses import Case, cases, statuses

ROOT = Path(__file__).resolve().parents[2]
HEALTH_LUA = ROOT / "gitops" / "argocd" / "health.lua"
CM_PATCH = ROOT / "gitops" / "argocd" / "argocd-cm-patch.yaml"
ARGO_STATUSES = {"Healthy", "Progressing", "Degraded", "Suspended", "Missing", "Unknown"}


def _to_lua(runtime: Any, value: Any) -> Any:
    """JSON -> Lua the way Argo CD's gopher-lua bridge does it: objects and arrays become tables
    (arrays 1-indexed), JSON null is absent."""
    if isinstance(value, dict):
        return runtime.table_from({key: _to_lua(runtime, item) for key, item in value.items() if item is not None})
    if isinstance(value, list):
        return runtime.table_from([_to_lua(runtime, item) for item in value])
    return value


def run_health(obj: dict[str, Any], script: str | None = None) -> dict[str, str]:
    runtime = lupa.LuaRuntime(unpack_returned_tuples=True, register_eval=False)
    runtime.globals().obj = _to_lua(runtime, obj)
    result = runtime.execute(script if script is not None else HEALTH_LUA.read_text())
    assert lupa.lua_type(result) == "table", "a health script returns a table"
    return {str(key): str(value) for key, value in result.items()}


@pytest.mark.parametrize("case", cases(), ids=lambda case: case.name)
def test_health_for_every_phase(case: Case) -> None:
    health = run_health(case.obj)
    assert health["status"] == case.argo
    assert set(health) == {"status", "message"} and health["message"]


def test_degraded_names_the_reason_and_the_rejected_revision() -> None:
    rolled_back = next(case for case in cases() if case.name == "rolled-back")
    message = run_health(rolled_back.obj)["message"]
    assert message.startswith("ArtifactIntegrity: ") and "rolled back" in message


def test_every_planner_phase_is_covered() -> None:
    phases = {status.phase for status in statuses().values()}
    assert phases == {"Pending", "Progressing", "Healthy", "Paused", "RolledBack", "Failed"}


def test_the_configmap_patch_carries_the_script_verbatim() -> None:
    patch = yaml.safe_load(CM_PATCH.read_text())
    assert patch["kind"] == "ConfigMap" and patch["metadata"]["name"] == "argocd-cm"
    key = "resource.customizations.health.serving.modeldeploy.dev_ModelDeployment"
    assert patch["data"] == {key: HEALTH_LUA.read_text()}


def test_unknown_conditions_and_missing_fields_do_not_break_the_script() -> None:
    obj = {"metadata": {}, "status": {"conditions": [{"type": "Other", "status": "True"}]}}
    assert run_health(obj)["status"] == "Progressing"
    assert run_health({"metadata": {"generation": 3}, "status": {"observedGeneration": 3, "phase": "Healthy",
                                                                 "conditions": []}})["status"] == "Progressing"


def test_only_argo_statuses_are_returned() -> None:
    for case in cases():
        assert run_health(case.obj)["status"] in ARGO_STATUSES
