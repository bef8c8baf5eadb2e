"""Decryption of age-encrypted models for ``modelserver fetch --decryption-key FILE --ciphertext-dir DIR``.

The artifact is an age file (age-encryption.org/v1, X25519 recipients), e.g. written by
``modeldeploy export --encrypt-to``. The order is fixed: the ciphertext is downloaded into
``--ciphertext-dir`` (a disk-backed volume: ciphertext is safe on disk) by the ordinary fetch, which
checks its digest (and signature): both cover the ciphertext. Only then is it decrypted, streamed
(age authenticates every 64 KiB chunk; the file is never held in memory) into a staging file inside
the model repository, which the pod keeps on tmpfs (emptyDir ``medium: Memory``). The file is
renamed into place only when the whole stream decrypted and authenticated; on a wrong key, a
corrupted or truncated ciphertext, a full volume or a signal the staging file is removed, so a
half-written model never appears.

Failures are ``DecryptionFailed`` (exit code 11): the operator names the revision's failure after it.
"""

from __future__ import annotations

import io
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pyrage
from pyrage import x25519

from modelserver.fetch import (
    FORMAT_FILENAMES,
    STAGING_PREFIX,
    FetchError,
    FetchResult,
    WriteError,
    _cleanup_stale_staging,
    _install,
    _load_config,
    _validate_name,
    _validate_version,
    fetch_model_detailed,
)

EXIT_DECRYPTION_FAILED = 11
# Where an identity comes from, for messages: the Secret's key, never its content.
KEY_FIELD = "spec.model.encryption.keySecretRef"
MAX_IDENTITY_FILE_BYTES = 64 * 1024


class DecryptionError(FetchError):
    reason, exit_code = "DecryptionFailed", EXIT_DECRYPTION_FAILED


def load_identities(path: str | os.PathLike[str]) -> list[x25519.Identity]:
    """The X25519 identities of an age identity file: one ``AGE-SECRET-KEY-1...`` per line, ``#``
    comments and blank lines allowed. Errors name the line, never echo key material."""
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_IDENTITY_FILE_BYTES + 1)
    except OSError as exc:
        raise DecryptionError(f"cannot read the decryption key {path} ({KEY_FIELD}): {exc.strerror or exc}") from None
    if len(raw) > MAX_IDENTITY_FILE_BYTES:
        raise DecryptionError(f"the decryption key {path} ({KEY_FIELD}) is over {MAX_IDENTITY_FILE_BYTES} bytes: "
                              "not an age identity file")
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError:
        raise DecryptionError(f"the decryption key {path} ({KEY_FIELD}) is not an age identity file "
                              "(not ASCII text)") from None
    identities: list[x25519.Identity] = []
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        try:
            identities.append(x25519.Identity.from_str(line))
        except pyrage.IdentityError:
            raise DecryptionError(f"line {number} of the decryption key {path} ({KEY_FIELD}) is not an age "
                                  "X25519 identity (AGE-SECRET-KEY-1...)") from None
    if not identities:
        raise DecryptionError(f"the decryption key {path} ({KEY_FIELD}) holds no age identity (AGE-SECRET-KEY-1...)")
    return identities


class _Reader(io.RawIOBase):
    """The ciphertext, with local read errors told apart from decryption errors."""

    def __init__(self, handle: io.BufferedReader) -> None:
        self._handle = handle

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        try:
            return self._handle.readinto(buffer)
        except OSError as exc:
            raise WriteError(f"cannot read the staged ciphertext: {exc.strerror or exc}") from None


class _Writer(io.RawIOBase):
    """The plaintext: a full memory volume is RepositoryWriteFailed, not a decryption failure."""

    def __init__(self, handle: io.BufferedWriter) -> None:
        self._handle = handle
        self.written = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        try:
            count = self._handle.write(data)
        except OSError as exc:
            raise WriteError(f"cannot write the decrypted model: {exc.strerror or exc} "
                             "(the model volume's sizeLimit comes from spec.model.maxSize)") from None
        self.written += count
        return count


def decrypt_file(ciphertext: Path, plaintext: Path, identities: Iterable[x25519.Identity], *, what: str) -> int:
    """Stream-decrypt ``ciphertext`` into a new file ``plaintext``; return its size. On any failure
    ``plaintext`` is removed before the error propagates (age writes authenticated chunks as it goes)."""
    keys = list(identities)
    try:
        with ciphertext.open("rb") as source, plaintext.open("xb") as target:
            writer = _Writer(target)
            try:
                pyrage.decrypt_io(_Reader(source), writer, keys)  # type: ignore[arg-type]
            except pyrage.DecryptError as exc:
                raise DecryptionError(_explain(what, str(exc))) from None
            except OSError as exc:  # the stream's own errors: I/O errors of the files are WriteError above
                raise DecryptionError(_explain(what, str(exc))) from None
            target.flush()
            os.fsync(target.fileno())
        return writer.written
    except BaseException:
        plaintext.unlink(missing_ok=True)
        raise


def _explain(what: str, detail: str) -> str:
    if "no matching keys" in detail.lower():
        cause = f"wrong key: no identity of {KEY_FIELD} is a recipient of it"
    elif "truncated" in detail.lower():
        cause = "the ciphertext is truncated"
    elif "header" in detail.lower() or "fill whole buffer" in detail.lower():
        cause = "not an age-encrypted file (bad header)"
    else:
        cause = "the ciphertext is corrupted (a chunk failed authentication)"
    return f"cannot decrypt {what}: {cause} ({detail}); nothing was installed"


def decrypting_fetch(key_file: str, ciphertext_dir: str) -> Callable[..., FetchResult]:
    """A drop-in for :func:`modelserver.fetch.fetch_model_detailed` that stages and verifies the
    ciphertext in ``ciphertext_dir`` (the ordinary fetch: digest, signature, retries, reuse) and then
    installs its plaintext into the repository."""

    def fetch(uri: str, digest: str | None, repository: str | os.PathLike[str], model: str,
              version: str | int = 1, *, model_format: str = "onnx", config_pbtxt: str | None = None,
              log: Callable[[str], None] | None = None, **options: Any) -> FetchResult:
        say = log or (lambda message: None)
        # Argument errors first, as the ordinary fetch does: before the network or any disk.
        model, version = _validate_name("model name", model), _validate_version(version)
        config_text = _load_config(config_pbtxt) if config_pbtxt is not None else None
        identities = load_identities(key_file)
        sealed = fetch_model_detailed(uri, digest, ciphertext_dir, model, version, model_format=model_format,
                                      log=log, **options)
        repo = Path(repository)
        model_dir = repo / model
        target = model_dir / version / FORMAT_FILENAMES[model_format]
        try:
            repo.mkdir(parents=True, exist_ok=True)
            # A killed earlier attempt may have left a half-decrypted staging directory behind.
            _cleanup_stale_staging(repo, say)
            staging = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=repo))
        except OSError as exc:
            raise WriteError(f"cannot write into model repository {repo}: {exc.strerror or exc}") from None
        try:
            size = decrypt_file(sealed.path, staging / "decrypted.partial", identities,
                                what=f"the artifact of {uri} ({sealed.digest})")
            _install(repo, staging, staging / "decrypted.partial", model_dir, target.parent, target, config_text)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        say(f"decrypted {sealed.path.name} ({sealed.size} bytes) into {target} ({size} bytes, memory volume)")
        return replace(sealed, path=target, size=size)

    return fetch

