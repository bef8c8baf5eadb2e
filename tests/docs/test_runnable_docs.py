"""Every shell block of README.md and docs/*.md marked runnable runs, as written, on the real control plane.

The block runs in bash (``-e -o pipefail``) from the repository root with the admin kubeconfig, the
kubectl built beside the control plane and this venv's ``kubectl-modeldeploy`` and ``modeldeploy`` on
PATH. A documented command that fails, or prints a traceback, fails the test. No operator runs: the
samples' model URIs are internet addresses, and test traffic only ever goes to loopback, so the blocks
exercise the API server (schema, CEL, status subresource), kubectl and the plugin, not a rollout.
Namespaces a block creates are deleted afterwards.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from modeldeploy_sandbox.cluster import LocalCluster

from .runnable import PAGES, ROOT, Block, blocks, markers

ALL_BLOCKS = [block for page in PAGES for block in blocks(page)]


def _namespaces(cluster: LocalCluster) -> set[str]:
    return {item["metadata"]["name"] for item in cluster.admin.list("v1", "Namespace", None)}


@pytest.fixture
def clean_namespaces(cluster: LocalCluster) -> Iterator[None]:
    before = _namespaces(cluster)
    yield
    for namespace in sorted(_namespaces(cluster) - before):
        cluster.delete_namespace(namespace)


def _environment(cluster: LocalCluster, home: Path) -> dict[str, str]:
    kubectl_dir = cluster.control_plane.binaries.path("kubectl").parent
    venv_bin = Path(sys.executable).parent
    return {"PATH": f"{kubectl_dir}:{venv_bin}:/usr/local/bin:/usr/bin:/bin",
            "KUBECONFIG": str(cluster.control_plane.kubeconfig), "HOME": str(home), "LANG": "C.UTF-8",
            "NO_COLOR": "1"}


def _run(script: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", "-e", "-o", "pipefail", "-c", script], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=180)


def _needs_script(block: Block) -> str:
    """kubectl commands that apply ``block.needs``, creating their namespaces first."""
    lines = []
    for path in block.needs:
        for document in yaml.safe_load_all((ROOT / path).read_text()):
            namespace = (document or {}).get("metadata", {}).get("namespace")
            if namespace:
                lines.append(f"kubectl create namespace {namespace} --dry-run=client -o yaml | kubectl apply -f -")
        lines.append(f"kubectl apply -f {path}")
    return "\n".join(lines)


def test_the_docs_have_runnable_blocks_and_every_marker_has_one() -> None:
    for page in PAGES:
        assert markers(page) == len(blocks(page)), f"{page.name}: a runnable marker not followed by a ``` block"
    assert all(block.language == "sh" for block in ALL_BLOCKS)
    pages = {block.page for block in ALL_BLOCKS}
    assert {"README.md", "docs/troubleshooting.md"} <= pages
    commands = "\n".join(block.script for block in ALL_BLOCKS)
    for expected in ("kubectl modeldeploy status", "kubectl apply -f samples/", "kubectl get mdep"):
        assert expected in commands


@pytest.mark.parametrize("block", ALL_BLOCKS, ids=lambda block: f"{block.page}:{block.line}")
def test_runnable_block(block: Block, cluster: LocalCluster, clean_namespaces: None, tmp_path: Path) -> None:
    env = _environment(cluster, tmp_path)
    # A reader runs the block on a cluster without them: one another test left behind is removed first.
    for namespace in sorted(set(re.findall(r"create namespace ([a-z0-9-]+)", block.script)) & _namespaces(cluster)):
        cluster.delete_namespace(namespace)
    if block.needs:
        setup = _run(_needs_script(block), env)
        assert setup.returncode == 0, f"applying {block.needs} failed:\n{setup.stderr}"
    result = _run(block.script, env)
    output = f"$ {block.page}:{block.line}\n{block.script}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
    assert result.returncode == 0, output
    assert "Traceback" not in result.stdout + result.stderr, output


def test_a_failing_documented_command_fails_the_block(cluster: LocalCluster, tmp_path: Path) -> None:
    """The runner itself: a wrong command in the middle of a block is a failure, not a skipped line."""
    env = _environment(cluster, tmp_path)
    result = _run("kubectl get nodes\nkubectl get mdep no-such-object -n default\nkubectl version --client", env)
    assert result.returncode != 0
    assert "no-such-object" in result.stderr
    assert "Client Version" not in result.stdout  # the block stopped at the failing command
