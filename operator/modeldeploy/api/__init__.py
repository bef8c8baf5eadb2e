"""The ModelDeployment API: pydantic models that are the single source of the CRD."""

from .resource import ModelDeployment
from .spec import ModelDeploymentSpec
from .status import ModelDeploymentStatus
from .types import API_VERSION, GROUP, KIND, PLURAL, SHORT_NAME, VERSION

__all__ = [
    "API_VERSION", "GROUP", "KIND", "PLURAL", "SHORT_NAME", "VERSION",
    "ModelDeployment", "ModelDeploymentSpec", "ModelDeploymentStatus",
]
