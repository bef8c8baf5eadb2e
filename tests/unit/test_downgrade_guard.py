"""The downgrade guard in the pure planner: a lower spec.model.version than the stable's is refused."""

from __future__ import annotations

from typing import Any

from modeldeploy.api import ModelDeploymentSpec, ModelDeploymentStatus
from modeldeploy.render import spec_hash
from modeldeploy.rollout import plan

from .planner_fixtures import deployment, observed, revision_of, spec_dict


def versioned(version: int, allow_downgrade: bool = False, strategy: str = "immediate",
              file: str = "model.onnx") -> ModelDeploymentSpec:
    doc: dict[str, Any] = spec_dict(f"https://models.example/resnet/{version}/{file}", strategy=strategy)
    doc["model"]["version"] = version
    if allow_downgrade:
        doc["model"]["allowDowngrade"] = True
    return ModelDeploymentSpec.model_validate(doc)


def healthy_stable(model: ModelDeploymentSpec) -> ModelDeploymentStatus:
    """Status after `model` was first deployed and became ready."""
    first = plan(observed(model))
    status = plan(observed(model, first.status, [deployment(model, ready=2)], seconds=5)).status
    assert status.phase == "Healthy"
    return status


def test_the_stable_revision_records_its_model_version() -> None:
    model = versioned(7)
    status = healthy_stable(model)
    name, _ = revision_of(model)
    assert [(entry.name, entry.model_version) for entry in status.revisions] == [(name, 7)]


def test_a_lower_version_is_refused_and_nothing_of_it_is_created() -> None:
    v7, v3 = versioned(7), versioned(3)
    status = healthy_stable(v7)
    stable, _ = revision_of(v7)
    refused, _ = revision_of(v3)
    for strategy in ("immediate", "canary"):
        lower = versioned(3, strategy=strategy)
        result = plan(observed(lower, status, [deployment(v7, ready=2)], seconds=10))
        assert result.status.phase == "Failed"
        assert [(r.revision, r.role, r.render) for r in result.revisions] == [(stable, "stable", False)]
        assert result.weights == {stable: 100} and result.hpa_target == stable
        assert result.status.stable_revision == stable and result.status.canary_revision is None
        assert result.delete_revisions == []
        stalled = next(c for c in result.status.conditions if c.type == "Stalled")
        assert (stalled.status, stalled.reason) == ("True", "DowngradeRefused")
        assert [(e.type, e.reason) for e in result.events] == [("Warning", "DowngradeRefused")]
        assert "spec.model.version 3 is lower than version 7" in result.status.message
        assert "allowDowngrade" in result.status.message
        assert all(entry.name != refused for entry in result.status.revisions)
        # Still refused on the next round, without another Event.
        again = plan(observed(lower, result.status, [deployment(v7, ready=2)], seconds=20))
        assert again.status.phase == "Failed" and again.events == []
        assert [r.revision for r in again.revisions] == [stable]


def test_allow_downgrade_lets_a_revert_through_as_the_same_revision() -> None:
    v7 = versioned(7)
    status = healthy_stable(v7)
    stable, stable_hash = revision_of(v7)
    refused = plan(observed(versioned(3), status, [deployment(v7, ready=2)], seconds=10))
    allowed = versioned(3, allow_downgrade=True)
    # One explicit line, and no new revision: the refused spec plus allowDowngrade hashes the same.
    assert spec_hash(allowed) == spec_hash(versioned(3))
    candidate, _ = revision_of(allowed)
    result = plan(observed(allowed, refused.status, [deployment(v7, ready=2)], seconds=15))
    assert result.status.phase == "Progressing"
    assert candidate in [r.revision for r in result.revisions]
    promoted = plan(observed(allowed, result.status,
                             [deployment(v7, ready=2), deployment(allowed, ready=2, role="canary")], seconds=20))
    assert promoted.status.phase == "Healthy" and promoted.status.stable_revision == candidate
    assert stable != candidate and stable_hash


def test_an_equal_or_higher_version_is_not_refused() -> None:
    v3 = versioned(3)
    status = healthy_stable(v3)
    for newer in (versioned(4), versioned(3, strategy="canary", file="rebuilt.onnx")):
        result = plan(observed(newer, status, [deployment(v3, ready=2)], seconds=10))
        assert result.status.phase == "Progressing", result.status.message


def test_a_stable_without_a_recorded_version_cannot_be_compared() -> None:
    v7 = versioned(7)
    status = healthy_stable(v7)
    for entry in status.revisions:
        entry.model_version = None  # as written by an operator before the guard existed
    result = plan(observed(versioned(3), status, [deployment(v7, ready=2)], seconds=10))
    assert result.status.phase == "Progressing"
