"""``modelserver fetch``: stage one model artifact into a Triton-layout model repository.

This is the init container of every serving pod, for both runtimes (Triton and modelserver)::

    modelserver fetch URI --digest sha256:HEX --into /models --model resnet --version 1 \\
        [--format onnx|tensorrt_plan|torchscript] [--config-pbtxt FILE-or-TEXT]

It writes ``<REPO>/<MODEL>/<VERSION>/model.onnx`` (``model.plan`` / ``model.pt`` for the other
formats) and, when asked, ``<REPO>/<MODEL>/config.pbtxt``.

Sources
    ``http://`` / ``https://``  streamed; transient failures (connection errors, timeouts, a body
                                cut short, 408/429/5xx) are retried with exponential backoff and the
                                download resumes with ``Range`` (guarded by ``If-Range``) when the
                                server supports it, otherwise it restarts from byte 0.
    ``file://PATH``, ``PATH``   a local file.
    ``pvc://CLAIM/PATH``        a file on a PersistentVolumeClaim that the pod mounts at
                                ``<--pvc-root>/<CLAIM>`` (default root ``/mnt/pvc``).
    ``s3://BUCKET/KEY``         through boto3 (the ``s3`` extra); credentials, region and endpoint
                                come from the standard AWS variables (``AWS_ENDPOINT_URL_S3`` or
                                ``AWS_ENDPOINT_URL`` for S3-compatible stores).
    ``oci://``                  rejected: not supported yet (the CRD refuses it too).

Credentials
    ``--credentials-dir DIR`` reads a mounted Secret (see ``modelserver.source_credentials``): a
    bearer ``token`` for https:// (never sent over plain http to another host, never forwarded on
    a redirect) and AWS keys for s3://. Without it, s3:// uses the standard AWS chain (workload
    identity through the pod's ServiceAccount included).

Integrity
    The artifact is downloaded into a hidden staging directory inside ``<REPO>`` (same filesystem,
    so the final step is an atomic rename) and hashed while it streams. Nothing is placed under
    ``<REPO>/<MODEL>`` until the sha256 matches; on any failure the staging directory is removed,
    so a partial or unverified download never looks like a complete model. Leftover staging
    directories of a killed earlier attempt are removed on the next run. ``--allow-unverified``
    is only honoured when no ``--digest`` is given (a warning is printed); a given digest is
    always checked. If the target file already exists with the expected digest, it is kept and
    nothing is downloaded (cheap init-container restarts).

Errors
    Every failure is reported as one line on stderr, ``modelserver fetch: <Reason>: <message>``,
    never a traceback. The same line is written to ``--termination-log`` (default
    ``/dev/termination-log`` when it exists) so the operator can classify the failure from the
    pod status. Exit codes:

    ===  =======================  ===========================================================
    0    -                        the model is in place
    1    InternalError            unexpected bug (still reported on one line)
    2    InvalidArgument          bad digest/URI/name/version/config, unsupported scheme
    3    ArtifactIntegrity        sha256 mismatch (both digests are in the message)
    4    ArtifactNotFound         404/410, missing file, missing S3 bucket or key
    5    ArtifactAccessDenied     401/403, unreadable file, missing or rejected credentials
    6    DownloadFailed           network failure or truncated body after all retries, other
                                  HTTP errors
    7    ArtifactTooLarge         bigger than ``--max-bytes``
    8    RepositoryWriteFailed    the repository cannot be written (permissions, disk full)
    9    MissingDependency        ``s3://`` without boto3 installed
    10   SignatureInvalid         ``--signature*`` given and the signature is missing, malformed,
                                  untrusted or does not cover the artifact and ``--version``
                                  (see ``modelserver.signature``)
    11   DecryptionFailed         ``--decryption-key`` given and the artifact does not decrypt: wrong
                                  key, corrupted or truncated ciphertext (see ``modelserver.decrypt``)
    143  Interrupted              SIGTERM/SIGINT during the fetch (staging is cleaned up)
    ===  =======================  ===========================================================
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import http.client
import os
import re
import shutil
import signal
import socket
import ssl
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import IO, Any, NoReturn, Protocol

from modelserver.signature import SignatureInvalid, SignaturePolicy, policy_from_args, verify_signature
from modelserver.signature import add_arguments as add_signature_arguments
from modelserver.source_credentials import CredentialsError, SourceCredentials, load_credentials, token_allowed

__all__ = [
    "EXIT_ACCESS_DENIED",
    "EXIT_DEPENDENCY",
    "EXIT_DOWNLOAD",
    "EXIT_INTEGRITY",
    "EXIT_INTERNAL",
    "EXIT_INTERRUPTED",
    "EXIT_NOT_FOUND",
    "EXIT_OK",
    "EXIT_TOO_LARGE",
    "EXIT_USAGE",
    "EXIT_WRITE",
    "FORMAT_FILENAMES",
    "FetchError",
    "FetchResult",
    "add_arguments",
    "fetch_model",
    "main",
    "parse_digest",
    "parse_size",
    "run",
]

EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_USAGE = 2
EXIT_INTEGRITY = 3
EXIT_NOT_FOUND = 4
EXIT_ACCESS_DENIED = 5
EXIT_DOWNLOAD = 6
EXIT_TOO_LARGE = 7
EXIT_WRITE = 8
EXIT_DEPENDENCY = 9
EXIT_SIGNATURE = 10
EXIT_INTERRUPTED = 143

#: Triton's default model file name per backend/platform.
FORMAT_FILENAMES: dict[str, str] = {
    "onnx": "model.onnx",
    "tensorrt_plan": "model.plan",
    "torchscript": "model.pt",
}

DEFAULT_PVC_ROOT = "/mnt/pvc"
DEFAULT_TERMINATION_LOG = "/dev/termination-log"
STAGING_PREFIX = ".modelserver-fetch-"
CHUNK_SIZE = 1024 * 1024
MAX_SIGNATURE_BYTES = 1024 * 1024  # a Sigstore bundle is a few KiB
USER_AGENT = "modelserver-fetch/1"

_DIGEST_RE = re.compile(r"^(?P<algo>[a-z0-9]+):(?P<hex>[0-9a-fA-F]+)$")
_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$")
# A PersistentVolumeClaim name (DNS subdomain): never '..', never a path.
_CLAIM_RE = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
_SIZE_RE = re.compile(r"^\s*(?P<num>\d+)\s*(?P<unit>[kKmMgGtT]i?[bB]?|[bB])?\s*$")
_SIZE_UNITS = {
    "": 1,
    "k": 10**3,
    "m": 10**6,
    "g": 10**9,
    "t": 10**12,
    "ki": 2**10,
    "mi": 2**20,
    "gi": 2**30,
    "ti": 2**40,
}


# --------------------------------------------------------------------------- errors


class FetchError(Exception):
    """A failure with a one-line message, a reason token and an exit code."""

    reason = "InternalError"
    exit_code = EXIT_INTERNAL

    def __init__(self, message: str) -> None:
        # Newlines would break the "one line" contract (and the termination message).
        super().__init__(" ".join(message.split()))

    @property
    def message(self) -> str:
        return str(self)


class UsageError(FetchError):
    reason, exit_code = "InvalidArgument", EXIT_USAGE


class IntegrityError(FetchError):
    reason, exit_code = "ArtifactIntegrity", EXIT_INTEGRITY


class NotFoundError(FetchError):
    reason, exit_code = "ArtifactNotFound", EXIT_NOT_FOUND


class AccessDeniedError(FetchError):
    reason, exit_code = "ArtifactAccessDenied", EXIT_ACCESS_DENIED


class DownloadError(FetchError):
    reason, exit_code = "DownloadFailed", EXIT_DOWNLOAD


class TooLargeError(FetchError):
    reason, exit_code = "ArtifactTooLarge", EXIT_TOO_LARGE


class WriteError(FetchError):
    reason, exit_code = "RepositoryWriteFailed", EXIT_WRITE


class DependencyError(FetchError):
    reason, exit_code = "MissingDependency", EXIT_DEPENDENCY


class SignatureError(FetchError):
    reason, exit_code = "SignatureInvalid", EXIT_SIGNATURE


class InterruptedFetch(FetchError):
    reason, exit_code = "Interrupted", EXIT_INTERRUPTED


class TransientError(Exception):
    """A failure worth retrying (network hiccup, truncated body, 5xx); never escapes the loop."""


# --------------------------------------------------------------------------- parsing helpers


def parse_digest(digest: str) -> str:
    """Validate ``sha256:<64 hex>`` and return it normalised to lower case."""
    match = _DIGEST_RE.match(digest.strip())
    if not match:
        raise UsageError(f"invalid digest {digest!r}: expected 'sha256:' followed by 64 hex characters")
    if match["algo"] != "sha256":
        raise UsageError(f"unsupported digest algorithm {match['algo']!r} in {digest!r}: only sha256")
    if len(match["hex"]) != 64:
        raise UsageError(f"invalid digest {digest!r}: sha256 needs 64 hex characters, got {len(match['hex'])}")
    return "sha256:" + match["hex"].lower()


def parse_size(value: str) -> int:
    """Parse ``1048576``, ``512Mi``, ``2G``, ``10GiB`` into bytes (0 means unlimited)."""
    match = _SIZE_RE.match(value)
    if not match:
        raise argparse.ArgumentTypeError(f"invalid size {value!r}: use bytes or a suffix like 512Mi, 2G")
    unit = (match["unit"] or "").lower().rstrip("b")
    return int(match["num"]) * _SIZE_UNITS[unit]


def _validate_name(kind: str, value: str) -> str:
    # A model name becomes a directory: no separators, no dot-files (they would collide with
    # the staging directories and Triton ignores them anyway).
    if not _NAME_RE.match(value) or value in {".", ".."}:
        raise UsageError(
            f"invalid {kind} {value!r}: use letters, digits, '_', '-', '.' and do not start with '.' or '-'"
        )
    return value


def _validate_version(version: str | int) -> str:
    text = str(version).strip()
    # Triton ignores version directories that are not numeric or that start with 0.
    if not text.isdigit() or not text.isascii() or int(text) == 0:
        raise UsageError(f"invalid version {version!r}: Triton versions are positive integers")
    return str(int(text))


def _fmt_size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"


# --------------------------------------------------------------------------- sources


@dataclass
class Opened:
    """An open byte stream of the artifact, starting at byte ``offset``."""

    chunks: Iterator[bytes]
    offset: int
    total: int | None  # full size of the artifact, when the source knows it
    close: Callable[[], None] = lambda: None


class Source(Protocol):
    description: str
    retryable: bool

    def open(self, offset: int) -> Opened: ...


@dataclass
class LocalSource:
    """A file on a mounted filesystem (file://, a plain path, pvc://)."""

    path: Path
    description: str
    retryable: bool = False

    def open(self, offset: int) -> Opened:
        try:
            if self.path.is_dir():
                raise NotFoundError(f"{self.description} is a directory, not a model file")
            handle = self.path.open("rb")
        except FileNotFoundError:
            raise NotFoundError(f"{self.description} does not exist") from None
        except PermissionError:
            raise AccessDeniedError(f"{self.description} is not readable (permission denied)") from None
        except OSError as exc:
            raise DownloadError(f"cannot open {self.description}: {exc.strerror or exc}") from None
        total = os.fstat(handle.fileno()).st_size
        handle.seek(offset)

        def chunks() -> Iterator[bytes]:
            while block := handle.read(CHUNK_SIZE):
                yield block

        return Opened(chunks(), offset, total, handle.close)


@dataclass
class HttpSource:
    url: str
    description: str
    timeout: float
    retryable: bool = True
    # Validator of the first response, sent as If-Range so a resume never splices two versions.
    _validator: str | None = field(default=None, repr=False)
    _ranges_ok: bool = field(default=True, repr=False)
    token: str | None = field(default=None, repr=False)

    def open(self, offset: int) -> Opened:
        headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
        if offset and self._ranges_ok:
            headers["Range"] = f"bytes={offset}-"
            if self._validator:
                headers["If-Range"] = self._validator
        request = urllib.request.Request(self.url, headers=headers)
        if self.token:
            # Unredirected: urllib does not copy it onto a redirect, so another host never sees it.
            request.add_unredirected_header("Authorization", f"Bearer {self.token}")
        try:
            response = urllib.request.urlopen(request, timeout=self.timeout)
        except urllib.error.HTTPError as exc:
            exc.close()
            self._raise_for_status(exc.code, exc.reason)
        except urllib.error.URLError as exc:
            if isinstance(exc.reason, ssl.SSLCertVerificationError):
                # Retrying cannot fix a bad certificate.
                raise DownloadError(f"{self.description}: TLS certificate not trusted: {exc.reason}") from None
            raise TransientError(f"cannot connect: {_reason(exc.reason)}") from None
        except (OSError, http.client.HTTPException) as exc:
            raise TransientError(_reason(exc)) from None

        status = response.status
        start, total = 0, _int_or_none(response.headers.get("Content-Length"))
        if status == 206:
            parsed = _parse_content_range(response.headers.get("Content-Range"))
            if parsed is None or parsed[0] != offset:
                # A range we did not ask for: stop using ranges and start over.
                response.close()
                self._ranges_ok = False
                raise TransientError(f"server answered an unexpected Content-Range for bytes={offset}-")
            start, total = parsed
        elif status != 200:
            response.close()
            raise DownloadError(f"{self.description}: unexpected HTTP {status} {response.reason}")
        if start == 0:
            self._validator = response.headers.get("ETag") or response.headers.get("Last-Modified")
            if self._validator and self._validator.startswith("W/"):
                self._validator = None  # weak ETags are not allowed in If-Range
        if response.headers.get("Accept-Ranges", "").lower() == "none":
            self._ranges_ok = False

        def chunks() -> Iterator[bytes]:
            try:
                while block := response.read1(CHUNK_SIZE):
                    yield block
            except (OSError, http.client.HTTPException) as exc:
                raise TransientError(f"connection lost mid-body: {_reason(exc)}") from None

        return Opened(chunks(), start, total, response.close)

    def _raise_for_status(self, code: int, reason: object) -> NoReturn:
        text = f"{self.description}: HTTP {code} {reason}"
        if code in (404, 410):
            raise NotFoundError(text)
        if code in (401, 403):
            raise AccessDeniedError(text)
        if code == 416:
            # Our resume offset is past the end (the object shrank): start over without ranges.
            self._ranges_ok = False
            raise TransientError(text)
        if code in (408, 425, 429) or code >= 500:
            raise TransientError(text)
        raise DownloadError(text)


@dataclass
class S3Source:
    bucket: str
    key: str
    description: str
    timeout: float
    retryable: bool = True
    _etag: str | None = field(default=None, repr=False)
    _client: Any = field(default=None, repr=False)
    credentials: SourceCredentials = field(default_factory=SourceCredentials, repr=False)

    def _get_client(self) -> Any:
        if self._client is None:
            try:
                import boto3
                from botocore.config import Config
            except ImportError:
                raise DependencyError(
                    "s3:// needs boto3, which is not installed (pip install 'modeldeploy[s3]')"
                ) from None
            # Newer botocore reads AWS_ENDPOINT_URL itself; passing it explicitly keeps older ones
            # working with S3-compatible stores (MinIO, Ceph).
            creds = self.credentials
            endpoint = (creds.aws_value("AWS_ENDPOINT_URL") or os.environ.get("AWS_ENDPOINT_URL_S3")
                        or os.environ.get("AWS_ENDPOINT_URL") or None)
            config = Config(
                connect_timeout=self.timeout,
                read_timeout=self.timeout,
                retries={"max_attempts": 1, "mode": "standard"},  # our own loop retries and resumes
            )
            session = boto3.session.Session(
                aws_access_key_id=creds.aws_value("AWS_ACCESS_KEY_ID"),
                aws_secret_access_key=creds.aws_value("AWS_SECRET_ACCESS_KEY"),
                aws_session_token=creds.aws_value("AWS_SESSION_TOKEN"),
                region_name=creds.aws_value("AWS_REGION"),
            )
            self._client = session.client("s3", endpoint_url=endpoint, config=config)
        return self._client

    def open(self, offset: int) -> Opened:
        client = self._get_client()
        from botocore import exceptions as bex

        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Key": self.key}
        if offset:
            kwargs["Range"] = f"bytes={offset}-"
            if self._etag:
                kwargs["IfMatch"] = self._etag
        try:
            response = client.get_object(**kwargs)
        except bex.NoCredentialsError:
            raise AccessDeniedError(
                f"{self.description}: no AWS credentials found (set AWS_ACCESS_KEY_ID/"
                "AWS_SECRET_ACCESS_KEY, a profile or a web identity)"
            ) from None
        except bex.ClientError as exc:
            error = exc.response.get("Error", {})
            code = str(error.get("Code", ""))
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
            text = f"{self.description}: {code or status} {error.get('Message', '')}".strip()
            if code in ("NoSuchKey", "NoSuchBucket", "404", "NotFound") or status == 404:
                raise NotFoundError(text) from None
            if code in ("AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "403") or status in (
                401,
                403,
            ):
                raise AccessDeniedError(text) from None
            if code in ("PreconditionFailed", "InvalidRange") or status in (412, 416):
                # The object changed since the first attempt: start over.
                self._etag = None
                raise TransientError(text) from None
            if status >= 500 or status in (408, 429) or code in ("SlowDown", "RequestTimeout"):
                raise TransientError(text) from None
            raise DownloadError(text) from None
        except (bex.BotoCoreError, OSError) as exc:
            raise TransientError(f"{self.description}: {_reason(exc)}") from None

        body = response["Body"]
        start, total = 0, _int_or_none(response.get("ContentLength"))
        if offset:
            parsed = _parse_content_range(response.get("ContentRange"))
            if parsed is None or parsed[0] != offset:
                body.close()
                self._etag = None
                raise TransientError(f"{self.description}: unexpected ContentRange for bytes={offset}-")
            start, total = parsed
        else:
            self._etag = response.get("ETag")

        def chunks() -> Iterator[bytes]:
            try:
                yield from body.iter_chunks(CHUNK_SIZE)
            except (bex.BotoCoreError, OSError) as exc:
                raise TransientError(f"connection lost mid-body: {_reason(exc)}") from None
            except Exception as exc:  # urllib3 errors are not exported by botocore in every version
                if type(exc).__module__.startswith(("urllib3", "botocore")):
                    raise TransientError(f"connection lost mid-body: {_reason(exc)}") from None
                raise

        return Opened(chunks(), start, total, body.close)


def _reason(exc: object) -> str:
    if isinstance(exc, socket.timeout | TimeoutError):
        return "timed out"
    if isinstance(exc, http.client.IncompleteRead):
        return f"body cut short after {len(exc.partial)} more bytes"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    text = str(exc) or type(exc).__name__
    return text


def _int_or_none(value: object) -> int | None:
    try:
        return int(str(value)) if value is not None else None
    except ValueError:
        return None


def _parse_content_range(value: str | None) -> tuple[int, int | None] | None:
    """``bytes 100-199/200`` -> (100, 200); total is None for ``*``."""
    match = re.match(r"^\s*bytes\s+(\d+)-(\d+)/(\d+|\*)\s*$", value or "")
    if not match:
        return None
    return int(match[1]), (None if match[3] == "*" else int(match[3]))


def resolve_source(
    uri: str,
    *,
    pvc_root: str | os.PathLike[str] = DEFAULT_PVC_ROOT,
    timeout: float = 30.0,
    credentials: SourceCredentials | None = None,
) -> Source:
    """Map a model URI to a :class:`Source`, or raise :class:`UsageError`."""
    if not uri or not uri.strip():
        raise UsageError("empty model URI")
    creds = credentials or SourceCredentials()
    parsed = urllib.parse.urlsplit(uri)
    scheme = parsed.scheme.lower()
    if scheme in ("http", "https"):
        if not parsed.hostname:
            raise UsageError(f"invalid URI {uri!r}: no host")
        if creds.token and not token_allowed(scheme, parsed.hostname):
            raise UsageError(
                f"refusing to send the credentials token over plain http to {parsed.hostname}: use https://"
            )
        return HttpSource(uri, _redact(uri), timeout, token=creds.token)
    if scheme == "file":
        if parsed.netloc not in ("", "localhost"):
            raise UsageError(f"invalid URI {uri!r}: file:// URIs must be local (file:///path)")
        local = urllib.parse.unquote(parsed.path)
        if not local:
            raise UsageError(f"invalid URI {uri!r}: no path")
        return LocalSource(Path(local), f"file {local}")
    if scheme == "pvc":
        claim, rel = parsed.netloc, urllib.parse.unquote(parsed.path).lstrip("/")
        if not claim or not rel:
            raise UsageError(f"invalid URI {uri!r}: expected pvc://CLAIM/PATH")
        if not _CLAIM_RE.match(claim) or len(claim) > 253:
            # The claim is a directory under --pvc-root too: '..' or '.' would leave it.
            raise UsageError(f"invalid URI {uri!r}: claim {claim!r} is not a PersistentVolumeClaim name")
        parts = Path(rel).parts
        if ".." in parts:
            raise UsageError(f"invalid URI {uri!r}: '..' is not allowed in a pvc:// path")
        mounted = Path(pvc_root) / claim / rel
        return LocalSource(mounted, f"{uri} (mounted at {mounted})")
    if scheme == "s3":
        key = parsed.path.lstrip("/")
        if not parsed.netloc or not key:
            raise UsageError(f"invalid URI {uri!r}: expected s3://BUCKET/KEY")
        return S3Source(parsed.netloc, urllib.parse.unquote(key), uri, timeout, credentials=creds)
    if scheme == "oci":
        raise UsageError(f"oci:// model URIs are not supported yet ({uri}); use https://, s3://, pvc:// or file://")
    if scheme and len(scheme) > 1:  # a one-letter "scheme" is a Windows drive letter
        raise UsageError(f"unsupported URI scheme {scheme!r} in {uri!r}; use https://, s3://, pvc:// or file://")
    return LocalSource(Path(uri), f"file {uri}")


def _redact(url: str) -> str:
    """Drop credentials and the query (pre-signed URLs carry secrets) from a URL for messages."""
    parts = urllib.parse.urlsplit(url)
    netloc = parts.hostname or ""
    if parts.port:
        netloc += f":{parts.port}"
    query = "?..." if parts.query else ""
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, "", "")) + query


# --------------------------------------------------------------------------- download


@dataclass(frozen=True)
class FetchResult:
    path: Path
    digest: str
    size: int
    reused: bool  # the file was already in place with the expected digest


def _download(
    source: Source,
    out: IO[bytes],
    *,
    max_bytes: int,
    retries: int,
    backoff: float,
    free_bytes: int | None,
    log: Callable[[str], None],
) -> tuple[str, int]:
    """Stream ``source`` into ``out``, hashing as it goes; return (sha256 digest, size)."""
    hasher = hashlib.sha256()
    written = 0
    failures = 0
    while True:
        opened: Opened | None = None
        try:
            opened = source.open(written)
            if opened.offset != written:
                # The server ignored our Range (or the object changed): start again from 0.
                out.seek(0)
                out.truncate()
                hasher, written = hashlib.sha256(), 0
            total = opened.total
            if total is not None and max_bytes and total > max_bytes:
                raise TooLargeError(
                    f"{source.description} is {total} bytes ({_fmt_size(total)}), "
                    f"over the --max-bytes limit of {max_bytes} ({_fmt_size(max_bytes)}; "
                    "a ModelDeployment's spec.model.maxSize)"
                )
            if total is not None and free_bytes is not None and total - written > free_bytes:
                raise WriteError(
                    f"not enough space in the model repository for {source.description}: needs "
                    f"{_fmt_size(total - written)}, {_fmt_size(free_bytes)} free"
                )
            for block in opened.chunks:
                written += len(block)
                if max_bytes and written > max_bytes:
                    raise TooLargeError(
                        f"{source.description} exceeds the --max-bytes limit of {max_bytes} "
                        f"({_fmt_size(max_bytes)}; a ModelDeployment's spec.model.maxSize)"
                    )
                try:
                    out.write(block)
                except OSError as exc:
                    raise WriteError(f"cannot write the download: {exc.strerror or exc}") from None
                hasher.update(block)
            if total is not None and written < total:
                raise TransientError(f"body cut short: got {written} of {total} bytes")
            if total is not None and written > total:
                raise DownloadError(f"{source.description}: got {written} bytes but {total} were announced")
            return "sha256:" + hasher.hexdigest(), written
        except TransientError as exc:
            failures += 1
            if not source.retryable or failures > retries:
                raise DownloadError(f"{source.description}: giving up after {failures} attempt(s): {exc}") from None
            delay = min(backoff * 2 ** (failures - 1), 30.0)
            log(f"attempt {failures} failed ({exc}); retrying in {delay:.2f}s from byte {written}")
            time.sleep(delay)
        finally:
            if opened is not None:
                with contextlib.suppress(Exception):
                    opened.close()


def _sha256_file(path: Path) -> str:
    hasher = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(CHUNK_SIZE):
            hasher.update(block)
    return "sha256:" + hasher.hexdigest()


def _load_config(config_pbtxt: str) -> str:
    """``--config-pbtxt`` is a file name if such a file exists, else the text itself."""
    candidate = Path(config_pbtxt)
    try:
        is_file = "\n" not in config_pbtxt and len(config_pbtxt) < 4096 and candidate.is_file()
    except OSError:
        is_file = False
    if is_file:
        try:
            return candidate.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(f"cannot read --config-pbtxt file {config_pbtxt}: {exc}") from None
    # A bare word that is not a file is almost certainly a mistyped path, not pbtxt text.
    if not re.search(r"[:{]", config_pbtxt):
        raise UsageError(f"--config-pbtxt {config_pbtxt!r} is neither an existing file nor config text")
    return config_pbtxt


def _cleanup_stale_staging(repo: Path, log: Callable[[str], None]) -> None:
    # A previous attempt killed with SIGKILL (OOM, node drain) leaves its staging directory.
    with contextlib.suppress(OSError):
        for entry in repo.iterdir():
            if entry.name.startswith(STAGING_PREFIX) and entry.is_dir() and not entry.is_symlink():
                log(f"removing leftover staging directory {entry}")
                shutil.rmtree(entry, ignore_errors=True)


def fetch_model(
    uri: str,
    digest: str | None,
    repository: str | os.PathLike[str],
    model: str,
    version: str | int = 1,
    *,
    model_format: str = "onnx",
    config_pbtxt: str | None = None,
    allow_unverified: bool = False,
    max_bytes: int = 0,
    retries: int = 5,
    retry_backoff: float = 1.0,
    timeout: float = 30.0,
    pvc_root: str | os.PathLike[str] = DEFAULT_PVC_ROOT,
    credentials_dir: str | os.PathLike[str] | None = None,
    signature: SignaturePolicy | None = None,
    log: Callable[[str], None] | None = None,
) -> Path:
    """Fetch ``uri`` into ``<repository>/<model>/<version>/<file>`` and return the file's path.

    Raises :class:`FetchError` (with ``reason`` and ``exit_code``) on any failure; the repository
    is left as it was (apart from creating ``repository`` itself).
    """
    return fetch_model_detailed(
        uri,
        digest,
        repository,
        model,
        version,
        model_format=model_format,
        config_pbtxt=config_pbtxt,
        allow_unverified=allow_unverified,
        max_bytes=max_bytes,
        retries=retries,
        retry_backoff=retry_backoff,
        timeout=timeout,
        pvc_root=pvc_root,
        credentials_dir=credentials_dir,
        signature=signature,
        log=log,
    ).path


def fetch_model_detailed(
    uri: str,
    digest: str | None,
    repository: str | os.PathLike[str],
    model: str,
    version: str | int = 1,
    *,
    model_format: str = "onnx",
    config_pbtxt: str | None = None,
    allow_unverified: bool = False,
    max_bytes: int = 0,
    retries: int = 5,
    retry_backoff: float = 1.0,
    timeout: float = 30.0,
    pvc_root: str | os.PathLike[str] = DEFAULT_PVC_ROOT,
    credentials_dir: str | os.PathLike[str] | None = None,
    signature: SignaturePolicy | None = None,
    log: Callable[[str], None] | None = None,
) -> FetchResult:
    """Like :func:`fetch_model`, returning digest, size and whether an existing file was reused."""
    say = log or (lambda message: None)

    # Validate everything before touching the network or the disk.
    expected = parse_digest(digest) if digest else None
    if expected is None and not allow_unverified:
        raise UsageError("no --digest given: pass --digest sha256:<hex>, or --allow-unverified to skip the check")
    if model_format not in FORMAT_FILENAMES:
        raise UsageError(f"unknown format {model_format!r}: use one of {', '.join(FORMAT_FILENAMES)}")
    model = _validate_name("model name", model)
    version = _validate_version(version)
    if max_bytes < 0 or retries < 0 or retry_backoff < 0 or timeout <= 0:
        raise UsageError("--max-bytes, --retries and --retry-backoff must be >= 0 and --timeout > 0")
    config_text = _load_config(config_pbtxt) if config_pbtxt is not None else None
    try:
        credentials = load_credentials(credentials_dir) if credentials_dir is not None else None
    except CredentialsError as exc:
        raise UsageError(f"--credentials-dir: {exc}") from None
    source = resolve_source(uri, pvc_root=pvc_root, timeout=timeout, credentials=credentials)

    repo = Path(repository)
    model_dir = repo / model
    version_dir = model_dir / version
    target = version_dir / FORMAT_FILENAMES[model_format]

    try:
        repo.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise WriteError(f"cannot create model repository {repo}: {exc.strerror or exc}") from None
    _cleanup_stale_staging(repo, say)

    if expected is not None and target.is_file():
        try:
            existing = _sha256_file(target)
        except OSError:
            existing = None
        if existing == expected:
            say(f"{target} already has digest {expected}; not downloading again")
            if config_text is not None:
                _install_config(repo, model_dir, config_text)
            return FetchResult(target, expected, target.stat().st_size, reused=True)

    try:
        staging = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=repo))
    except OSError as exc:
        raise WriteError(f"cannot write into model repository {repo}: {exc.strerror or exc}") from None
    try:
        try:
            free: int | None = shutil.disk_usage(staging).free
        except OSError:
            free = None
        partial = staging / "download.partial"
        try:
            out = partial.open("wb")
        except OSError as exc:
            raise WriteError(f"cannot write into model repository {repo}: {exc.strerror or exc}") from None
        with out:
            actual, size = _download(
                source,
                out,
                max_bytes=max_bytes,
                retries=retries,
                backoff=retry_backoff,
                free_bytes=free,
                log=say,
            )
            try:
                out.flush()
                os.fsync(out.fileno())
            except OSError as exc:
                raise WriteError(f"cannot write the download: {exc.strerror or exc}") from None

        if expected is not None and actual != expected:
            raise IntegrityError(
                f"digest mismatch for {source.description}: expected {expected}, got {actual} "
                f"({size} bytes); refusing to install the model"
            )
        if expected is None:
            say(f"WARNING: {source.description} was not verified (--allow-unverified); its digest is {actual}")
        if signature is not None:
            _check_signature(signature, partial, version, staging, pvc_root, timeout, credentials, say)

        _install(repo, staging, partial, model_dir, version_dir, target, config_text)
        return FetchResult(target, actual, size, reused=False)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _check_signature(
    policy: SignaturePolicy,
    artifact: Path,
    version: str,
    staging: Path,
    pvc_root: str | os.PathLike[str],
    timeout: float,
    credentials: SourceCredentials | None,
    log: Callable[[str], None],
) -> None:
    """Download the signature bundle from the model's source and verify it (modelserver.signature)."""
    source = resolve_source(policy.uri, pvc_root=pvc_root, timeout=timeout, credentials=credentials)
    bundle = staging / "signature.bundle"
    try:
        with bundle.open("wb") as out:
            _download(source, out, max_bytes=MAX_SIGNATURE_BYTES, retries=3, backoff=1.0, free_bytes=None, log=log)
    except NotFoundError:
        raise SignatureError(f"no signature at {source.description}: the model is not signed") from None
    except TooLargeError:
        raise SignatureError(f"{source.description} is too large to be a model signature") from None
    except OSError as exc:
        raise WriteError(f"cannot write the signature: {exc.strerror or exc}") from None
    try:
        verify_signature(policy, bundle, artifact, version, staging)
    except SignatureInvalid as exc:
        raise SignatureError(str(exc)) from None
    log(f"signature {source.description} verified for model version {version}")


def _install(
    repo: Path,
    staging: Path,
    partial: Path,
    model_dir: Path,
    version_dir: Path,
    target: Path,
    config_text: str | None,
) -> None:
    """Move a verified file into place with renames only (same filesystem, atomic)."""
    try:
        # Readable by any uid: the serving container may run as another user than this one.
        os.chmod(partial, 0o644)
        if not model_dir.exists():
            # Fresh model: build the whole <model>/ tree in staging and rename it in one step, so
            # the model directory appears complete (file and config.pbtxt) or not at all.
            tree = staging / "tree"
            (tree / version_dir.name).mkdir(parents=True)
            os.replace(partial, tree / version_dir.name / target.name)
            if config_text is not None:
                (tree / "config.pbtxt").write_text(config_text, encoding="utf-8")
            for path in (tree, tree / version_dir.name):
                os.chmod(path, 0o755)
            os.rename(tree, model_dir)
        else:
            version_dir.mkdir(exist_ok=True)
            os.replace(partial, target)
            if config_text is not None:
                _install_config(repo, model_dir, config_text)
        _fsync_dir(version_dir)
        _fsync_dir(model_dir)
        _fsync_dir(repo)
    except OSError as exc:
        raise WriteError(f"cannot install the model into {model_dir}: {exc.strerror or exc}") from None


def _install_config(repo: Path, model_dir: Path, config_text: str) -> None:
    try:
        model_dir.mkdir(exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=STAGING_PREFIX, suffix=".pbtxt", dir=repo)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(config_text)
            os.chmod(tmp, 0o644)
            os.replace(tmp, model_dir / "config.pbtxt")
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
    except OSError as exc:
        raise WriteError(f"cannot write {model_dir / 'config.pbtxt'}: {exc.strerror or exc}") from None


def _fsync_dir(path: Path) -> None:
    # Persist the renames (matters on a node-local disk if the node dies right after).
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


# --------------------------------------------------------------------------- CLI


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``fetch`` options to ``parser`` (used by ``modelserver.cli``)."""
    parser.add_argument("uri", help="model URI: https://..., s3://BUCKET/KEY, pvc://CLAIM/PATH, file:///PATH or PATH")
    parser.add_argument("--digest", default=None, help="expected digest, sha256:<64 hex>")
    parser.add_argument(
        "--into",
        "--model-repository",
        dest="into",
        required=True,
        metavar="REPO",
        help="model repository directory (Triton layout)",
    )
    parser.add_argument("--model", required=True, help="model name (directory under REPO)")
    parser.add_argument("--version", default="1", help="model version directory (default: 1)")
    parser.add_argument(
        "--format",
        dest="model_format",
        choices=sorted(FORMAT_FILENAMES),
        default="onnx",
        help="model format; decides the file name (default: onnx -> model.onnx)",
    )
    parser.add_argument(
        "--config-pbtxt",
        default=None,
        metavar="FILE_OR_TEXT",
        help="write <REPO>/<MODEL>/config.pbtxt from this file or text",
    )
    parser.add_argument(
        "--allow-unverified",
        action="store_true",
        help="allow fetching without --digest (prints a warning); ignored when --digest is given",
    )
    parser.add_argument(
        "--max-bytes",
        type=parse_size,
        default=0,
        metavar="SIZE",
        help="refuse artifacts larger than this (bytes or 512Mi, 20Gi...; default 0 = no limit)",
    )
    parser.add_argument("--retries", type=int, default=5, help="retries of transient failures (default 5)")
    parser.add_argument(
        "--retry-backoff",
        type=float,
        default=1.0,
        metavar="SECONDS",
        help="first retry delay, doubled each time up to 30 s (default 1)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="connect and per-read timeout (default 30)",
    )
    parser.add_argument(
        "--pvc-root",
        default=DEFAULT_PVC_ROOT,
        help=f"where pvc://CLAIM is mounted as <root>/CLAIM (default {DEFAULT_PVC_ROOT})",
    )
    parser.add_argument(
        "--credentials-dir",
        default=None,
        metavar="DIR",
        help="a mounted Secret: 'token' (HTTP bearer) and/or AWS_* keys for s3:// (see source_credentials)",
    )
    parser.add_argument(
        "--termination-log",
        default=DEFAULT_TERMINATION_LOG,
        metavar="PATH",
        help=f"also write a failure message here if the file exists (default {DEFAULT_TERMINATION_LOG}; '' to disable)",
    )
    parser.add_argument("--quiet", action="store_true", help="only print errors")
    add_signature_arguments(parser)
    parser.add_argument(
        "--decryption-key",
        default=None,
        metavar="FILE",
        help="the artifact is age-encrypted: decrypt it with this identity file after the digest (and signature) "
        "checks, into REPO; needs --ciphertext-dir (see modelserver.decrypt)",
    )
    parser.add_argument(
        "--ciphertext-dir", default=None, metavar="DIR", help="where the encrypted artifact is staged and verified"
    )


def _signature_policy(args: argparse.Namespace) -> SignaturePolicy | None:
    try:
        return policy_from_args(args, args.uri)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def _raise_interrupted(signum: int, frame: FrameType | None) -> NoReturn:
    raise InterruptedFetch(f"stopped by signal {signal.Signals(signum).name}; nothing was installed")


def run(args: argparse.Namespace) -> int:
    """Run ``modelserver fetch`` with parsed ``args``; return the exit code (see module docstring)."""
    quiet = bool(getattr(args, "quiet", False))

    def log(message: str) -> None:
        if not quiet or message.startswith("WARNING"):
            print(f"modelserver fetch: {message}", file=sys.stderr, flush=True)

    previous: dict[signal.Signals, Any] = {}
    try:
        # Turn SIGTERM (pod deletion) into an exception so the staging directory is removed.
        for signum in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(ValueError):  # not the main thread: leave handlers alone
                previous[signum] = signal.signal(signum, _raise_interrupted)
        fetch = fetch_model_detailed
        if getattr(args, "decryption_key", None):
            if not args.ciphertext_dir:
                raise UsageError("--decryption-key needs --ciphertext-dir")
            try:
                from modelserver.decrypt import decrypting_fetch  # it builds on this module
            except ImportError as exc:
                raise DependencyError(f"--decryption-key needs pyrage (the runtime extra): {exc}") from None
            fetch = decrypting_fetch(args.decryption_key, args.ciphertext_dir)
        result = fetch(
            args.uri,
            args.digest,
            args.into,
            args.model,
            args.version,
            model_format=args.model_format,
            config_pbtxt=args.config_pbtxt,
            allow_unverified=args.allow_unverified,
            max_bytes=args.max_bytes,
            retries=args.retries,
            retry_backoff=args.retry_backoff,
            timeout=args.timeout,
            pvc_root=args.pvc_root,
            credentials_dir=getattr(args, "credentials_dir", None),
            signature=_signature_policy(args),
            log=log,
        )
    except FetchError as exc:
        _report(args, exc.reason, exc.message)
        return exc.exit_code
    except KeyboardInterrupt:
        _report(args, InterruptedFetch.reason, "interrupted; nothing was installed")
        return EXIT_INTERRUPTED
    except Exception as exc:  # a bug: still one line, never a traceback in the pod log
        _report(args, FetchError.reason, f"{type(exc).__name__}: {exc}")
        return EXIT_INTERNAL
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if not quiet:
        state = "already in place" if result.reused else "installed"
        print(f"modelserver fetch: {state}: {result.path} ({result.size} bytes, {result.digest})", flush=True)
    return EXIT_OK


def _report(args: argparse.Namespace, reason: str, message: str) -> None:
    line = f"{reason}: {' '.join(message.split())}"
    print(f"modelserver fetch: {line}", file=sys.stderr, flush=True)
    path = getattr(args, "termination_log", "")
    if path and os.path.exists(path):
        with contextlib.suppress(OSError), open(path, "w", encoding="utf-8") as handle:
            handle.write(line + "\n")


def main(argv: list[str] | None = None) -> int:
    """Standalone entry point (``python -m modelserver.fetch``); the CLI uses add_arguments/run."""
    parser = argparse.ArgumentParser(prog="modelserver fetch", description=(__doc__ or "").split("\n\n")[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
