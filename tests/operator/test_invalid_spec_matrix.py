"""The operator-level half of the invalid-object matrix, on the real control plane.

What the CRD cannot express (``modeldeploy.api.semantics``) the apiserver accepts; the operator then
reports it as ``Stalled=True``, reason ``InvalidSpec``, with a message naming the field, emits one
Warning Event, and makes no child. ``tests/controlplane/invalid_objects.py`` holds the cases (the
apiserver-level ones are in ``tests/controlplane/test_invalid_objects.py``).
"""

from __future__ import annotations

from typing import Any

from modeldeploy_sandbox.sandbox import Sandbox

from ..controlplane.invalid_objects import OPERATOR_LEVEL_CASES, Case, build


def _named(case: Case, index: int) -> dict[str, Any]:
    obj = build(case)
    if "metadata" not in case.patch:  # the name cases bring their own name
        obj["metadata"]["name"] = f"case-{index}"
    return obj


def _stalled(status: dict[str, Any]) -> dict[str, Any] | None:
    return next((c for c in status.get("conditions") or [] if c["type"] == "Stalled" and c["status"] == "True"), None)


def test_every_operator_level_case_stalls_naming_its_field(sandbox: Sandbox) -> None:
    objects = [_named(case, index) for index, case in enumerate(OPERATOR_LEVEL_CASES)]
    for obj in objects:
        sandbox.apply(obj)  # the apiserver accepts each one
    for case, obj in zip(OPERATOR_LEVEL_CASES, objects, strict=True):
        name = obj["metadata"]["name"]
        status = sandbox.wait_for(name, _stalled, timeout=60, what=f"{case.id} stalled")
        stalled = _stalled(status)
        assert stalled is not None and stalled["reason"] == "InvalidSpec", (case.id, status)
        assert case.field in stalled["message"] and case.message in stalled["message"], (case.id, stalled)
        assert status.get("phase") == "Failed" and status.get("observedGeneration") == 1, (case.id, status)
    deployments = sandbox.kube.list("apps/v1", "Deployment", sandbox.namespace)
    assert deployments == [], "an invalid spec made children"
    for obj in objects:
        warnings = sandbox.wait_for_events(obj["metadata"]["name"], "InvalidSpec")
        assert len(warnings) == 1 and warnings[0]["type"] == "Warning", warnings
