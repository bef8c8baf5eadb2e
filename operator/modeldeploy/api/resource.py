"""The whole ModelDeployment object."""

from __future__ import annotations

from typing import Any

from pydantic import ConfigDict, Field

from .base import ApiModel
from .spec import ModelDeploymentSpec
from .status import ModelDeploymentStatus


class ModelDeployment(ApiModel):
    """A model served by GPU-scheduled inference pods, autoscaled, and rolled out as a canary."""

    model_config = ConfigDict(extra="ignore")

    api_version: str = "serving.modeldeploy.dev/v1alpha1"
    """API version."""
    kind: str = "ModelDeployment"
    """Kind."""
    metadata: dict[str, Any] = Field(default_factory=dict)
    """Standard object metadata."""
    spec: ModelDeploymentSpec
    """Desired state."""
    status: ModelDeploymentStatus = Field(default_factory=ModelDeploymentStatus)
    """Observed state."""
