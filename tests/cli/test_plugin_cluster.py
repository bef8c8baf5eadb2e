"""`kubectl modeldeploy` through the real kubectl against the real control plane (issue 13, item 1).

The plugin is found on PATH next to this interpreter, as kubectl finds plugins; kubectl hands it every
argument after `modeldeploy`. No operator runs: the objects' status is written by the test (as the
operator would) so that what the plugin prints is known. The objects are shared by the module's tests.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from modeldeploy.api import API_VERSION, KIND
from modeldeploy.kubeapi import KubeClient
from modeldeploy_sandbox.cluster import LocalCluster

DIGEST = "sha256:" + "ab" * 32
REJECTION = "2 failed intervals in a row: successRate 80.00% < min 99.00% (stable 100.00%, n=400/410, p=1e-30)"


def _model_deployment(namespace: str, name: str) -> dict[str, Any]:
    return {"apiVersion": API_VERSION, "kind": KIND, "metadata": {"name": name, "namespace": namespace},
            "spec": {"model": {"uri": f"https://models.example/{name}/1/model.onnx", "digest": DIGEST},
                     "rollout": {"strategy": "canary", "steps": [{"weight": 20, "pause": "10s"}]}}}


@pytest.fixture(scope="module")
def namespaces(cluster: LocalCluster) -> Iterator[tuple[str, str]]:
    names = (f"plugin-a-{os.getpid()}", f"plugin-b-{os.getpid()}")
    for name in names:
        cluster.create_namespace(name)
    try:
        yield names
    finally:
        for name in names:
            cluster.delete_namespace(name, until_gone=False)


@pytest.fixture(scope="module")
def objects(admin: KubeClient, namespaces: tuple[str, str]) -> tuple[str, str]:
    first, second = namespaces
    admin.create(_model_deployment(first, "resnet"))
    admin.merge_patch(API_VERSION, KIND, first, "resnet", {"status": {
        "phase": "RolledBack", "message": f"revision resnet-b2 rolled back: {REJECTION}",
        "stableRevision": "resnet-a1", "replicas": 1, "readyReplicas": 1,
        "rejectedRevisions": [{"revision": "resnet-b2", "specHash": "b2", "reason": "AnalysisFailed",
                               "message": REJECTION, "at": "2026-01-01T00:01:02Z"}],
        "analysis": {"verdict": "Fail", "consecutiveFailures": 2, "lastRun": "2026-01-01T00:01:01.5Z",
                     "checks": [{"name": "successRate", "canary": 0.8, "stable": 1.0, "canarySamples": 400,
                                 "stableSamples": 410, "verdict": "Fail"}]}}}, subresource="status")
    admin.create(_model_deployment(second, "bert"))
    admin.merge_patch(API_VERSION, KIND, second, "bert", {"status": {
        "phase": "Healthy", "message": "revision bert-c3 is serving", "stableRevision": "bert-c3",
        "replicas": 2, "readyReplicas": 2}}, subresource="status")
    return namespaces


@pytest.fixture(scope="module")
def kubeconfig(cluster: LocalCluster, namespaces: tuple[str, str], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The admin kubeconfig with the current context's namespace set to the first namespace, and a
    second context `second` for the other one."""
    document = yaml.safe_load(cluster.control_plane.kubeconfig.read_text())
    current = next(c for c in document["contexts"] if c["name"] == document["current-context"])
    current["context"]["namespace"] = namespaces[0]
    document["contexts"].append({"name": "second", "context": {**current["context"], "namespace": namespaces[1]}})
    path = tmp_path_factory.mktemp("plugin") / "kubeconfig"
    path.write_text(yaml.safe_dump(document))
    return path


def kubectl(cluster: LocalCluster, *args: str, kubeconfig: Path | None) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if key not in ("KUBECONFIG", "KUBERNETES_SERVICE_HOST")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["HOME"] = str(Path(cluster.control_plane.directory) / "plugin-home")  # no ~/.kube/config to fall back on
    if kubeconfig is not None:
        env["KUBECONFIG"] = str(kubeconfig)
    return subprocess.run([str(cluster.control_plane.binaries.path("kubectl")), *args], env=env,
                          capture_output=True, text=True, timeout=60, check=False)


def test_the_documented_syntax_works(cluster: LocalCluster, objects: tuple[str, str], kubeconfig: Path) -> None:
    first, _ = objects
    for args in (["modeldeploy", "status", "resnet", "-n", first],  # as README shows it
                 ["modeldeploy", "-n", first, "status", "resnet"],
                 ["modeldeploy", "status", "resnet"],  # the context's namespace
                 ["modeldeploy", "status", "--kubeconfig", str(kubeconfig), "resnet"]):
        shown = kubectl(cluster, *args, kubeconfig=kubeconfig)
        assert shown.returncode == 0, (args, shown)
        assert shown.stdout.startswith(f"Name:       {first}/resnet\nPhase:      RolledBack  revision resnet-b2 "
                                       f"rolled back: {REJECTION}\n"), shown.stdout
        assert shown.stdout.count(REJECTION) == 1, shown.stdout  # the rollback reason once
        assert "successRate  80.00%  100.00%  400/410  Fail" in shown.stdout, shown.stdout
        assert "last run 2026-01-01T00:01:01Z" in shown.stdout and "Pods:       1/1 pod ready" in shown.stdout


def test_context_and_kubeconfig_flags(cluster: LocalCluster, objects: tuple[str, str], kubeconfig: Path) -> None:
    first, second = objects
    by_context = kubectl(cluster, "modeldeploy", "status", "bert", "--context", "second", kubeconfig=kubeconfig)
    assert by_context.returncode == 0 and by_context.stdout.startswith(f"Name:       {second}/bert\n"), by_context
    # No KUBECONFIG in the environment: the flag alone finds the cluster.
    by_flag = kubectl(cluster, "modeldeploy", "--kubeconfig", str(kubeconfig), "--context", "second", "list",
                      kubeconfig=None)
    assert by_flag.returncode == 0, by_flag
    assert [line.split()[:3] for line in by_flag.stdout.splitlines()] == [
        ["NAME", "PHASE", "STABLE"], ["bert", "Healthy", "bert-c3"]]
    # Without any configuration: one line naming where it looked.
    nowhere = kubectl(cluster, "modeldeploy", "status", "resnet", kubeconfig=None)
    assert nowhere.returncode == 1 and len(nowhere.stderr.splitlines()) == 1, nowhere
    assert "no cluster configuration found: kubeconfig from the default:" in nowhere.stderr, nowhere
    missing = kubectl(cluster, "modeldeploy", "status", "bert", kubeconfig=kubeconfig)  # bert is not in `first`
    assert missing.returncode == 1 and f"modeldeployment {first}/bert not found" in missing.stderr, missing


def test_all_namespaces_lists_a_summary_line_each(cluster: LocalCluster, objects: tuple[str, str],
                                                  kubeconfig: Path) -> None:
    first, second = objects
    for flag in ("-A", "--all-namespaces"):
        for command in ("status", "list"):
            listed = kubectl(cluster, "modeldeploy", command, flag, kubeconfig=kubeconfig)
            assert listed.returncode == 0, listed
            rows = {tuple(line.split()[:2]): line.split() for line in listed.stdout.splitlines()}
            assert rows[("NAMESPACE", "NAME")][2:] == ["PHASE", "STABLE", "CANARY", "WEIGHT", "READY", "AGE",
                                                       "MESSAGE"]
            assert rows[(first, "resnet")][2:6] == ["RolledBack", "resnet-a1", "-", "-"], listed.stdout
            assert rows[(second, "bert")][2:7] == ["Healthy", "bert-c3", "-", "-", "2/2"], listed.stdout
    empty = kubectl(cluster, "modeldeploy", "list", "-n", "kube-public", kubeconfig=kubeconfig)
    assert empty.returncode == 0 and empty.stderr == "no ModelDeployments in namespace kube-public\n", empty
    # Without -A: the context's namespace only.
    own = kubectl(cluster, "modeldeploy", "status", kubeconfig=kubeconfig)
    assert own.returncode == 0 and [line.split()[0] for line in own.stdout.splitlines()] == ["NAME", "resnet"], own


def test_an_intent_with_the_namespace_after_the_name(cluster: LocalCluster, admin: KubeClient,
                                                     objects: tuple[str, str], kubeconfig: Path) -> None:
    _, second = objects
    paused = kubectl(cluster, "modeldeploy", "pause", "bert", "-n", second, kubeconfig=kubeconfig)
    assert paused.returncode == 0 and paused.stdout == f"modeldeployment {second}/bert: pause requested\n", paused
    intent = (admin.get(API_VERSION, KIND, second, "bert") or {})["status"]["intent"]
    assert intent["action"] == "pause", intent
