"""modelserver.token_review's HTTP client against a TLS server that answers the way a busy API server may:
in pieces. The answer must be read to its end (a cut answer once failed a canary's gates with HTTP 503),
and an oversize answer is refused, not buffered.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from modeldeploy_sandbox.pki import CertificateAuthority
from modelserver import token_review
from modelserver.token_review import ReviewUnavailable, TokenReviewer


def _review_answer(username: str) -> bytes:
    return json.dumps({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
                       "status": {"authenticated": True, "audiences": ["aud"],
                                  "user": {"username": username, "groups": ["system:serviceaccounts"] * 20}}}).encode()


class SplitAnswerServer:
    """HTTPS on 127.0.0.1 that sends the status line and headers, then `body` in `pieces` with pauses."""

    def __init__(self, directory: Path, body: bytes, pieces: int) -> None:
        self.body, self.pieces = body, pieces
        authority = CertificateAuthority(directory / "pki")
        serving = authority.issue("server", "127.0.0.1", server_ips=["127.0.0.1"])
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.context.load_cert_chain(serving.cert, serving.key)
        self.accounts = directory / "serviceaccount"
        self.accounts.mkdir()
        (self.accounts / "ca.crt").write_bytes(authority.pem)
        (self.accounts / "token").write_text("own-token\n")
        self.requests: list[bytes] = []

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                          if line.lower().startswith(b"content-length")))
        self.requests.append(head + await reader.readexactly(length))
        writer.write(b"HTTP/1.1 201 Created\r\nContent-Type: application/json\r\n"
                     b"Content-Length: %d\r\n\r\n" % len(self.body))
        step = -(-len(self.body) // self.pieces)
        for start in range(0, len(self.body), step):
            writer.write(self.body[start:start + step])
            await writer.drain()
            await asyncio.sleep(0.05)  # the next piece arrives after the client has read this one
        writer.close()

    async def start(self) -> str:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self.context)
        return f"https://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"


@contextlib.asynccontextmanager
async def reviewer_for(directory: Path, body: bytes,
                       pieces: int) -> AsyncIterator[tuple[TokenReviewer, SplitAnswerServer]]:
    server = SplitAnswerServer(directory, body, pieces)
    reviewer = TokenReviewer(await server.start(), server.accounts)
    try:
        yield reviewer, server
    finally:
        await reviewer.close()
        server.server.close()


async def test_an_answer_that_arrives_in_pieces_is_read_to_its_end(tmp_path: Path) -> None:
    body = _review_answer("system:serviceaccount:ml:caller")
    async with reviewer_for(tmp_path, body, 4) as (reviewer, server):
        review = await reviewer.review("caller-token", "aud")
    assert review.authenticated and review.username == "system:serviceaccount:ml:caller"
    assert review.audiences == ("aud",)
    sent = server.requests[0]
    assert b"Bearer own-token" in sent  # the pod's own token, read from the mounted file
    assert json.loads(sent.split(b"\r\n\r\n", 1)[1])["spec"] == {"token": "caller-token", "audiences": ["aud"]}


async def test_an_answer_over_the_limit_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    body = _review_answer("system:serviceaccount:ml:caller")
    monkeypatch.setattr(token_review, "MAX_ANSWER_BYTES", len(body) - 1)
    async with reviewer_for(tmp_path, body, 3) as (reviewer, _):
        with pytest.raises(ReviewUnavailable, match=f"over {len(body) - 1} bytes"):
            await reviewer.review("caller-token", "aud")
