"""The HTTP/1.1 layer itself: keep-alive, pipelining, chunked bodies, Expect, HEAD, bad requests."""

from __future__ import annotations

import json
import socket

from .conftest import RunningServer
from .test_batching_metrics import sample, scrape

GOOD = json.dumps({"inputs": [{"name": "X", "datatype": "FP32", "shape": [2, 3], "data": [1, 2, 3, 4, 5, 6]}]}).encode()


def connect(server: RunningServer) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.handle.http_port), timeout=5)


def read_response(sock: socket.socket, buf: bytearray) -> tuple[int, dict[str, str], bytes]:
    """One response off the stream (Content-Length framed); leftover bytes stay in ``buf``."""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        assert chunk, "connection closed before a response"
        buf += chunk
    head, _, rest = bytes(buf).partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
    length = int(headers["content-length"])
    while len(rest) < length:
        chunk = sock.recv(65536)
        assert chunk
        rest += chunk
    buf[:] = rest[length:]
    return status, headers, rest[:length]


def infer_request(body: bytes, extra: str = "") -> bytes:
    return (
        f"POST /v2/models/fixed/infer HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n{extra}\r\n"
    ).encode() + body


def test_pipelined_requests_are_answered_in_order(server: RunningServer) -> None:
    with connect(server) as s:
        s.sendall(
            infer_request(GOOD)
            + b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n"
            + b"GET /v2/models/nope HTTP/1.1\r\nHost: x\r\n\r\n"
            + infer_request(GOOD)
        )
        buf = bytearray()
        statuses = [read_response(s, buf)[0] for _ in range(4)]
    assert statuses == [200, 200, 404, 200]


def test_chunked_body_and_expect_continue(server: RunningServer) -> None:
    with connect(server) as s:
        half = len(GOOD) // 2
        s.sendall(
            b"POST /v2/models/fixed/infer HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
            b"Expect: 100-continue\r\n\r\n"
        )
        buf = bytearray()
        while b"\r\n\r\n" not in buf:
            buf += s.recv(100)
        assert bytes(buf).startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
        del buf[: len(b"HTTP/1.1 100 Continue\r\n\r\n")]
        s.sendall(b"%x\r\n%s\r\n%x\r\n%s\r\n0\r\n\r\n" % (half, GOOD[:half], len(GOOD) - half, GOOD[half:]))
        status, headers, body = read_response(s, buf)
    assert status == 200
    assert headers["content-type"] == "application/json"
    assert json.loads(body)["outputs"][0]["data"] == [6.0, 15.0]


def test_head_method_and_wrong_methods(server: RunningServer) -> None:
    with connect(server) as s:
        s.sendall(b"HEAD /v2/models/fixed HTTP/1.1\r\nHost: x\r\n\r\n")
        buf = bytearray()
        status, headers, _ = read_response_head_only(s, buf)
        assert status == 200 and int(headers["content-length"]) > 0
        s.sendall(b"GET /v2/models/fixed/infer HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_response(s, buf)[0] == 405
        s.sendall(b"DELETE /v2/models/fixed HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_response(s, buf)[0] == 405
        s.sendall(b"GET /nothing HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_response(s, buf)[0] == 404


def read_response_head_only(sock: socket.socket, buf: bytearray) -> tuple[int, dict[str, str], bytes]:
    while b"\r\n\r\n" not in buf:
        buf += sock.recv(65536)
    head, _, rest = bytes(buf).partition(b"\r\n\r\n")
    buf[:] = rest
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
    return int(lines[0].split()[1]), headers, b""


def test_garbage_and_oversized_heads_get_400_and_close(server: RunningServer) -> None:
    for payload in (
        b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03 not http\r\n\r\n",  # a TLS ClientHello
        b"GET / HTTP/1.1\r\nX: " + b"a" * 70_000 + b"\r\n\r\n",
    ):
        with connect(server) as s:
            s.sendall(payload)
            buf = bytearray()
            status, headers, _ = read_response(s, buf)
            assert status == 400
            assert headers.get("connection") == "close"
            assert s.recv(10) == b""  # closed


def test_http_1_0_closes_after_the_response(server: RunningServer) -> None:
    with connect(server) as s:
        s.sendall(b"GET /v2/health/live HTTP/1.0\r\n\r\n")
        buf = bytearray()
        status, headers, _ = read_response(s, buf)
        assert status == 200 and headers.get("connection") == "close"
        assert s.recv(10) == b""


def test_oversized_declared_body_is_refused_before_it_is_sent(server: RunningServer) -> None:
    before = scrape(server)
    with connect(server) as s:
        # Only the head is sent: the 413 must come without waiting for 2 MiB of body.
        s.sendall(b"POST /v2/models/fixed/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 2097152\r\n\r\n" + b"x" * 100)
        buf = bytearray()
        status, headers, body = read_response(s, buf)
        assert status == 413 and headers.get("connection") == "close"
        assert b"exceeds" in body
    after = scrape(server)
    lbl = {"model": "fixed", "version": "1", "reason": "REJECTED"}
    fail = "nv_inference_request_failure"
    assert sample(after, fail, **lbl) - sample(before, fail, **lbl) == 1  # counted once
