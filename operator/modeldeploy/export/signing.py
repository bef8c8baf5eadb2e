"""`modeldeploy export --sign-key`: an OpenSSF model-signing signature beside the exported model.

The signature covers the artifact's final bytes (the ciphertext when the model is encrypted: signing
comes last) together with the model version, laid out as `modelserver.signature` describes, so the
init container can check both: a tampered, swapped or replayed older model is never served.
Two ways to sign offline: an elliptic-curve private key (trusted through its public key), or a key with
its signing certificate (trusted through the CA chain). Keyless Sigstore signing needs a browser or a
CI identity and the internet; docs/security.md shows it.
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelserver.signature import signed_payload

from .errors import ExportError, one_line

SIGNATURE_SUFFIX = ".sig"
PUBLIC_KEY_NAME = "signing-public.pem"


@dataclass(frozen=True)
class SigningKey:
    private_key: Path
    certificate: Path | None = None
    chain: tuple[Path, ...] = ()


@dataclass(frozen=True)
class Signed:
    signature: Path
    public_key: Path | None  # written for key signing: what to put into the ConfigMap or Secret


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("signing (OpenSSF model-signing)")
    group.add_argument("--sign-key", metavar="PEM",
                       help="sign the model with this elliptic-curve private key (P-256/P-384/P-521); "
                            "the signature is written beside the model as <file>.sig")
    group.add_argument("--sign-certificate", metavar="PEM",
                       help="sign as this certificate (its key is --sign-key); trusted through its CA chain")
    group.add_argument("--sign-certificate-chain", action="append", default=[], metavar="PEM",
                       help="intermediate/root certificates embedded with --sign-certificate (repeatable)")


def key_from_args(args: argparse.Namespace) -> SigningKey | None:
    """The signing key asked for, checked before any export step runs; None without --sign-key."""
    key = getattr(args, "sign_key", None)
    certificate = getattr(args, "sign_certificate", None)
    chain = tuple(Path(p) for p in getattr(args, "sign_certificate_chain", None) or ())
    if key is None:
        if certificate or chain:
            raise ExportError("--sign-certificate and --sign-certificate-chain need --sign-key (the certificate's key)")
        return None
    if chain and certificate is None:
        raise ExportError("--sign-certificate-chain needs --sign-certificate")
    if certificate is not None and not chain:
        raise ExportError("--sign-certificate needs --sign-certificate-chain: the CA certificates it chains to")
    for flag, path in (("--sign-key", key), ("--sign-certificate", certificate), *(
            ("--sign-certificate-chain", str(p)) for p in chain)):
        if path is not None and not Path(path).is_file():
            raise ExportError(f"{flag} {path}: no such file")
    try:  # a wrong file is named now, not after a long export
        _public_pem(Path(key))
    except (ValueError, TypeError) as exc:
        raise ExportError(f"cannot use --sign-key {key}: not an unencrypted PEM private key ({one_line(str(exc))})"
                          ) from None
    return SigningKey(Path(key), Path(certificate) if certificate else None, chain)


def sign_artifact(artifact: Path, version: int, key: SigningKey, signature: Path | None = None) -> Signed:
    """Sign `artifact` as model version `version`; the bundle goes to `signature` (default `<artifact>.sig`)."""
    from model_signing import signing  # heavy (sigstore): only when signing

    target = signature or artifact.with_name(artifact.name + SIGNATURE_SUFFIX)
    config = signing.Config()
    try:
        if key.certificate is None:
            config.use_elliptic_key_signer(private_key=key.private_key)
        else:
            config.use_certificate_signer(private_key=key.private_key, signing_certificate=key.certificate,
                                          certificate_chain=list(key.chain))
    except Exception as exc:  # unreadable PEM, wrong key type, password-protected key, bad certificate
        raise ExportError(f"cannot use --sign-key {key.private_key}: {one_line(str(exc))}") from None
    with tempfile.TemporaryDirectory(prefix="modeldeploy-sign-", dir=artifact.parent) as work, \
            signed_payload(artifact, version, Path(work)) as payload:
        try:
            config.sign(payload, target)
        except OSError as exc:
            raise ExportError(f"cannot write the signature {target}: {exc.strerror or exc}") from None
        except Exception as exc:
            raise ExportError(f"signing failed: {one_line(str(exc))}") from None
    public = None
    if key.certificate is None:
        public = artifact.parent / PUBLIC_KEY_NAME
        public.write_bytes(_public_pem(key.private_key))
    return Signed(target, public)


def _public_pem(private_key: Path) -> bytes:
    from cryptography.hazmat.primitives import serialization

    loaded = serialization.load_pem_private_key(private_key.read_bytes(), password=None)
    return loaded.public_key().public_bytes(serialization.Encoding.PEM,
                                            serialization.PublicFormat.SubjectPublicKeyInfo)


def manifest_signature(name: str, key: SigningKey, uri: str, signature_uri: str) -> dict[str, Any]:
    """spec.model.signature of the printed ModelDeployment: trust from a ConfigMap `<name>-model-signing`."""
    file = PUBLIC_KEY_NAME if key.certificate is None else "ca.pem"
    trust = {"configMapKeyRef": {"name": f"{name}-model-signing", "key": file}}
    stanza: dict[str, Any] = {"publicKey": trust} if key.certificate is None else {"certificateChain": trust}
    if signature_uri != uri + SIGNATURE_SUFFIX:
        stanza["uri"] = signature_uri
    return stanza


def trust_hint(name: str, signed: Signed, key: SigningKey, chain: Sequence[Path] = ()) -> str:
    """The one command that creates the ConfigMap the manifest refers to."""
    if signed.public_key is not None:
        source = f"{PUBLIC_KEY_NAME}={signed.public_key}"
    else:
        roots = chain or key.chain
        source = f"ca.pem={roots[-1] if roots else '<your CA certificate>'}"
    return f"kubectl create configmap {name}-model-signing --from-file={source}"
