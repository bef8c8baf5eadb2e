"""Credentials of a private model source, read by ``modelserver fetch --credentials-dir DIR``.

DIR is a mounted Secret (the operator mounts ``spec.model.credentials.secretRef`` into the init
container only): one file per key. Recognised keys:

``token``                    an HTTP bearer token for ``https://`` sources. It is never sent over
                             plain ``http://`` (except to a loopback address) and never follows a
                             redirect: a CDN redirect does not receive it.
``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``, ``AWS_REGION``,
``AWS_ENDPOINT_URL``         for ``s3://`` sources (S3-compatible stores through the endpoint).

Other keys are ignored, so one Secret can serve several tools.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

AWS_KEYS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_REGION", "AWS_ENDPOINT_URL")
TOKEN_KEY = "token"
MAX_VALUE_BYTES = 64 * 1024  # a credential is small: a bigger file is a mistake, not a key


class CredentialsError(ValueError):
    """The credentials directory cannot be used; the message names the directory or key."""


@dataclass(frozen=True)
class SourceCredentials:
    token: str | None = None
    aws: tuple[tuple[str, str], ...] = ()

    def aws_value(self, key: str) -> str | None:
        return dict(self.aws).get(key)

    @property
    def has_aws_keys(self) -> bool:
        return self.aws_value("AWS_ACCESS_KEY_ID") is not None


def _read(path: Path) -> str | None:
    if not path.is_file():
        return None
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise CredentialsError(f"cannot read credential {path.name}: {exc.strerror or exc}") from None
    if len(raw) > MAX_VALUE_BYTES:
        raise CredentialsError(f"credential {path.name} is over {MAX_VALUE_BYTES} bytes")
    try:
        value = raw.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise CredentialsError(f"credential {path.name} is not UTF-8 text") from None
    if any(ch in value for ch in "\r\n\0"):
        # A header value with a line break would smuggle a second header.
        raise CredentialsError(f"credential {path.name} contains a line break or NUL")
    return value or None


def load_credentials(directory: str | os.PathLike[str]) -> SourceCredentials:
    """Read the recognised keys of a mounted Secret; raise CredentialsError for an unusable one."""
    root = Path(directory)
    if not root.is_dir():
        raise CredentialsError(f"credentials directory {root} does not exist (is the Secret mounted?)")
    aws = tuple((key, value) for key in AWS_KEYS if (value := _read(root / key)) is not None)
    keys = dict(aws)
    if ("AWS_ACCESS_KEY_ID" in keys) != ("AWS_SECRET_ACCESS_KEY" in keys):
        raise CredentialsError("credentials need both AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or neither")
    return SourceCredentials(token=_read(root / TOKEN_KEY), aws=aws)


def token_allowed(scheme: str, host: str) -> bool:
    """A bearer token goes over TLS only, or to this machine (tests, sidecar proxies)."""
    if scheme == "https":
        return True
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
