"""`modelserver fetch`: real downloads from loopback servers into a temporary model repository."""

from __future__ import annotations

import argparse
import hashlib
import http.server
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from modelserver import fetch

pytestmark = pytest.mark.timeout(60)

BLOB = os.urandom(300_000)  # bigger than one socket buffer so drops really happen mid-body
GOOD = "sha256:" + hashlib.sha256(BLOB).hexdigest()
WRONG = "sha256:" + "0" * 64


# --------------------------------------------------------------------------- loopback HTTP server


@dataclass
class Served:
    """What the test server saw and how it should misbehave."""

    requests: list[tuple[str, str | None]] = field(default_factory=list)  # (path, Range header)
    counts: dict[str, int] = field(default_factory=dict)
    stop_stalling: threading.Event = field(default_factory=threading.Event)
    base: str = ""
    server_errors: list[BaseException | None] = field(default_factory=list)  # raised in handler threads


class _Handler(http.server.BaseHTTPRequestHandler):
    served: Served

    def log_message(self, format: str, *args: Any) -> None:  # keep pytest output clean
        pass

    def do_GET(self) -> None:
        served = self.served
        path = self.path.split("?")[0]
        served.requests.append((path, self.headers.get("Range")))
        n = served.counts[path] = served.counts.get(path, 0) + 1
        ranges = not path.startswith(("/norange", "/truncate", "/ignorerange"))
        if path == "/missing":
            return self._plain(404, b"no such model")
        if path == "/forbidden":
            return self._plain(403, b"go away")
        if path == "/flaky-503" and n <= 2:
            return self._plain(503, b"warming up")
        if path == "/stall" and n == 1:
            served.stop_stalling.wait(5)  # longer than the client's --timeout
            return
        if path == "/stall-mid-body":
            self._headers(200, len(BLOB))
            self.wfile.write(BLOB[:1000])
            self.wfile.flush()
            served.stop_stalling.wait(10)
            return
        if path == "/chunked-big":
            # No Content-Length: the size limit must be enforced while streaming.
            self.send_response(200)
            self.end_headers()
            self.wfile.write(BLOB)
            return
        start = 0
        header = self.headers.get("Range")
        if ranges and header and header.startswith("bytes=") and header.endswith("-"):
            start = int(header[len("bytes=") : -1])
        body = BLOB[start:]
        if start:
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(BLOB) - 1}/{len(BLOB)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("ETag", '"v1"')
        if not path.startswith("/ignorerange"):  # that one ignores Range without saying so
            self.send_header("Accept-Ranges", "bytes" if ranges else "none")
        self.end_headers()
        drop = (
            path in ("/drop-once", "/norange-drop-once", "/ignorerange-drop-once") and n == 1
        ) or path == "/truncate"
        if drop:
            # Announce the full length, send part of it, hang up.
            self.wfile.write(body[: len(body) // 3])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)

    def _headers(self, code: int, length: int) -> None:
        self.send_response(code)
        self.send_header("Content-Length", str(length))
        self.end_headers()

    def _plain(self, code: int, body: bytes) -> None:
        self._headers(code, len(body))
        self.wfile.write(body)


class _Server(http.server.ThreadingHTTPServer):
    """Keeps its handler threads' errors instead of printing them: a misbehaving path (truncate, stall)
    may see the client hang up, and socketserver's default traceback on sys.stderr would land in the
    capsys output that the tests read as `modelserver fetch`'s own (the flaky "Traceback" in err)."""

    daemon_threads = False  # server_close() joins every handler: none outlives its test
    block_on_close = True

    def __init__(self, handler: type[_Handler], served: Served) -> None:
        super().__init__(("127.0.0.1", 0), handler)
        self.served = served

    def handle_error(self, request: Any, client_address: Any) -> None:
        self.served.server_errors.append(sys.exc_info()[1])


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[Served]:
    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)  # loopback only, never through a proxy
    served = Served()
    handler = type("Handler", (_Handler,), {"served": served})
    httpd = _Server(handler, served)
    served.base = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield served
    served.stop_stalling.set()
    httpd.shutdown()
    httpd.server_close()
    # Only a client hanging up on a deliberately misbehaving response is an expected server-side error.
    unexpected = [exc for exc in served.server_errors if not isinstance(exc, ConnectionError | TimeoutError)]
    assert unexpected == [], f"the test server itself failed: {unexpected!r}"


# --------------------------------------------------------------------------- helpers


@dataclass
class Outcome:
    code: int
    out: str
    err: str


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Any:
    def invoke(*argv: str) -> Outcome:
        parser = argparse.ArgumentParser(prog="modelserver fetch")
        fetch.add_arguments(parser)
        defaults = ["--retry-backoff", "0.01", "--timeout", "5", "--termination-log", ""]
        code = fetch.run(parser.parse_args([*argv, *defaults]))
        captured = capsys.readouterr()
        return Outcome(code, captured.out, captured.err)

    return invoke


def repo_files(repo: Path) -> list[str]:
    return sorted(str(p.relative_to(repo)) for p in repo.rglob("*")) if repo.exists() else []


def assert_one_line_error(outcome: Outcome, reason: str) -> None:
    lines = outcome.err.strip().splitlines()
    assert lines, "no error message"
    assert lines[-1].startswith(f"modelserver fetch: {reason}: "), outcome.err
    assert "Traceback" not in outcome.err


# --------------------------------------------------------------------------- HTTP


def test_good_digest_installs_model(server: Served, tmp_path: Path, cli: Any) -> None:
    repo = tmp_path / "models"
    result = cli(f"{server.base}/model", "--digest", GOOD, "--into", str(repo), "--model", "m", "--version", "3")
    assert result.code == fetch.EXIT_OK, result.err
    target = repo / "m" / "3" / "model.onnx"
    assert target.read_bytes() == BLOB
    assert repo_files(repo) == ["m", "m/3", "m/3/model.onnx"]  # no staging leftovers
    assert target.stat().st_mode & 0o444 == 0o444  # readable by a serving container of another uid
    assert GOOD in result.out


@pytest.mark.parametrize(
    ("fmt", "name"), [("onnx", "model.onnx"), ("tensorrt_plan", "model.plan"), ("torchscript", "model.pt")]
)
def test_format_decides_file_name(server: Served, tmp_path: Path, cli: Any, fmt: str, name: str) -> None:
    result = cli(f"{server.base}/m", "--digest", GOOD, "--into", str(tmp_path), "--model", "x", "--format", fmt)
    assert result.code == 0, result.err
    assert (tmp_path / "x" / "1" / name).read_bytes() == BLOB


def test_wrong_digest_fails_and_leaves_nothing(server: Served, tmp_path: Path, cli: Any) -> None:
    repo = tmp_path / "models"
    result = cli(f"{server.base}/model", "--digest", WRONG, "--into", str(repo), "--model", "m")
    assert result.code == fetch.EXIT_INTEGRITY == 3
    assert_one_line_error(result, "ArtifactIntegrity")
    assert WRONG in result.err and GOOD in result.err
    assert repo_files(repo) == []  # not even a temp file


def test_wrong_digest_is_checked_even_with_allow_unverified(server: Served, tmp_path: Path, cli: Any) -> None:
    result = cli(f"{server.base}/m", "--digest", WRONG, "--allow-unverified", "--into", str(tmp_path), "--model", "m")
    assert result.code == fetch.EXIT_INTEGRITY
    assert repo_files(tmp_path) == []


def test_dropped_connection_resumes_with_range(server: Served, tmp_path: Path, cli: Any) -> None:
    result = cli(f"{server.base}/drop-once", "--digest", GOOD, "--into", str(tmp_path), "--model", "m")
    assert result.code == 0, result.err
    assert (tmp_path / "m" / "1" / "model.onnx").read_bytes() == BLOB
    ranges = [header for _, header in server.requests]
    assert ranges[0] is None
    assert ranges[1] == f"bytes={len(BLOB) // 3}-"  # resumed where the body was cut, not from 0
    assert len(ranges) == 2


def test_dropped_connection_without_range_support_restarts(server: Served, tmp_path: Path, cli: Any) -> None:
    result = cli(f"{server.base}/norange-drop-once", "--digest", GOOD, "--into", str(tmp_path), "--model", "m")
    assert result.code == 0, result.err
    assert (tmp_path / "m" / "1" / "model.onnx").read_bytes() == BLOB
    assert [r for _, r in server.requests] == [None, None]  # Accept-Ranges: none -> no Range sent


def test_server_ignoring_range_restarts_from_zero(server: Served, tmp_path: Path, cli: Any) -> None:
    result = cli(f"{server.base}/ignorerange-drop-once", "--digest", GOOD, "--into", str(tmp_path), "--model", "m")
    assert result.code == 0, result.err
    assert (tmp_path / "m" / "1" / "model.onnx").read_bytes() == BLOB  # no spliced bytes
    assert [r for _, r in server.requests] == [None, f"bytes={len(BLOB) // 3}-"]


def test_always_truncating_server_fails_cleanly(server: Served, tmp_path: Path, cli: Any) -> None:
    result = cli(f"{server.base}/truncate", "--digest", GOOD, "--into", str(tmp_path), "--model", "m", "--retries", "2")
    assert result.code == fetch.EXIT_DOWNLOAD
    assert_one_line_error(result, "DownloadFailed")
    assert "3 attempt" in result.err
    assert len(server.requests) == 3
    assert repo_files(tmp_path) == []


def test_transient_503_is_retried(server: Served, tmp_path: Path, cli: Any) -> None:
    result = cli(f"{server.base}/flaky-503", "--digest", GOOD, "--into", str(tmp_path), "--model", "m")
    assert result.code == 0, result.err
    assert len(server.requests) == 3


def test_read_timeout_is_retried(server: Served, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = fetch.fetch_model(f"{server.base}/stall", GOOD, tmp_path, "m", 1, timeout=0.3, retry_backoff=0.01)
    assert path.read_bytes() == BLOB
    assert server.counts["/stall"] == 2


def test_size_limit_from_content_length(server: Served, tmp_path: Path, cli: Any) -> None:
    result = cli(f"{server.base}/m", "--digest", GOOD, "--into", str(tmp_path), "--model", "m", "--max-bytes", "1Ki")
    assert result.code == fetch.EXIT_TOO_LARGE
    assert_one_line_error(result, "ArtifactTooLarge")
    assert "1024" in result.err
    assert repo_files(tmp_path) == []


def test_size_limit_while_streaming(server: Served, tmp_path: Path, cli: Any) -> None:
    result = cli(
        f"{server.base}/chunked-big",
        "--digest",
        GOOD,
        "--into",
        str(tmp_path),
        "--model",
        "m",
        "--max-bytes",
        "100000",
    )
    assert result.code == fetch.EXIT_TOO_LARGE
    assert repo_files(tmp_path) == []


def test_not_found_is_clear_and_not_retried(server: Served, tmp_path: Path, cli: Any) -> None:
    result = cli(f"{server.base}/missing", "--digest", GOOD, "--into", str(tmp_path), "--model", "m")
    assert result.code == fetch.EXIT_NOT_FOUND
    assert_one_line_error(result, "ArtifactNotFound")
    assert "404" in result.err and "/missing" in result.err
    assert len(server.requests) == 1
    assert repo_files(tmp_path) == []


def test_forbidden_is_access_denied(server: Served, tmp_path: Path, cli: Any) -> None:
    result = cli(f"{server.base}/forbidden", "--digest", GOOD, "--into", str(tmp_path), "--model", "m")
    assert result.code == fetch.EXIT_ACCESS_DENIED
    assert "403" in result.err


def test_connection_refused_fails_after_retries(tmp_path: Path, cli: Any) -> None:
    import socket

    with socket.socket() as sock:  # a port that nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = cli(
        f"http://127.0.0.1:{port}/m",
        "--digest",
        GOOD,
        "--into",
        str(tmp_path),
        "--model",
        "m",
        "--retries",
        "1",
    )
    assert result.code == fetch.EXIT_DOWNLOAD
    assert_one_line_error(result, "DownloadFailed")
    assert "2 attempt" in result.err


def test_presigned_query_is_not_printed(server: Served, tmp_path: Path, cli: Any) -> None:
    result = cli(
        f"{server.base}/missing?X-Amz-Signature=secret",
        "--digest",
        GOOD,
        "--into",
        str(tmp_path),
        "--model",
        "m",
    )
    assert result.code == fetch.EXIT_NOT_FOUND
    assert "secret" not in result.err


def test_existing_verified_file_is_reused(server: Served, tmp_path: Path, cli: Any) -> None:
    assert cli(f"{server.base}/m", "--digest", GOOD, "--into", str(tmp_path), "--model", "m").code == 0
    again = cli(f"{server.base}/m", "--digest", GOOD, "--into", str(tmp_path), "--model", "m")
    assert again.code == 0
    assert "already in place" in again.out
    assert len(server.requests) == 1


def test_second_version_and_config_next_to_existing_model(server: Served, tmp_path: Path, cli: Any) -> None:
    assert cli(f"{server.base}/m", "--digest", GOOD, "--into", str(tmp_path), "--model", "m").code == 0
    config = 'name: "m"\nplatform: "onnxruntime_onnx"\n'
    result = cli(
        f"{server.base}/m", "--digest", GOOD, "--into", str(tmp_path), "--model", "m", "--version", "2",
        "--config-pbtxt", config,
    )  # fmt: skip
    assert result.code == 0, result.err
    assert repo_files(tmp_path) == ["m", "m/1", "m/1/model.onnx", "m/2", "m/2/model.onnx", "m/config.pbtxt"]
    assert (tmp_path / "m" / "config.pbtxt").read_text() == config


def test_config_pbtxt_from_file(server: Served, tmp_path: Path, cli: Any) -> None:
    config_file = tmp_path / "cfg.pbtxt"
    config_file.write_text("max_batch_size: 8\n")
    repo = tmp_path / "repo"
    result = cli(
        f"{server.base}/m",
        "--digest",
        GOOD,
        "--into",
        str(repo),
        "--model",
        "m",
        "--config-pbtxt",
        str(config_file),
    )
    assert result.code == 0, result.err
    assert (repo / "m" / "config.pbtxt").read_text() == "max_batch_size: 8\n"


def test_config_pbtxt_missing_file_is_usage_error(server: Served, tmp_path: Path, cli: Any) -> None:
    result = cli(
        f"{server.base}/m",
        "--digest",
        GOOD,
        "--into",
        str(tmp_path),
        "--model",
        "m",
        "--config-pbtxt",
        "nope.pbtxt",
    )
    assert result.code == fetch.EXIT_USAGE
    assert "nope.pbtxt" in result.err
    assert server.requests == []  # validated before any download


def test_stale_staging_dir_is_removed(server: Served, tmp_path: Path, cli: Any) -> None:
    stale = tmp_path / f"{fetch.STAGING_PREFIX}dead"
    stale.mkdir()
    (stale / "download.partial").write_bytes(b"half")
    assert cli(f"{server.base}/m", "--digest", GOOD, "--into", str(tmp_path), "--model", "m").code == 0
    assert not stale.exists()


def test_termination_log_gets_the_reason(server: Served, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = tmp_path / "termination-log"
    log.write_text("")
    parser = argparse.ArgumentParser()
    fetch.add_arguments(parser)
    args = parser.parse_args(
        [
            f"{server.base}/m",
            "--digest",
            WRONG,
            "--into",
            str(tmp_path / "r"),
            "--model",
            "m",
            "--termination-log",
            str(log),
        ]
    )
    assert fetch.run(args) == fetch.EXIT_INTEGRITY
    assert log.read_text().startswith("ArtifactIntegrity: digest mismatch")


# --------------------------------------------------------------------------- local sources


@pytest.fixture
def model_file(tmp_path: Path) -> Path:
    path = tmp_path / "src dir" / "model.onnx"
    path.parent.mkdir()
    path.write_bytes(BLOB)
    return path


def test_file_uri(model_file: Path, tmp_path: Path, cli: Any) -> None:
    uri = model_file.as_uri()  # percent-encodes the space
    result = cli(uri, "--digest", GOOD, "--into", str(tmp_path / "r"), "--model", "m")
    assert result.code == 0, result.err
    assert (tmp_path / "r" / "m" / "1" / "model.onnx").read_bytes() == BLOB


def test_plain_path(model_file: Path, tmp_path: Path, cli: Any) -> None:
    result = cli(str(model_file), "--digest", GOOD, "--into", str(tmp_path / "r"), "--model", "m")
    assert result.code == 0, result.err
    assert (tmp_path / "r" / "m" / "1" / "model.onnx").read_bytes() == BLOB


def test_plain_path_wrong_digest(model_file: Path, tmp_path: Path, cli: Any) -> None:
    result = cli(str(model_file), "--digest", WRONG, "--into", str(tmp_path / "r"), "--model", "m")
    assert result.code == fetch.EXIT_INTEGRITY
    assert repo_files(tmp_path / "r") == []


def test_pvc_uri_under_root(tmp_path: Path, cli: Any) -> None:
    root = tmp_path / "pvc"
    (root / "models-claim" / "resnet").mkdir(parents=True)
    (root / "models-claim" / "resnet" / "v3.onnx").write_bytes(BLOB)
    result = cli(
        "pvc://models-claim/resnet/v3.onnx", "--digest", GOOD, "--into", str(tmp_path / "r"), "--model", "m",
        "--pvc-root", str(root),
    )  # fmt: skip
    assert result.code == 0, result.err
    assert (tmp_path / "r" / "m" / "1" / "model.onnx").read_bytes() == BLOB


def test_pvc_missing_file(tmp_path: Path, cli: Any) -> None:
    result = cli(
        "pvc://claim/x.onnx",
        "--digest",
        GOOD,
        "--into",
        str(tmp_path / "r"),
        "--model",
        "m",
        "--pvc-root",
        str(tmp_path),
    )
    assert result.code == fetch.EXIT_NOT_FOUND
    assert_one_line_error(result, "ArtifactNotFound")
    assert str(tmp_path / "claim" / "x.onnx") in result.err


def test_pvc_path_escape_is_refused(tmp_path: Path, cli: Any) -> None:
    result = cli("pvc://claim/../../etc/passwd", "--digest", GOOD, "--into", str(tmp_path), "--model", "m")
    assert result.code == fetch.EXIT_USAGE


def test_directory_is_not_a_model(tmp_path: Path, cli: Any) -> None:
    result = cli(str(tmp_path), "--digest", GOOD, "--into", str(tmp_path / "r"), "--model", "m")
    assert result.code == fetch.EXIT_NOT_FOUND
    assert "directory" in result.err


def test_unwritable_repository(model_file: Path, cli: Any) -> None:
    # A directory that exists but refuses new entries for every uid: root bypasses a chmod 0555 (CI runs
    # as root), but not sysfs, whose top level no process may create anything in.
    repo = Path("/sys")
    assert repo.is_dir() and not any(p.name.startswith(fetch.STAGING_PREFIX) for p in repo.iterdir())
    result = cli(str(model_file), "--digest", GOOD, "--into", str(repo), "--model", "m")
    assert result.code == fetch.EXIT_WRITE
    assert_one_line_error(result, "RepositoryWriteFailed")
    assert "cannot write into model repository /sys" in result.err
    assert not (repo / "m").exists()


def test_repository_path_is_a_file(model_file: Path, tmp_path: Path, cli: Any) -> None:
    blocker = tmp_path / "repo"
    blocker.write_text("not a directory")
    result = cli(str(model_file), "--digest", GOOD, "--into", str(blocker), "--model", "m")
    assert result.code == fetch.EXIT_WRITE
    assert_one_line_error(result, "RepositoryWriteFailed")


# --------------------------------------------------------------------------- s3 (moto server on loopback)


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    server_mod = pytest.importorskip("moto.server")
    srv = server_mod.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    srv.start()
    host, port = srv.get_host_and_port()
    yield f"http://{host}:{port}"
    srv.stop()


@pytest.fixture
def s3_env(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    boto3 = pytest.importorskip("boto3")
    for var in (
        "http_proxy",
        "https_proxy",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "AWS_PROFILE",
        "AWS_ENDPOINT_URL_S3",
    ):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    client = boto3.client("s3", endpoint_url=moto_endpoint)
    bucket = f"models-{os.getpid()}-{time.monotonic_ns()}"
    client.create_bucket(Bucket=bucket)
    client.put_object(Bucket=bucket, Key="resnet/3/model.onnx", Body=BLOB)
    return bucket


def test_s3_through_endpoint_env(s3_env: str, tmp_path: Path, cli: Any) -> None:
    result = cli(f"s3://{s3_env}/resnet/3/model.onnx", "--digest", GOOD, "--into", str(tmp_path), "--model", "m")
    assert result.code == 0, result.err
    assert (tmp_path / "m" / "1" / "model.onnx").read_bytes() == BLOB


def test_s3_wrong_digest(s3_env: str, tmp_path: Path, cli: Any) -> None:
    result = cli(f"s3://{s3_env}/resnet/3/model.onnx", "--digest", WRONG, "--into", str(tmp_path), "--model", "m")
    assert result.code == fetch.EXIT_INTEGRITY
    assert repo_files(tmp_path) == []


@pytest.mark.parametrize("uri", ["s3://{bucket}/nope.onnx", "s3://no-such-bucket-xyz/model.onnx"])
def test_s3_missing_key_or_bucket(s3_env: str, tmp_path: Path, cli: Any, uri: str) -> None:
    result = cli(uri.format(bucket=s3_env), "--digest", GOOD, "--into", str(tmp_path), "--model", "m")
    assert result.code == fetch.EXIT_NOT_FOUND, result.err
    assert_one_line_error(result, "ArtifactNotFound")


def test_s3_resume_uses_range(s3_env: str, tmp_path: Path) -> None:
    source = fetch.resolve_source(f"s3://{s3_env}/resnet/3/model.onnx")
    opened = source.open(1000)
    try:
        assert opened.offset == 1000 and opened.total == len(BLOB)
        assert b"".join(opened.chunks) == BLOB[1000:]
    finally:
        opened.close()


def test_s3_without_boto3(tmp_path: Path, cli: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "boto3", None)  # makes `import boto3` raise ImportError
    result = cli("s3://bucket/model.onnx", "--digest", GOOD, "--into", str(tmp_path), "--model", "m")
    assert result.code == fetch.EXIT_DEPENDENCY
    assert_one_line_error(result, "MissingDependency")
    assert "boto3" in result.err
    assert repo_files(tmp_path) == []


# --------------------------------------------------------------------------- argument validation


@pytest.mark.parametrize(
    "digest",
    [
        "abc",
        "sha256:" + "0" * 63,
        "sha256:" + "0" * 65,
        "sha256:" + "g" * 64,
        "sha512:" + "0" * 128,
        "sha256" + "0" * 64,
        "0" * 64,
    ],
)
def test_bad_digest_is_usage_error(digest: str, tmp_path: Path, cli: Any) -> None:
    result = cli("/nonexistent", "--digest", digest, "--into", str(tmp_path), "--model", "m")
    assert result.code == fetch.EXIT_USAGE
    assert_one_line_error(result, "InvalidArgument")
    assert repo_files(tmp_path) == []


def test_uppercase_digest_is_accepted(model_file: Path, tmp_path: Path, cli: Any) -> None:
    result = cli(
        str(model_file),
        "--digest",
        GOOD.upper().replace("SHA256", "sha256"),
        "--into",
        str(tmp_path / "r"),
        "--model",
        "m",
    )
    assert result.code == 0, result.err


@given(st.text(alphabet="0123456789abcdefABCDEF", min_size=64, max_size=64))
def test_parse_digest_normalises_valid(hexpart: str) -> None:
    assert fetch.parse_digest(f"sha256:{hexpart}") == f"sha256:{hexpart.lower()}"


@given(st.text(max_size=80))
def test_parse_digest_rejects_everything_else(text: str) -> None:
    import re

    if re.fullmatch(r"\s*sha256:[0-9a-fA-F]{64}\s*", text):
        return
    with pytest.raises(fetch.UsageError):
        fetch.parse_digest(text)


def test_missing_digest_needs_allow_unverified(model_file: Path, tmp_path: Path, cli: Any) -> None:
    refused = cli(str(model_file), "--into", str(tmp_path / "r"), "--model", "m")
    assert refused.code == fetch.EXIT_USAGE
    assert "--allow-unverified" in refused.err
    allowed = cli(str(model_file), "--allow-unverified", "--into", str(tmp_path / "r"), "--model", "m")
    assert allowed.code == 0
    assert "WARNING" in allowed.err and GOOD in allowed.err
    assert (tmp_path / "r" / "m" / "1" / "model.onnx").read_bytes() == BLOB


@pytest.mark.parametrize(
    ("uri", "needle"),
    [
        ("oci://ghcr.io/org/model@sha256:" + "0" * 64, "not supported yet"),
        ("ftp://host/model.onnx", "unsupported URI scheme"),
        ("file://otherhost/model.onnx", "must be local"),
        ("s3://bucket-only", "s3://BUCKET/KEY"),
        ("pvc://claim-only", "pvc://CLAIM/PATH"),
        ("http:///nohost", "no host"),
    ],
)
def test_bad_uris(uri: str, needle: str, tmp_path: Path, cli: Any) -> None:
    result = cli(uri, "--digest", GOOD, "--into", str(tmp_path), "--model", "m")
    assert result.code == fetch.EXIT_USAGE
    assert needle in result.err
    assert_one_line_error(result, "InvalidArgument")


@pytest.mark.parametrize(
    ("model", "version"),
    [("../x", "1"), (".hidden", "1"), ("a/b", "1"), ("m", "v1"), ("m", "-1"), ("m", "0")],
)
def test_bad_model_or_version(model: str, version: str, model_file: Path, tmp_path: Path, cli: Any) -> None:
    result = cli(
        str(model_file),
        "--digest",
        GOOD,
        "--into",
        str(tmp_path / "r"),
        "--model",
        model,
        f"--version={version}",
    )
    assert result.code == fetch.EXIT_USAGE
    assert repo_files(tmp_path / "r") == []


@pytest.mark.parametrize(
    ("text", "value"), [("0", 0), ("1000", 1000), ("1Ki", 1024), ("2M", 2_000_000), ("3GiB", 3 * 2**30)]
)
def test_parse_size(text: str, value: int) -> None:
    assert fetch.parse_size(text) == value


# --------------------------------------------------------------------------- as a process


def _subprocess_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    runtime_dir = str(Path(fetch.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [runtime_dir, env.get("PYTHONPATH")]))
    return env


def test_process_mismatch_exit_code_and_no_traceback(server: Served, tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "modelserver.fetch", f"{server.base}/m", "--digest", WRONG,
         "--into", str(tmp_path), "--model", "m", "--termination-log", ""],
        capture_output=True, text=True, env=_subprocess_env(), timeout=30,
    )  # fmt: skip
    assert proc.returncode == 3
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert repo_files(tmp_path) == []


def test_sigterm_mid_download_leaves_nothing(server: Served, tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "modelserver.fetch", f"{server.base}/stall-mid-body", "--digest", GOOD,
         "--into", str(tmp_path), "--model", "m", "--termination-log", ""],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_subprocess_env(),
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 20
        # Wait until the download has started (staging file with the first bytes exists).
        while not any(p.name == "download.partial" for p in tmp_path.rglob("*")):
            assert time.monotonic() < deadline, "download never started"
            time.sleep(0.02)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == fetch.EXIT_INTERRUPTED
    assert "Interrupted" in err and "Traceback" not in err
    assert repo_files(tmp_path) == []


def test_wired_as_modelserver_fetch_subcommand(server: Served, tmp_path: Path) -> None:
    from modelserver import cli

    base = ["fetch", f"{server.base}/m", "--into", str(tmp_path), "--model", "m", "--termination-log", ""]
    assert cli.main([*base, "--digest", WRONG]) == fetch.EXIT_INTEGRITY
    assert repo_files(tmp_path) == []
    assert cli.main([*base, "--digest", GOOD]) == fetch.EXIT_OK
    assert (tmp_path / "m" / "1" / "model.onnx").read_bytes() == BLOB
