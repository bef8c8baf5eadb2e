"""The Kubernetes TokenReview API, called with the pod's own ServiceAccount token.

One POST to ``/apis/authentication.k8s.io/v1/tokenreviews``: aiohttp (already the server's HTTP client
library) does it without blocking the event loop; the official ``kubernetes`` client is synchronous and
would add a large dependency to the runtime image for this one call. The API server is found the way
in-cluster clients find it: ``KUBERNETES_SERVICE_HOST``/``KUBERNETES_SERVICE_PORT`` and the mounted
``token`` and ``ca.crt``. The token file is read on every review: the kubelet rotates it.
"""

from __future__ import annotations

import json
import os
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

REVIEW_PATH = "/apis/authentication.k8s.io/v1/tokenreviews"
TIMEOUT_S = 5.0
MAX_ANSWER_BYTES = 1024 * 1024


class ReviewUnavailable(Exception):
    """The API server could not be asked (unreachable, refused our own token, malformed answer)."""


@dataclass(frozen=True)
class Review:
    authenticated: bool
    username: str = ""
    audiences: tuple[str, ...] = ()
    error: str = ""


def api_server_url(environ: Mapping[str, str] = os.environ) -> str:
    host, port = environ.get("KUBERNETES_SERVICE_HOST"), environ.get("KUBERNETES_SERVICE_PORT", "443")
    if not host:
        raise ValueError("--auth-token-review needs the API server: KUBERNETES_SERVICE_HOST is not set "
                         "(or pass --auth-api-server)")
    return f"https://[{host}]:{port}" if ":" in host else f"https://{host}:{port}"


async def _whole_body(stream: aiohttp.StreamReader) -> bytes:
    """The answer to its end, or ReviewUnavailable past MAX_ANSWER_BYTES. (``read(n)`` alone returns what has
    arrived so far: an answer split across TCP segments came back cut, and its JSON did not parse.)"""
    chunks, size = [], 0
    while chunk := await stream.read(MAX_ANSWER_BYTES + 1 - size):
        chunks.append(chunk)
        size += len(chunk)
        if size > MAX_ANSWER_BYTES:
            raise ReviewUnavailable(f"TokenReview answer is over {MAX_ANSWER_BYTES} bytes")
    return b"".join(chunks)


class TokenReviewer:
    def __init__(self, api_server: str, service_account_dir: Path) -> None:
        self.url = api_server.rstrip("/") + REVIEW_PATH
        self.token_path = service_account_dir / "token"
        ca = service_account_dir / "ca.crt"
        for required in (self.token_path, ca):
            if not required.is_file():
                raise ValueError(f"--auth-service-account-dir: {required} is missing (mount the ServiceAccount token)")
        self.ssl = ssl.create_default_context(cafile=str(ca))
        self._session: aiohttp.ClientSession | None = None

    async def review(self, token: str, audience: str) -> Review:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=TIMEOUT_S))
        own = self.token_path.read_text().strip()
        body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
                "spec": {"token": token, "audiences": [audience]}}
        try:
            async with self._session.post(self.url, json=body, ssl=self.ssl, allow_redirects=False,
                                          headers={"Authorization": f"Bearer {own}"}) as answer:
                if answer.status != 201 and answer.status != 200:
                    raise ReviewUnavailable(f"TokenReview answered HTTP {answer.status}")
                data: Any = json.loads(await _whole_body(answer.content))
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise ReviewUnavailable(f"TokenReview failed: {type(exc).__name__}: {exc}") from None
        status = data.get("status") if isinstance(data, dict) else None
        if not isinstance(status, dict):
            raise ReviewUnavailable("TokenReview answer has no status")
        user = status.get("user") or {}
        return Review(authenticated=bool(status.get("authenticated")),
                      username=str(user.get("username", "")),
                      audiences=tuple(str(a) for a in status.get("audiences") or ()),
                      error=str(status.get("error", ""))[:200])

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
