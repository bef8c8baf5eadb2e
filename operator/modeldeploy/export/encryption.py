"""`modeldeploy export --encrypt-to`: the served model as an age file (age-encryption.org/v1).

Recipients are age X25519 public keys (`age1...`), given directly or as a file with one per line
(`#` comments allowed), as `age -R` reads them. Only public keys are needed here: the matching
identity lives in the cluster's Secret (spec.model.encryption.keySecretRef) and nowhere else.
Encryption streams (64 KiB chunks): a multi-GB model is never held in memory.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import pyrage
from pyrage import x25519

from .errors import ExportError

SUFFIX = ".age"
SECRET_NAME_RE = re.compile(r"^(?=.{1,253}$)[a-z0-9]([-.a-z0-9]*[a-z0-9])?$")
MAX_RECIPIENTS_FILE_BYTES = 1024 * 1024


def _recipient(text: str, where: str) -> x25519.Recipient:
    try:
        return x25519.Recipient.from_str(text)
    except pyrage.RecipientError as exc:
        raise ExportError(f"--encrypt-to {where}: not an age X25519 recipient (age1...): {exc}") from None


def parse_recipients(values: Sequence[str]) -> list[x25519.Recipient]:
    """Each value is a recipient (`age1...`) or a recipients file; at least one recipient in all."""
    recipients: list[x25519.Recipient] = []
    for value in values:
        if value.startswith("age1"):
            recipients.append(_recipient(value, repr(value)))
            continue
        path = Path(value)
        if not path.is_file():
            raise ExportError(f"--encrypt-to {value!r} is neither an age recipient (age1...) nor a recipients file")
        if path.stat().st_size > MAX_RECIPIENTS_FILE_BYTES:
            raise ExportError(f"--encrypt-to {value}: a recipients file of more than 1 MiB")
        try:
            lines = path.read_text(encoding="ascii").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise ExportError(f"cannot read --encrypt-to file {value}: {exc}") from None
        found = [(number, line.strip()) for number, line in enumerate(lines, start=1)
                 if line.strip() and not line.lstrip().startswith("#")]
        if not found:
            raise ExportError(f"--encrypt-to file {value} holds no recipient")
        if any(line.startswith("AGE-SECRET-KEY-") for _, line in found):
            # An identity file here means the secret key is on the exporting machine: refuse to use it.
            raise ExportError(f"--encrypt-to file {value} holds a secret key (AGE-SECRET-KEY-...): give the public "
                              "key (age-keygen -y) instead")
        recipients += [_recipient(line, f"file {value} line {number}") for number, line in found]
    return recipients


def encrypt_model(plaintext: Path, ciphertext: Path, recipients: Sequence[x25519.Recipient]) -> None:
    """Stream-encrypt `plaintext` into the new file `ciphertext` (binary age format)."""
    try:
        pyrage.encrypt_file(str(plaintext), str(ciphertext), list(recipients))
    except (pyrage.EncryptError, OSError) as exc:
        ciphertext.unlink(missing_ok=True)
        raise ExportError(f"cannot encrypt the model: {exc}") from None
