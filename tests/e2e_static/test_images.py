"""The Dockerfiles: hadolint, the extras they install, what they copy, and the operator's entrypoint."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
OPERATOR_DOCKERFILE = ROOT / "operator" / "Dockerfile"
DOCKERFILES = [OPERATOR_DOCKERFILE, ROOT / "runtime-image" / "Dockerfile", ROOT / "runtime-image" / "Dockerfile.gpu"]
EXTRAS = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]


def _instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    text = re.sub(r"\\\n", " ", dockerfile.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            out.append((keyword.upper(), rest.strip()))
    return out


def test_hadolint_is_clean() -> None:
    hadolint = Path(sys.executable).parent / "hadolint"
    result = subprocess.run([str(hadolint), str(OPERATOR_DOCKERFILE)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda path: str(path.relative_to(ROOT)))
def test_pip_installs_existing_extras_only(dockerfile: Path) -> None:
    installs = re.findall(r'pip install --no-cache-dir "\.\[([a-z0-9,]+)\]"', dockerfile.read_text())
    assert len(installs) == 1, "one install of the package"
    assert set(installs[0].split(",")) <= set(EXTRAS)


def test_operator_image_installs_only_the_operator_extra() -> None:
    installs = re.findall(r'pip install --no-cache-dir "\.\[([a-z0-9,]+)\]"', OPERATOR_DOCKERFILE.read_text())
    assert installs == ["operator"]


def test_operator_image_shape() -> None:
    instructions = _instructions(OPERATOR_DOCKERFILE)
    base = [args for keyword, args in instructions if keyword == "FROM"]
    assert base == ["python:3.11.14-slim-bookworm"]
    assert ("USER", "65532:65532") in instructions
    env = " ".join(args for keyword, args in instructions if keyword == "ENV")
    assert "HOME=/tmp" in env and "PYTHONDONTWRITEBYTECODE=1" in env
    exposed = {port for keyword, args in instructions if keyword == "EXPOSE" for port in args.split()}
    assert exposed == {"8080", "8081"}
    copies = [args.split()[0] for keyword, args in instructions if keyword == "COPY"]
    assert copies == ["pyproject.toml", "operator/modeldeploy"]
    for source in copies:
        assert (ROOT / source).exists()
    ignore = (ROOT / "operator" / "Dockerfile.dockerignore").read_text().split()
    assert ignore[ignore.index("*") + 1:][:2] == ["!pyproject.toml", "!operator/modeldeploy"]


def _entrypoint() -> tuple[list[str], list[str]]:
    instructions = dict(_instructions(OPERATOR_DOCKERFILE))
    return json.loads(instructions["ENTRYPOINT"]), json.loads(instructions["CMD"])


def _run_entrypoint(tmp_path: Path, env: dict[str, str], args: list[str] | None = None) -> list[str]:
    """Run the image's ENTRYPOINT with a stub `kopf` that prints its arguments."""
    stub = tmp_path / "kopf"
    stub.write_text('#!/bin/sh\nfor arg in "$@"; do echo "$arg"; done\n')
    stub.chmod(0o755)
    entrypoint, cmd = _entrypoint()
    environment = {"PATH": f"{tmp_path}:/usr/bin:/bin", **env}
    result = subprocess.run([*entrypoint, *(cmd if args is None else args)], env=environment,
                            capture_output=True, text=True, check=True)
    return result.stdout.splitlines()


def test_entrypoint_runs_kopf_with_peering_priority_and_liveness(tmp_path: Path) -> None:
    argv = _run_entrypoint(tmp_path, {"POD_IP": "10.244.1.7"})
    assert argv == ["run", "-m", "modeldeploy.handlers", "--peering=modeldeploy",
                    f"--priority={(10 << 24) + (244 << 16) + (1 << 8) + 7}",
                    "--liveness=http://0.0.0.0:8081/healthz", "--all-namespaces"]


def test_entrypoint_takes_namespaces_and_overrides(tmp_path: Path) -> None:
    argv = _run_entrypoint(tmp_path, {"KOPF_PRIORITY": "42", "KOPF_PEERING": "other"},
                           ["--namespace=ml", "--namespace=risk"])
    assert argv[3:] == ["--peering=other", "--priority=42", "--liveness=http://0.0.0.0:8081/healthz",
                        "--namespace=ml", "--namespace=risk"]


def test_entrypoint_without_pod_ip_still_gets_a_priority(tmp_path: Path) -> None:
    priorities = {_run_entrypoint(tmp_path, {})[4] for _ in range(5)}
    assert all(re.fullmatch(r"--priority=\d+", p) for p in priorities)
    assert len(priorities) > 1  # $RANDOM: replicas without an IPv4 address still differ


def test_the_handlers_import_with_only_the_operator_extra() -> None:
    """The image has the base dependencies and the operator extra, nothing from runtime/export/dev."""
    absent = ["numpy", "onnx", "onnxruntime", "torch", "celpy", "jsonschema", "grpc", "tritonclient",
              "boto3", "modelserver", "kmock", "hypothesis", "helm_python", "kubernetes_validate", "lupa",
              "modeldeploy_sandbox"]
    code = f"""
import importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {absent!r}:
            raise ImportError("not in the operator image: " + name)
sys.meta_path.insert(0, Block())
import modeldeploy.handlers, modeldeploy.reconciler, modeldeploy.settings
print("ok")
"""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "operator")}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr[-2000:]


def test_operator_requirements_cover_what_the_handlers_import() -> None:
    names = {re.split(r"[<>=\[ ]", requirement)[0].lower() for requirement in EXTRAS["operator"]}
    assert {"kopf", "kubernetes", "prometheus-client"} <= names
