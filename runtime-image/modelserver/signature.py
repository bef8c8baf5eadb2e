"""Model signatures: what is signed, and the check ``modelserver fetch`` runs before installing.

Signatures are OpenSSF model-signing bundles (the ``model-signing`` library, a Sigstore bundle over
an in-toto manifest of file digests). The signed "model" is a directory of two files:

``artifact``
    the artifact's bytes exactly as the model URI serves them (the ciphertext when the model is
    encrypted), whatever the file is called at its origin;
``version``
    the model version as decimal text and a newline (``spec.model.version``).

The fetcher never downloads the version file: it writes the version it was told (``--version``)
and checks the signature over both files. So a model signed as version 3 and replayed under
version 5 fails verification, as do a tampered or swapped artifact and a signature made with
another key. This is python-tuf's rollback protection cut down to one number: TUF signs a
version into its metadata and refuses anything older than what it trusts; here the signature
binds the bytes to their version, and the operator refuses a version lower than the stable's
(``DowngradeRefused``).

Trust comes from one of: an elliptic-curve public key (PEM), a CA certificate chain (PEM; the
signing certificate must chain to it), or a Sigstore identity with its OIDC issuer (keyless;
needs the public Sigstore infrastructure, so the pod needs internet access).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "SIGNED_ARTIFACT",
    "SIGNED_VERSION",
    "SignatureInvalid",
    "SignaturePolicy",
    "add_arguments",
    "default_signature_uri",
    "policy_from_args",
    "signed_payload",
    "verify_signature",
]

SIGNED_ARTIFACT = "artifact"
SIGNED_VERSION = "version"
# A Sigstore bundle is a few KiB; anything much larger is not one.
MAX_BUNDLE_BYTES = 1024 * 1024


class SignatureInvalid(Exception):
    """The model's signature is missing, malformed, from an untrusted signer, or does not match."""


@dataclass(frozen=True)
class SignaturePolicy:
    """Where the signature is and whom to trust: exactly one of the three trust options."""

    uri: str
    public_key: Path | None = None
    certificate_chain: Path | None = None
    identity: str | None = None
    oidc_issuer: str | None = None

    def __post_init__(self) -> None:
        chosen = [self.public_key is not None, self.certificate_chain is not None, self.identity is not None]
        if sum(chosen) != 1:
            raise ValueError("give exactly one of --signature-public-key, --signature-certificate-chain "
                             "or --signature-identity")
        if (self.identity is None) != (self.oidc_issuer is None):
            raise ValueError("--signature-identity and --signature-oidc-issuer go together")


def default_signature_uri(model_uri: str) -> str:
    """Where export puts the signature: beside the model, ``<model uri>.sig``."""
    return model_uri + ".sig"


@contextlib.contextmanager
def signed_payload(artifact: Path, version: str | int, workdir: Path) -> Iterator[Path]:
    """A directory laid out as signed (see the module docstring), removed afterwards.

    The artifact is hard-linked (same filesystem) or else copied: never moved, never modified.
    """
    payload = workdir / "signed-model"
    payload.mkdir()
    try:
        try:
            os.link(artifact, payload / SIGNED_ARTIFACT)
        except OSError:
            shutil.copyfile(artifact, payload / SIGNED_ARTIFACT)
        (payload / SIGNED_VERSION).write_text(f"{int(version)}\n", encoding="ascii")
        yield payload
    finally:
        shutil.rmtree(payload, ignore_errors=True)


def verify_signature(policy: SignaturePolicy, bundle: Path, artifact: Path, version: str | int,
                     workdir: Path) -> None:
    """Raise :class:`SignatureInvalid` unless ``bundle`` signs ``artifact`` as model version ``version``."""
    from model_signing import verifying  # heavy (sigstore): only when a signature is asked for

    config = verifying.Config()
    try:
        if policy.public_key is not None:
            config.use_elliptic_key_verifier(public_key=policy.public_key)
        elif policy.certificate_chain is not None:
            config.use_certificate_verifier(certificate_chain=[policy.certificate_chain])
        else:
            config.use_sigstore_verifier(identity=str(policy.identity), oidc_issuer=str(policy.oidc_issuer))
    except (OSError, ValueError, TypeError) as exc:
        raise SignatureInvalid(f"cannot load the trusted key or certificates: {_short(exc)}") from None
    except Exception as exc:  # keyless: Sigstore's trust root (TUF) could not be refreshed, e.g. no internet
        raise SignatureInvalid(f"cannot set up Sigstore keyless verification (it needs HTTPS access to "
                               f"Sigstore's public services): {type(exc).__name__}: {_short(exc)}") from None
    with signed_payload(artifact, version, workdir) as payload:
        try:
            config.verify(payload, bundle)
        except json.JSONDecodeError as exc:
            raise SignatureInvalid(f"{policy.uri} is not a valid model signature: {_short(exc)}") from None
        except ValueError as exc:
            raise SignatureInvalid(_explain(str(exc), policy, version)) from None
        except Exception as exc:
            if type(exc).__name__ == "X509StoreContextError":  # pyOpenSSL: the chain ends at no trusted CA
                raise SignatureInvalid(f"{policy.uri} is not signed by a trusted signer: the signing "
                                       f"certificate does not chain to the trusted CA certificates ({_short(exc)})"
                                       ) from None
            # A malformed bundle: JSON, protobuf, base64 or certificate parse errors.
            raise SignatureInvalid(f"{policy.uri} is not a valid model signature: {_short(exc)}") from None


def _explain(error: str, policy: SignaturePolicy, version: str | int) -> str:
    """The library's message, reworded to say what is wrong with the model."""
    # The library lists per-file differences, e.g. "Hash mismatch for 'artifact'" (quotes may be escaped).
    artifact_changed = re.search(rf"for \\?'{SIGNED_ARTIFACT}\\?'", error) is not None
    version_changed = re.search(rf"for \\?'{SIGNED_VERSION}\\?'", error) is not None
    if error.startswith("Signature mismatch") and artifact_changed:
        return (f"the artifact is not the one signed by {policy.uri} (tampered or swapped model); "
                "refusing to install it")
    if error.startswith("Signature mismatch") and version_changed:
        return (f"{policy.uri} signs this artifact for another model version than {int(version)} "
                "(spec.model.version): an older signed model replayed under a newer version is refused")
    if error.startswith("Signature mismatch"):
        return f"{policy.uri} does not sign this model ({_short(error)}): sign it with `modeldeploy export --sign-key`"
    return f"{policy.uri} is not signed by a trusted signer: {_short(error)}"


def _short(error: object, limit: int = 240) -> str:
    text = " ".join(str(error).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``--signature*`` options of ``modelserver fetch``."""
    group = parser.add_argument_group("model signature (OpenSSF model-signing)")
    group.add_argument("--signature", default=None, metavar="URI",
                       help="the signature bundle; verification is required when this or a trust option is given "
                            "(default with a trust option: <model URI>.sig)")
    group.add_argument("--signature-public-key", default=None, metavar="PEM",
                       help="trust signatures made with this elliptic-curve key's private half")
    group.add_argument("--signature-certificate-chain", default=None, metavar="PEM",
                       help="trust signing certificates that chain to these CA certificates")
    group.add_argument("--signature-identity", default=None, metavar="IDENTITY",
                       help="trust Sigstore keyless signatures of this identity (needs internet access)")
    group.add_argument("--signature-oidc-issuer", default=None, metavar="URL",
                       help="the OIDC issuer of --signature-identity")


def policy_from_args(args: argparse.Namespace, model_uri: str) -> SignaturePolicy | None:
    """The policy the options ask for; None when no signature is asked for. Raises ValueError."""
    uri = getattr(args, "signature", None)
    public_key = getattr(args, "signature_public_key", None)
    chain = getattr(args, "signature_certificate_chain", None)
    identity = getattr(args, "signature_identity", None)
    issuer = getattr(args, "signature_oidc_issuer", None)
    if not any((uri, public_key, chain, identity, issuer)):
        return None
    return SignaturePolicy(
        uri=uri or default_signature_uri(model_uri),
        public_key=Path(public_key) if public_key else None,
        certificate_chain=Path(chain) if chain else None,
        identity=identity,
        oidc_issuer=issuer,
    )
