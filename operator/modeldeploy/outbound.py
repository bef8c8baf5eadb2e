"""Every HTTP request the operator itself makes (gates, the direct scraper, Prometheus) goes through here.

The operator must not be a tool for reaching or exhausting what a ModelDeployment's author points it
at, so: redirects are never followed (a 3xx is an error), bodies are capped (a bigger answer is an
error, not a bigger allocation), and error bodies are never copied into messages: a message carries
the status code and at most a short, sanitised excerpt the caller chose to parse.
"""

from __future__ import annotations

import http.client
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from typing import IO, Any, NoReturn

METRICS_BODY_LIMIT = 4 * 2**20  # a /metrics page or a PromQL answer
METADATA_BODY_LIMIT = 1 * 2**20  # model metadata, readiness answers
EXCERPT_LIMIT = 200


class OutboundError(Exception):
    """A request that did not give a usable answer; the message is safe to put in status."""


class Unreachable(OutboundError):
    """No answer at all (connection refused, timeout, DNS): worth retrying later."""


class Redirected(OutboundError):
    """The server answered a redirect, which the operator never follows."""


class TooLarge(OutboundError):
    """The answer is bigger than the caller's cap."""


class HttpStatus(OutboundError):
    """An HTTP error status; `body` is the capped body, for callers that parse it (never shown raw)."""

    def __init__(self, message: str, code: int, body: bytes) -> None:
        super().__init__(message)
        self.code = code
        self.body = body


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req: urllib.request.Request, fp: IO[bytes], code: int, msg: str,
                         headers: http.client.HTTPMessage, newurl: str) -> NoReturn:
        raise Redirected(f"{describe(req.full_url)} answered a redirect (HTTP {code}), which is not followed")


def describe(url: str) -> str:
    """scheme://host[:port]/path: no credentials, no query (PromQL, tokens) in messages."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    netloc = f"[{host}]" if ":" in host else host
    if parts.port:
        netloc += f":{parts.port}"
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def excerpt(text: str, limit: int = EXCERPT_LIMIT) -> str:
    """Printable ASCII only, one line, at most `limit` characters: what a remote may put in a message."""
    cleaned = re.sub(r"[^\x20-\x7e]+", " ", text).strip()
    return cleaned if len(cleaned) <= limit else cleaned[:limit] + "..."


def _read_capped(response: Any, url: str, max_bytes: int) -> bytes:
    length = response.headers.get("Content-Length")
    if length is not None and length.isdigit() and int(length) > max_bytes:
        raise TooLarge(f"{describe(url)} answered {int(length)} bytes, over the limit of {max_bytes}")
    body: bytes = response.read(max_bytes + 1)
    if len(body) > max_bytes:
        raise TooLarge(f"{describe(url)} answered more than the limit of {max_bytes} bytes")
    return body


def request(method: str, url: str, *, max_bytes: int, timeout: float, body: bytes | None = None,
            headers: Mapping[str, str] | None = None) -> bytes:
    """The body of a 2xx answer, at most `max_bytes` long; OutboundError (a subclass) otherwise."""
    prepared = urllib.request.Request(url, data=body, method=method, headers=dict(headers or {}))
    # The default handlers (proxies from the environment included) minus redirects; built per call so
    # that the proxy environment is read as urlopen reads it.
    opener = urllib.request.build_opener(_NoRedirects)
    try:
        with opener.open(prepared, timeout=timeout) as response:
            return _read_capped(response, url, max_bytes)
    except urllib.error.HTTPError as error:
        try:
            error_body = _read_capped(error, url, METADATA_BODY_LIMIT) if error.fp is not None else b""
        except (TooLarge, OSError):
            error_body = b""
        finally:
            error.close()
        raise HttpStatus(f"{describe(url)} answered HTTP {error.code}", error.code, error_body) from None
    except OutboundError:
        raise
    except (urllib.error.URLError, OSError, http.client.HTTPException) as error:
        reason = getattr(error, "reason", None) or error
        raise Unreachable(f"{describe(url)} did not answer: {excerpt(str(reason), 120)}") from None
