"""CI runs the README's test command, and cannot pass when the Prometheus tests did not run.

The workflows are checked statically (valid YAML, every action pinned to a commit); .ci/run's
Prometheus guard and the Prometheus tests' refusal to skip are run for real.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = ROOT / ".github" / "workflows"
CI_RUN = ROOT / ".ci" / "run"
TEST_COMMAND = "make test"
PINNED = re.compile(r"^[\w.-]+/[\w.-]+(/[\w./-]+)?@[0-9a-f]{40}$")


def _workflow(name: str) -> dict[str, Any]:
    document = yaml.safe_load((WORKFLOWS / name).read_text())
    assert isinstance(document, dict), name
    return document


def _steps(workflow: dict[str, Any]) -> list[dict[str, Any]]:
    return [step for job in workflow["jobs"].values() for step in job["steps"]]


def test_every_workflow_is_valid_yaml_with_every_action_pinned_to_a_commit() -> None:
    names = sorted(path.name for path in WORKFLOWS.glob("*.yml"))
    assert names == ["ci.yml", "e2e.yml"]
    for name in names:
        workflow = _workflow(name)
        assert workflow["permissions"] == {"contents": "read"}, name
        uses = [step["uses"] for step in _steps(workflow) if "uses" in step]
        assert uses, name
        assert [ref for ref in uses if not PINNED.match(ref)] == [], f"{name}: pin actions to a full commit SHA"
        # A tag comment beside each pin says which release it is, for whoever updates it.
        for line in (WORKFLOWS / name).read_text().splitlines():
            if re.match(r"\s*(- )?uses:", line):
                assert re.search(r"# v\d", line), f"{name}: no version comment: {line.strip()}"


def test_ci_runs_the_readme_test_command_on_push_and_pull_request() -> None:
    workflow: dict[Any, Any] = _workflow("ci.yml")
    triggers = workflow["on"] if "on" in workflow else workflow[True]  # YAML 1.1 reads a bare `on` as true
    assert {"push", "pull_request"} <= set(triggers)
    steps = _steps(workflow)
    runs = [step["run"].strip() for step in steps if "run" in step]
    assert TEST_COMMAND in runs
    readme = (ROOT / "README.md").read_text()
    first_block = readme.split("```sh\n", 1)[1].split("```", 1)[0]
    assert any(line.split("#")[0].strip() == TEST_COMMAND for line in first_block.splitlines())
    ci_run_commands = [line.strip() for line in CI_RUN.read_text().splitlines()
                       if line.strip() and not line.lstrip().startswith("#")]
    assert TEST_COMMAND in ci_run_commands


def test_ci_installs_what_ci_run_installs_with_the_readme_versions() -> None:
    steps = _steps(_workflow("ci.yml"))
    uses = {step["uses"].split("@")[0]: step for step in steps if "uses" in step}
    assert uses["actions/setup-python"]["with"]["python-version"] == "3.11"
    readme = (ROOT / "README.md").read_text()
    go_minimum = re.search(r"Go \((\d+\.\d+) or newer", readme)
    assert go_minimum and uses["actions/setup-go"]["with"]["go-version"] == go_minimum.group(1)
    apt = next(step["run"] for step in steps if "apt-get install" in step.get("run", ""))
    ci_run = CI_RUN.read_text()
    for package in re.findall(r"\|\| need\+=\((\w+)\)", ci_run):
        assert package in apt.split(), f"ci.yml does not install {package}, which .ci/run does"
    assert apt.index("prometheus --version") > apt.index("apt-get install")


def _stub(directory: Path, name: str, script: str) -> None:
    path = directory / name
    path.write_text(f"#!/bin/sh\n{script}\n")
    path.chmod(0o755)


def _run_ci(tmp_path: Path, *, prometheus: bool) -> tuple[subprocess.CompletedProcess[str], Path]:
    """.ci/run with stubs for every external tool; `make` only records that it was called."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("dirname", "date"):  # the real ones: the script needs their output
        found = shutil.which(tool)
        assert found, tool
        (bin_dir / tool).symlink_to(found)
    made = tmp_path / "make-called"
    _stub(bin_dir, "apt-get", "exit 0")  # installs nothing: the guard must notice
    _stub(bin_dir, "go", "echo go version go1.26.0 linux/amd64")
    _stub(bin_dir, "wrk", "exit 0")
    _stub(bin_dir, "make", f'echo "$@" >> {made}')
    if prometheus:
        _stub(bin_dir, "prometheus", "echo prometheus, version 2.42.0")
    result = subprocess.run([shutil.which("bash") or "/bin/bash", str(CI_RUN)], env={"PATH": str(bin_dir)},
                            capture_output=True, text=True, timeout=60)
    return result, made


def test_ci_run_stops_before_make_test_without_prometheus(tmp_path: Path) -> None:
    result, made = _run_ci(tmp_path, prometheus=False)
    assert result.returncode != 0
    assert "Prometheus" in result.stderr and "prometheus --version" in result.stderr
    assert not made.exists(), "make test ran although Prometheus is missing"


def test_ci_run_runs_make_test_when_prometheus_is_there(tmp_path: Path) -> None:
    result, made = _run_ci(tmp_path, prometheus=True)
    assert result.returncode == 0, result.stderr
    assert made.read_text().split() == ["test", "test-reliability"]  # the README's command first


def test_prometheus_tests_fail_instead_of_skipping_without_the_binary() -> None:
    """`make test` cannot pass on a machine without Prometheus: its tests error, none is skipped."""
    env = {**os.environ, "PROMETHEUS": "/nonexistent/prometheus"}
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs",
                             "tests/metrics/test_prometheus.py"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=300)
    summary = result.stdout.strip().splitlines()[-1]
    assert result.returncode != 0, result.stdout[-2000:]
    assert "skipped" not in summary and "passed" not in summary, summary
    assert re.search(r"\d+ errors?", summary), summary
    assert "no prometheus binary (apt-get install -y --no-install-recommends prometheus)" in result.stdout
