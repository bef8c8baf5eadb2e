"""Item 6 of issue 13: commands that used to print tracebacks say, in one line, what is wrong and the fix.
(The `modeldeploy export` file cases are in test_export_files.py.)"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SCRIPTS = Path(sys.executable).parent


def modeldeploy(tmp: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in ("KUBECONFIG", "KUBERNETES_SERVICE_HOST")}
    return subprocess.run([str(SCRIPTS / "modeldeploy"), *args], env={**clean, "HOME": str(tmp), **env}, cwd=tmp,
                          capture_output=True, text=True, timeout=60, check=False)


def _one_line(result: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_crd_write_into_a_missing_directory(tmp_path: Path) -> None:
    missing = tmp_path / "nonexistent-dir"
    result = modeldeploy(tmp_path, "crd", "--write", str(missing))
    assert result.returncode == 2 and result.stdout == "", result
    assert _one_line(result) == (f"modeldeploy crd --write: {str(missing)!r} does not exist; create it first "
                                 f"(mkdir -p {missing}) (the file written is "
                                 "serving.modeldeploy.dev_modeldeployments.yaml)")
    a_file = tmp_path / "a-file"
    a_file.write_text("")
    refused = modeldeploy(tmp_path, "crd", "--write", str(a_file))
    assert refused.returncode == 2 and "is not a directory" in _one_line(refused), refused


def test_run_without_a_cluster_configuration_exits_at_once_saying_where_it_looked(tmp_path: Path) -> None:
    # kopf itself would log two tracebacks and retry every 60 s: the process ending (within the
    # subprocess timeout) with status 1 is the signal that it did not.
    result = modeldeploy(tmp_path, "run", "--standalone")
    assert result.returncode == 1, result
    assert _one_line(result) == (
        f"modeldeploy run: no cluster configuration found: kubeconfig from the default: {tmp_path}/.kube/config "
        "(no such file); not in a pod (KUBERNETES_SERVICE_HOST is unset); set KUBECONFIG=FILE (or run in a pod "
        "with a ServiceAccount)")
    listed = modeldeploy(tmp_path, "run", KUBECONFIG=f"{tmp_path}/a{os.pathsep}{tmp_path}/b")
    assert listed.returncode == 1, listed
    assert f"kubeconfig from $KUBECONFIG: {tmp_path}/a (no such file); {tmp_path}/b (no such file)" in \
        _one_line(listed)
    broken = tmp_path / "broken"
    broken.write_text("clusters: [")
    unusable = modeldeploy(tmp_path, "run", KUBECONFIG=str(broken))
    assert unusable.returncode == 1, unusable
    assert _one_line(unusable).startswith(f"modeldeploy run: the kubeconfig {broken} cannot be used: "), unusable


def test_commands_have_descriptions(tmp_path: Path) -> None:
    for command, words in (("crd", "Print the ModelDeployment CRD"), ("run", "Run the operator in the foreground"),
                           ("demo", "Start a real local Kubernetes control plane")):
        helped = modeldeploy(tmp_path, command, "--help")
        assert helped.returncode == 0 and words in " ".join(helped.stdout.split()), helped.stdout
