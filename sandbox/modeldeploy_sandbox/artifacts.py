"""A model artifact server on 127.0.0.1, so that ``modelserver fetch http://...`` runs for real.

    with ArtifactServer() as artifacts:
        model = artifacts.add("resnet/1/model.onnx", linear_model(seed=1))
        model.url, model.digest   # http://127.0.0.1:PORT/resnet/1/model.onnx, sha256:...

Files live in a temporary directory removed on close. Every request is counted per path
(:meth:`ArtifactServer.hits`), which tests use to show that e.g. a restarted fetch re-downloads.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import http.server
import shutil
import tempfile
import threading
from pathlib import Path
from types import TracebackType
from typing import Any

from modeldeploy_sandbox.onnx_models import corrupt_model, linear_model, other_signature_model, sha256_digest


@dataclasses.dataclass(frozen=True)
class Artifact:
    """One served file: where to fetch it from and its digest."""

    path: str
    url: str
    digest: str
    size: int


class _Handler(http.server.SimpleHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        self.server.count(self.path)
        super().do_GET()

    def do_HEAD(self) -> None:
        self.server.count(self.path)
        super().do_HEAD()

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet: fetch logs what it downloads


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, root: Path) -> None:
        super().__init__(("127.0.0.1", 0), functools.partial(_Handler, directory=str(root)))
        self._hits: collections.Counter[str] = collections.Counter()
        self._lock = threading.Lock()

    def count(self, path: str) -> None:
        with self._lock:
            self._hits[path.split("?", 1)[0]] += 1

    def hits(self) -> dict[str, int]:
        with self._lock:
            return dict(self._hits)


class ArtifactServer:
    """Serves files from a temp dir over HTTP on 127.0.0.1 (a background thread)."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="modeldeploy-artifacts-"))
        self._server = _Server(self.root)
        self._thread = threading.Thread(target=self._server.serve_forever, name="artifact-server", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def add(self, path: str, data: bytes) -> Artifact:
        """Serve ``data`` at ``/<path>``; returns its URL and sha256 digest."""
        relative = Path(path.lstrip("/"))
        if ".." in relative.parts:
            raise ValueError(f"artifact path {path!r} leaves the artifact root")
        target = self.root / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        return Artifact(relative.as_posix(), f"{self.url}/{relative.as_posix()}", sha256_digest(data), len(data))

    # Shortcuts for the usual scenarios.
    def linear(self, path: str = "model/1/model.onnx", seed: int = 0) -> Artifact:
        return self.add(path, linear_model(seed))

    def other_signature(self, path: str = "model-other/1/model.onnx", seed: int = 0) -> Artifact:
        return self.add(path, other_signature_model(seed))

    def corrupt(self, path: str = "model-corrupt/1/model.onnx") -> Artifact:
        return self.add(path, corrupt_model())

    def hits(self, path: str | None = None) -> Any:
        """Requests per path (``/a/b``), or for one path."""
        hits = self._server.hits()
        return hits if path is None else hits.get("/" + path.lstrip("/"), 0)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> ArtifactServer:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
