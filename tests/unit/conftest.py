"""Fixtures of the render tests (named render_* so they never clash with other suites)."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from modeldeploy.api import ModelDeploymentSpec
from modeldeploy.render import Owner, RuntimeImages

DIGEST = "sha256:" + "ab" * 32
SpecFactory = Callable[..., ModelDeploymentSpec]


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


BASE_SPEC: dict[str, Any] = {
    "model": {"uri": "https://models.example.com/resnet/1/model.onnx", "digest": DIGEST},
    "resources": {"requests": {"cpu": "1", "memory": "2Gi"}},
}


@pytest.fixture
def render_spec() -> SpecFactory:
    """`render_spec({"runtime": {...}})`: the base CPU onnx spec deep-merged with overrides."""

    def make(override: dict[str, Any] | None = None) -> ModelDeploymentSpec:
        return ModelDeploymentSpec.model_validate(_merge(BASE_SPEC, override or {}))

    return make


@pytest.fixture
def render_owner() -> Owner:
    return Owner(api_version="serving.modeldeploy.dev/v1alpha1", kind="ModelDeployment",
                 name="resnet", namespace="ml", uid="3f1c9a2e-8b7d-4e6f-9a0b-1c2d3e4f5a6b")


@pytest.fixture
def render_images() -> RuntimeImages:
    return RuntimeImages()
