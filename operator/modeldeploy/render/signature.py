"""spec.model.signature in the pod: the trusted key or CA certificates reach the fetch init container
only (a volume nothing else mounts), and fetch gets the `--signature*` arguments to verify with."""

from __future__ import annotations

from typing import Any

from modeldeploy.api import ModelDeploymentSpec
from modeldeploy.api.model_signature import TrustSource

SIGNATURE_TRUST_VOLUME = "model-signature-trust"
SIGNATURE_TRUST_PATH = "/var/run/modeldeploy/signature-trust"


def _trust(spec: ModelDeploymentSpec) -> TrustSource | None:
    signature = spec.model.signature
    if signature is None:
        return None
    return signature.public_key or signature.certificate_chain


def signature_volume(spec: ModelDeploymentSpec) -> dict[str, Any] | None:
    """The Secret or ConfigMap volume holding the trusted PEM; None without one (keyless or unsigned)."""
    trust = _trust(spec)
    if trust is None:
        return None
    # 0440 with the pod's fsGroup: readable by the runtime's non-root uid, by nobody else. Only the named
    # key is projected (`items`): the other keys of a shared Secret never reach the pod.
    if trust.secret_key_ref is not None:
        ref = trust.secret_key_ref
        return {"name": SIGNATURE_TRUST_VOLUME,
                "secret": {"secretName": ref.name, "items": [{"key": ref.key, "path": ref.key}],
                           "defaultMode": 0o440}}
    assert trust.config_map_key_ref is not None  # TrustSource holds exactly one
    ref = trust.config_map_key_ref
    return {"name": SIGNATURE_TRUST_VOLUME,
            "configMap": {"name": ref.name, "items": [{"key": ref.key, "path": ref.key}], "defaultMode": 0o440}}


def signature_mounts(spec: ModelDeploymentSpec) -> list[dict[str, Any]]:
    if _trust(spec) is None:
        return []
    return [{"name": SIGNATURE_TRUST_VOLUME, "mountPath": SIGNATURE_TRUST_PATH, "readOnly": True}]


def signature_env(spec: ModelDeploymentSpec) -> list[dict[str, str]]:
    """Keyless verification keeps Sigstore's trust root (TUF) under the user's data and cache directories:
    point them at /tmp, the only writable path of the read-only root filesystem."""
    signature = spec.model.signature
    if signature is None or signature.keyless is None:
        return []
    return [{"name": "XDG_DATA_HOME", "value": "/tmp/.local/share"},
            {"name": "XDG_CACHE_HOME", "value": "/tmp/.cache"}]


def signature_args(spec: ModelDeploymentSpec) -> list[str]:
    """`modelserver fetch` arguments that make it verify the signature (none when the model is unsigned)."""
    signature = spec.model.signature
    if signature is None:
        return []
    # Default: beside the model, where export writes it (modelserver.signature.default_signature_uri).
    args = ["--signature", signature.uri or spec.model.uri + ".sig"]
    trust = _trust(spec)
    if trust is not None:
        # The one projected key's file is named after the key (signature_volume's `items`).
        ref = trust.secret_key_ref or trust.config_map_key_ref
        assert ref is not None
        flag = "--signature-public-key" if signature.public_key is not None else "--signature-certificate-chain"
        args += [flag, f"{SIGNATURE_TRUST_PATH}/{ref.key}"]
    elif signature.keyless is not None:
        args += ["--signature-identity", signature.keyless.identity,
                 "--signature-oidc-issuer", signature.keyless.oidc_issuer]
    return args
