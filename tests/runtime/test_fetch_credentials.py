"""`modelserver fetch` hardening: pvc:// claim traversal, source credentials from a mounted Secret.

Every server here is a real HTTP server (or moto's S3 server, with its IAM authentication on) on 127.0.0.1.
"""

from __future__ import annotations

import hashlib
import http.server
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from modelserver import fetch

from ..s3_store import PrivateBucket, private_bucket

BLOB = b"model bytes " * 1000
GOOD = "sha256:" + hashlib.sha256(BLOB).hexdigest()
TOKEN = "s3cret-token"


@dataclass
class Recorder:
    """What each request carried, per server."""

    authorization: list[str | None] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def _serve(handler: type[http.server.BaseHTTPRequestHandler]) -> tuple[http.server.ThreadingHTTPServer, str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


@pytest.fixture
def servers(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, Recorder, str, Recorder]]:
    """(origin, its recorder, cdn, its recorder): the origin wants the token; /redirect sends to the cdn."""
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY"):
        monkeypatch.delenv(var, raising=False)
    origin_seen, cdn_seen = Recorder(), Recorder()
    cdn_url = ""

    class Cdn(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            with cdn_seen.lock:
                cdn_seen.authorization.append(self.headers.get("Authorization"))
            self.send_response(200)
            self.send_header("Content-Length", str(len(BLOB)))
            self.end_headers()
            self.wfile.write(BLOB)

        def log_message(self, *args: object) -> None:
            pass

    class Origin(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            auth = self.headers.get("Authorization")
            with origin_seen.lock:
                origin_seen.authorization.append(auth)
            if auth != f"Bearer {TOKEN}":
                self.send_response(401)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            if self.path == "/redirect":
                self.send_response(302)
                self.send_header("Location", f"{cdn_url}/model.onnx")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(BLOB)))
            self.end_headers()
            self.wfile.write(BLOB)

        def log_message(self, *args: object) -> None:
            pass

    cdn, cdn_url = _serve(Cdn)
    origin, origin_url = _serve(Origin)
    yield origin_url, origin_seen, cdn_url, cdn_seen
    for server in (cdn, origin):
        server.shutdown()
        server.server_close()


def _secret(tmp_path: Path, **keys: str) -> Path:
    """A directory laid out as a mounted Secret: one file per key."""
    directory = tmp_path / "credentials"
    directory.mkdir()
    for key, value in keys.items():
        (directory / key).write_text(value + "\n")  # kubectl create secret --from-file keeps newlines
    return directory


def _fetch(uri: str, repo: Path, credentials: Path | None = None, **kwargs: object) -> Path:
    return fetch.fetch_model(uri, GOOD, repo, "m", retries=0, credentials_dir=credentials, **kwargs)  # type: ignore[arg-type]


def test_bearer_token_from_the_secret_reaches_the_origin(servers: tuple[str, Recorder, str, Recorder],
                                                        tmp_path: Path) -> None:
    origin, seen, _, _ = servers
    path = _fetch(f"{origin}/model.onnx", tmp_path / "repo", _secret(tmp_path, token=TOKEN))
    assert path.read_bytes() == BLOB
    assert seen.authorization == [f"Bearer {TOKEN}"]


def test_without_the_secret_a_private_source_is_access_denied(servers: tuple[str, Recorder, str, Recorder],
                                                              tmp_path: Path) -> None:
    origin, seen, _, _ = servers
    with pytest.raises(fetch.FetchError) as raised:
        _fetch(f"{origin}/model.onnx", tmp_path / "repo")
    assert raised.value.reason == "ArtifactAccessDenied" and "HTTP 401" in raised.value.message
    assert seen.authorization == [None]
    assert not (tmp_path / "repo" / "m").exists()


def test_the_token_never_follows_a_redirect(servers: tuple[str, Recorder, str, Recorder], tmp_path: Path) -> None:
    origin, origin_seen, _, cdn_seen = servers
    path = _fetch(f"{origin}/redirect", tmp_path / "repo", _secret(tmp_path, token=TOKEN))
    assert path.read_bytes() == BLOB
    assert origin_seen.authorization == [f"Bearer {TOKEN}"]
    assert cdn_seen.authorization == [None]  # the redirect target got the request, not the token


def test_the_token_is_never_sent_over_plain_http_to_another_host(tmp_path: Path) -> None:
    with pytest.raises(fetch.FetchError) as raised:
        _fetch("http://models.example.com/model.onnx", tmp_path / "repo", _secret(tmp_path, token=TOKEN))
    assert raised.value.reason == "InvalidArgument"
    assert "plain http to models.example.com" in raised.value.message


@pytest.mark.parametrize("contents,problem", [
    ({"AWS_ACCESS_KEY_ID": "only-half"}, "both AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"),
    ({"token": "line\nbreak"}, "token contains a line break"),
])
def test_a_broken_secret_is_named(tmp_path: Path, contents: dict[str, str], problem: str) -> None:
    directory = tmp_path / "credentials"
    directory.mkdir()
    for key, value in contents.items():
        (directory / key).write_text(value)
    with pytest.raises(fetch.FetchError) as raised:
        _fetch("https://models.example.com/model.onnx", tmp_path / "repo", directory)
    assert raised.value.reason == "InvalidArgument"
    assert raised.value.message.startswith("--credentials-dir:") and problem in raised.value.message


def test_a_missing_credentials_directory_is_named(tmp_path: Path) -> None:
    with pytest.raises(fetch.FetchError, match=r"credentials directory .* does not exist"):
        _fetch("https://models.example.com/model.onnx", tmp_path / "repo", tmp_path / "absent")


@pytest.mark.parametrize("uri", ["pvc://../outside/model.onnx", "pvc://./claim/model.onnx",
                                 "pvc://Claim/model.onnx", "pvc://claim/a/../../x"])
def test_pvc_claim_traversal_is_refused(tmp_path: Path, uri: str) -> None:
    root = tmp_path / "pvc"
    (root / "claim").mkdir(parents=True)
    # The file a traversal would reach: it must never be read.
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "model.onnx").write_bytes(BLOB)
    with pytest.raises(fetch.FetchError) as raised:
        _fetch(uri, tmp_path / "repo", pvc_root=root)
    assert raised.value.reason == "InvalidArgument"
    assert not (tmp_path / "repo" / "m").exists()


# --------------------------------------------------------------------------- s3 keys from the Secret


@pytest.fixture
def moto_bucket(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[PrivateBucket]:
    """moto's S3 server on loopback with IAM authentication on (see tests/s3_store.py), and no AWS
    credentials in the environment."""
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "AWS_PROFILE", "AWS_ACCESS_KEY_ID",
                "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(var, raising=False)
    # Nothing but the Secret may supply credentials: no files, no instance metadata.
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with private_bucket({"m.onnx": BLOB}) as bucket:
        yield bucket


def test_s3_keys_and_endpoint_come_from_the_secret(moto_bucket: PrivateBucket, tmp_path: Path) -> None:
    secret = _secret(tmp_path, AWS_ACCESS_KEY_ID=moto_bucket.access_key_id,
                     AWS_SECRET_ACCESS_KEY=moto_bucket.secret_access_key, AWS_ENDPOINT_URL=moto_bucket.endpoint,
                     AWS_REGION="us-east-1")
    assert _fetch(f"s3://{moto_bucket.bucket}/m.onnx", tmp_path / "repo", secret).read_bytes() == BLOB


@pytest.mark.parametrize("wrong,error", [("AWS_ACCESS_KEY_ID", "InvalidAccessKeyId"),
                                         ("AWS_SECRET_ACCESS_KEY", "SignatureDoesNotMatch")])
def test_s3_keys_the_store_refuses_are_access_denied(moto_bucket: PrivateBucket, tmp_path: Path, wrong: str,
                                                     error: str) -> None:
    keys = {"AWS_ACCESS_KEY_ID": moto_bucket.access_key_id, "AWS_SECRET_ACCESS_KEY": moto_bucket.secret_access_key,
            wrong: "AKIA0000000000000000", "AWS_ENDPOINT_URL": moto_bucket.endpoint, "AWS_REGION": "us-east-1"}
    with pytest.raises(fetch.FetchError) as raised:
        _fetch(f"s3://{moto_bucket.bucket}/m.onnx", tmp_path / "repo", _secret(tmp_path, **keys))
    assert raised.value.reason == "ArtifactAccessDenied" and error in raised.value.message, raised.value.message
    assert moto_bucket.secret_access_key not in raised.value.message
    assert not (tmp_path / "repo" / "m").exists()


def test_s3_without_any_credentials_is_access_denied(moto_bucket: PrivateBucket, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_bucket.endpoint)
    with pytest.raises(fetch.FetchError) as raised:
        _fetch(f"s3://{moto_bucket.bucket}/m.onnx", tmp_path / "repo")
    assert raised.value.reason == "ArtifactAccessDenied" and "no AWS credentials" in raised.value.message
