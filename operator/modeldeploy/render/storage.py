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
# spec.model.encryption: the key (init container only), and the ciphertext staged on disk (it is safe
# there) so that only the plaintext takes memory.
DECRYPTION_KEY_VOLUME = "model-decryption-key"
DECRYPTION_KEY_PATH = "/var/run/modeldeploy/decryption"
DECRYPTION_KEY_FILE = "identity"
CIPHERTEXT_VOLUME = "model-ciphertext"
CIPHERTEXT_PATH = "/var/run/modeldeploy/ciphertext"


def _quantity(mib: int) -> str:
    """MiB as the API server writes it back (4096Mi is stored as 4Gi), so that a live object matches."""
    return f"{mib // 1024}Gi" if mib % 1024 == 0 else f"{mib}Mi"


def max_model_bytes(spec: ModelDeploymentSpec) -> int:
    """The largest artifact the init container accepts (fetch --max-bytes)."""
    return math.ceil(parse_quantity(spec.model.max_size or DEFAULT_MAX_MODEL_SIZE))


def repository_size_limit(spec: ModelDeploymentSpec) -> str:
    """sizeLimit of the model-repository emptyDir: the artifact plus headroom, in whole MiB."""
    return _quantity(math.ceil(max_model_bytes(spec) / MIB) + REPOSITORY_HEADROOM_MIB)


def repository_volume(spec: ModelDeploymentSpec) -> dict[str, Any]:
    """The model-repository emptyDir: on tmpfs (medium Memory) when the model is encrypted, so that
    decrypted weights never reach the node's disk; same sizeLimit either way."""
    empty_dir: dict[str, Any] = {"sizeLimit": repository_size_limit(spec)}
    if spec.model.encryption is not None:
        empty_dir = {"medium": "Memory", **empty_dir}
    return empty_dir


def decryption_volumes(spec: ModelDeploymentSpec) -> list[dict[str, Any]]:
    """The key Secret (only its one key, mounted by the init container only) and the disk-backed
    ciphertext staging volume; none without spec.model.encryption."""
    encryption = spec.model.encryption
    if encryption is None:
        return []
    ref = encryption.key_secret_ref
    return [
        {"name": DECRYPTION_KEY_VOLUME, "secret": {
            "secretName": ref.name, "defaultMode": 0o440,
            "items": [{"key": ref.key, "path": DECRYPTION_KEY_FILE}]}},
        {"name": CIPHERTEXT_VOLUME, "emptyDir": {"sizeLimit": repository_size_limit(spec)}},
    ]


def tmp_size_limit() -> str:
    return _quantity(TMP_SIZE_LIMIT_MIB)


def ephemeral_storage_request(spec: ModelDeploymentSpec) -> str:
    """What the pod's emptyDirs may hold at most: the scheduler places the pod where that fits.
    (An encrypted model's repository is in memory, and its ciphertext volume takes its place on disk.)"""
    mib = math.ceil(max_model_bytes(spec) / MIB) + REPOSITORY_HEADROOM_MIB + TMP_SIZE_LIMIT_MIB
    return _quantity(mib)


def credentials_volume(spec: ModelDeploymentSpec) -> dict[str, Any] | None:
    """The Secret volume of spec.model.credentials.secretRef (mounted by the init container only)."""
    credentials = spec.model.credentials
    if credentials is None or credentials.secret_ref is None:
        return None
    # 0440 with the pod's fsGroup: readable by the runtime's non-root uid, by nobody else.
    return {"name": CREDENTIALS_VOLUME, "secret": {"secretName": credentials.secret_ref.name, "defaultMode": 0o440}}
