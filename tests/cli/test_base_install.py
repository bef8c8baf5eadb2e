"""Item 5 of issue 13: a base install (no extras) explains, in one line, which extra a command needs.

Each console script of this venv runs in a child process in which every module that only the extras
install is unimportable (see base_install.py): what `pip install modeldeploy` without extras gives.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from .base_install import extra_only_modules, run_base_install

NEEDS_AN_EXTRA = [
    (("kubectl-modeldeploy", "status", "resnet", "-n", "ml"), "operator", "kubernetes"),
    (("kubectl-modeldeploy", "-A", "list"), "operator", "kubernetes"),
    (("kubectl-modeldeploy", "promote", "resnet"), "operator", "kubernetes"),
    (("modeldeploy", "run"), "operator", "kopf"),
    (("modeldeploy", "export", "mypackage.model:Net", "--input-shape", "1,3"), "export", "numpy|torch"),
    (("modeldeploy", "demo", "--quick"), "demo|dev", None),
    (("modeldeploy", "sandbox", "up"), "demo|dev", None),
    (("modelserver", "serve", "--model-repository", "models"), "runtime", None),
]


def test_the_base_install_really_lacks_what_the_extras_bring() -> None:
    # The harness itself: if this set were empty, the tests below would prove nothing.
    assert {"kubernetes", "kopf", "grpc", "aiohttp", "torch", "onnxruntime", "numpy"} <= extra_only_modules()
    assert not {"pydantic", "yaml"} & extra_only_modules()


@pytest.mark.parametrize(("argv", "extra", "module"), NEEDS_AN_EXTRA, ids=lambda v: " ".join(v) if
                         isinstance(v, tuple) else None)
def test_a_command_whose_extra_is_missing_says_which_extra_in_one_line(
        tmp_path: Path, argv: tuple[str, ...], extra: str, module: str | None) -> None:
    result = run_base_install(tmp_path, *argv)
    assert result.returncode == 2, result
    assert "Traceback" not in result.stderr and "Error:" not in result.stderr.split(":", 1)[0], result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert re.search(rf"needs the '({extra})' extra \(missing Python module '[\w.]+'\): "
                     rf"(pip install 'modeldeploy|in the source checkout, pip install -e '\.)\[({extra})\]'",
                     lines[0]), lines[0]
    if module is not None:
        assert re.search(rf"missing Python module '({module})'", lines[0]), lines[0]
    assert result.stdout == "", result.stdout


def test_what_needs_no_extra_works_in_a_base_install(tmp_path: Path) -> None:
    crd = run_base_install(tmp_path, "modeldeploy", "crd")
    assert crd.returncode == 0 and crd.stderr == "", crd
    assert "kind: CustomResourceDefinition" in crd.stdout and "name: modeldeployments." in crd.stdout
    written = run_base_install(tmp_path, "modeldeploy", "crd", "--write", str(tmp_path))
    assert written.returncode == 0 and (tmp_path / "serving.modeldeploy.dev_modeldeployments.yaml").is_file(), written
    for script in ("modeldeploy", "kubectl-modeldeploy", "modelserver"):
        helped = run_base_install(tmp_path, script, "--help")
        assert helped.returncode == 0 and "usage:" in helped.stdout and helped.stderr == "", helped
    # The plugin's help names its extra before anyone runs a command.
    assert "pip install 'modeldeploy[operator]'" in run_base_install(tmp_path, "kubectl-modeldeploy", "--help").stdout
