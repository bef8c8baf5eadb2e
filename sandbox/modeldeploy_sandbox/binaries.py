"""Where the control-plane binaries are, and building them when they are not there yet.

The binaries are built from their Go modules by ``hack/kube/build.sh`` (``make kube`` runs it) into
``~/.cache/modeldeploy/kube/<version>/`` (``MODELDEPLOY_KUBE_CACHE`` moves the cache). A finished
build is reused. :func:`ensure_binaries` runs the build script when something is missing, so a
first ``make test`` or ``make demo`` on a fresh machine builds them, showing progress.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

NEWEST = "v1.37.2"  # the pinned release every test runs on
OLDEST = "v1.34.4"  # the oldest release we support: the compatibility job
SUPPORTED = (OLDEST, NEWEST)
VERSION_ENV = "MODELDEPLOY_KUBE_VERSION"
COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl")
REPO = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = REPO / "hack" / "kube" / "build.sh"


class BinariesMissing(RuntimeError):
    """The control plane cannot be started: its binaries are not built and cannot be built here."""


def cache_root() -> Path:
    configured = os.environ.get("MODELDEPLOY_KUBE_CACHE")
    return Path(configured) if configured else Path.home() / ".cache" / "modeldeploy" / "kube"


def selected_version() -> str:
    """The release to run: ``MODELDEPLOY_KUBE_VERSION`` if set (the compatibility job), else the newest."""
    return os.environ.get(VERSION_ENV) or NEWEST


@dataclasses.dataclass(frozen=True)
class KubeBinaries:
    version: str
    directory: Path

    def path(self, component: str) -> Path:
        return self.directory / component

    @property
    def complete(self) -> bool:
        return (self.directory / ".built-from").is_file() and all(
            os.access(self.path(c), os.X_OK) for c in COMPONENTS)


def ensure_binaries(version: str | None = None, *, build: bool = True) -> KubeBinaries:
    """The binaries of ``version``; built first (progress on stderr) if they are missing or stale."""
    version = version or selected_version()
    binaries = KubeBinaries(version, cache_root() / version)
    if not build:
        if binaries.complete:
            return binaries
        raise BinariesMissing(f"Kubernetes {version} is not built in {binaries.directory}: run `make kube`")
    if not BUILD_SCRIPT.is_file():
        if binaries.complete:
            return binaries
        raise BinariesMissing(f"Kubernetes {version} is not built in {binaries.directory}, and the build script "
                              f"{BUILD_SCRIPT} is not here: build it from a checkout with `make kube`")
    # The script itself decides whether the cached build is current (it hashes the Go module).
    result = subprocess.run(["bash", str(BUILD_SCRIPT), version], stdout=sys.stderr, stderr=sys.stderr,
                            check=False)
    if result.returncode != 0 or not binaries.complete:
        raise BinariesMissing(f"building Kubernetes {version} failed (exit code {result.returncode}); "
                              f"the output above says why")
    return binaries
