"""Default runtime images, overridable per operator install through the environment."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

MODELSERVER_IMAGE_ENV = "MODELDEPLOY_MODELSERVER_IMAGE"
MODELSERVER_GPU_IMAGE_ENV = "MODELDEPLOY_MODELSERVER_GPU_IMAGE"
TRITON_IMAGE_ENV = "MODELDEPLOY_TRITON_IMAGE"


@dataclass(frozen=True)
class RuntimeImages:
    """Images of the runtimes. modelserver (CPU) also runs the `fetch` init container."""

    modelserver: str = "ghcr.io/modeldeploy/modelserver:0.1.0"
    modelserver_gpu: str = "ghcr.io/modeldeploy/modelserver:0.1.0-gpu"
    triton: str = "nvcr.io/nvidia/tritonserver:24.10-py3"

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> RuntimeImages:
        """Images from MODELDEPLOY_*_IMAGE variables; unset or empty ones keep the default."""
        default = cls()
        return cls(
            modelserver=environ.get(MODELSERVER_IMAGE_ENV) or default.modelserver,
            modelserver_gpu=environ.get(MODELSERVER_GPU_IMAGE_ENV) or default.modelserver_gpu,
            triton=environ.get(TRITON_IMAGE_ENV) or default.triton,
        )
