"""Run the console scripts as a base install (`pip install modeldeploy`, no extras) would.

The installed distribution's metadata says what a base install has: the base requirements and
everything they pull in. Every other module the extras bring (kubernetes, kopf, grpc, torch, ...)
is made unimportable in the child process by a meta-path finder installed from a sitecustomize,
so an import fails exactly as it does when the package is missing: ModuleNotFoundError.
"""

from __future__ import annotations

import functools
import importlib.metadata
import os
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

DISTRIBUTION = "modeldeploy"
# Installer tooling that a fresh venv has whatever was installed (and a .pth imports at start-up).
INSTALLER = frozenset({"setuptools", "_distutils_hack", "pkg_resources", "pip"})
SCRIPTS = Path(sys.executable).parent

SITECUSTOMIZE = '''
import os
import sys

BLOCKED = frozenset(os.environ["MODELDEPLOY_TEST_BLOCKED_MODULES"].split(","))
early = sorted(name for name in sys.modules if name.split(".")[0] in BLOCKED)
if early:
    raise SystemExit(f"blocked modules imported before sitecustomize: {early}")


class NotInstalled:
    """Finds nothing for a blocked module and says so as a missing package would."""

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


sys.meta_path.insert(0, NotInstalled())
'''


def _requirements(dist: str, extra: str | None) -> list[str]:
    """Distribution names ``dist`` requires (its base requirements, or those of one of its extras)."""
    names = []
    for text in importlib.metadata.requires(dist) or []:
        requirement = Requirement(text)
        marker = requirement.marker
        of_an_extra = marker is not None and "extra" in str(marker)
        if of_an_extra == (extra is not None) and (marker is None or marker.evaluate({"extra": extra or ""})):
            names.append(requirement.name)
    return names


def _closure(roots: Iterable[str]) -> set[str]:
    """The installed distributions ``roots`` pull in, transitively (base requirements of each)."""
    seen: set[str] = set()
    todo = [canonicalize_name(r) for r in roots]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        try:
            requirements = _requirements(name, None)
        except importlib.metadata.PackageNotFoundError:
            continue  # not installed here: nothing to block either
        seen.add(name)
        todo += [canonicalize_name(r) for r in requirements]
    return seen


@functools.cache
def extra_only_modules() -> frozenset[str]:
    """Top-level modules that only the extras install: what a base install cannot import."""
    extras = importlib.metadata.metadata(DISTRIBUTION).get_all("Provides-Extra") or []
    base = _closure(_requirements(DISTRIBUTION, None)) | {canonicalize_name(DISTRIBUTION)}
    with_extras = _closure(r for extra in extras for r in _requirements(DISTRIBUTION, extra))
    only_extras = with_extras - base
    blocked = set()
    for module, dists in importlib.metadata.packages_distributions().items():
        owners = {canonicalize_name(d) for d in dists}
        if owners and owners <= only_extras and module not in INSTALLER:
            blocked.add(module)
    return frozenset(blocked)


def run_base_install(tmp: Path, script: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``script args`` (a console script of this venv) with every extra-only module unimportable."""
    (tmp / "sitecustomize.py").write_text(SITECUSTOMIZE)
    env = {**os.environ, "PYTHONPATH": str(tmp), "MODELDEPLOY_TEST_BLOCKED_MODULES": ",".join(extra_only_modules())}
    return subprocess.run([str(SCRIPTS / script), *args], env=env, cwd=tmp, capture_output=True, text=True,
                          timeout=120, check=False)
