"""Disk of an inference pod: the model volume is sized from the model, so a huge or endless artifact
fails the init container (ArtifactTooLarge) instead of filling the node's disk."""

from __future__ import annotations

import math
from typing import Any

from modeldeploy.api import ModelDeploymentSpec
from modeldeploy.api.types import parse_quantity

MIB = 2**20
# Without spec.model.maxSize: large enough for most ONNX models; bigger ones must say their size.
DEFAULT_MAX_MODEL_SIZE = "4Gi"
# The repository also holds config.pbtxt and directory entries: a little room beyond the artifact.
REPOSITORY_HEADROOM_MIB = 64
# /tmp of both containers (read-only root filesystems): scratch space only, never the model.
TMP_SIZE_LIMIT_MIB = 1024
CREDENTIALS_VOLUME = "model-credentials"
CREDENTIALS_PATH = "/var/run/modeldeploy/credentials"


def _quantity(mib: int) -> str:
    """MiB as the API server writes it back (4096Mi is stored as 4Gi), so that a live object matches."""
    return f"{mib // 1024}Gi" if mib % 1024 == 0 else f"{mib}Mi"


def max_model_bytes(spec: ModelDeploymentSpec) -> int:
    """The largest artifact the init container accepts (fetch --max-bytes)."""
    return math.ceil(parse_quantity(spec.model.max_size or DEFAULT_MAX_MODEL_SIZE))


def repository_size_limit(spec: ModelDeploymentSpec) -> str:
    """sizeLimit of the model-repository emptyDir: the artifact plus headroom, in whole MiB."""
    return _quantity(math.ceil(max_model_bytes(spec) / MIB) + REPOSITORY_HEADROOM_MIB)


def tmp_size_limit() -> str:
    return _quantity(TMP_SIZE_LIMIT_MIB)


def ephemeral_storage_request(spec: ModelDeploymentSpec) -> str:
    """What the pod's emptyDirs may hold at most: the scheduler places the pod where that fits."""
    mib = math.ceil(max_model_bytes(spec) / MIB) + REPOSITORY_HEADROOM_MIB + TMP_SIZE_LIMIT_MIB
    return _quantity(mib)


def credentials_volume(spec: ModelDeploymentSpec) -> dict[str, Any] | None:
    """The Secret volume of spec.model.credentials.secretRef (mounted by the init container only)."""
    credentials = spec.model.credentials
    if credentials is None or credentials.secret_ref is None:
        return None
    # 0440 with the pod's fsGroup: readable by the runtime's non-root uid, by nobody else.
    return {"name": CREDENTIALS_VOLUME, "secret": {"secretName": credentials.secret_ref.name, "defaultMode": 0o440}}
