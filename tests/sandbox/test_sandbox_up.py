"""`modeldeploy sandbox up` as a user runs it: a process in the foreground that writes a kubeconfig, serves
kubectl and the operator until SIGTERM, then stops everything it started and leaves nothing behind."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from modeldeploy.kubeapi import KubeClient
from modeldeploy_sandbox.artifacts import ArtifactServer
from modeldeploy_sandbox.binaries import ensure_binaries
from modeldeploy_sandbox.cli import READY_LINE
from modeldeploy_sandbox.sandbox import API_VERSION, KIND, model_deployment
from modeldeploy_sandbox.waiting import wait_until

COMPONENTS = (b"etcd", b"kube-apiserver", b"kube-controller-manager", b"kube-scheduler", b"kopf")


def descendants(pid: int) -> dict[int, bytes]:
    """Every process below ``pid`` (children, grandchildren, ...) with its command line."""
    parents: dict[int, int] = {}
    commands: dict[int, bytes] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                commands[int(entry.name)] = (entry / "cmdline").read_bytes().replace(b"\0", b" ")
            except (OSError, IndexError, ValueError):
                continue
    found: dict[int, bytes] = {}
    frontier = [pid]
    while frontier:
        parent = frontier.pop()
        for child, its_parent in parents.items():
            if its_parent == parent and child not in found:
                found[child] = commands.get(child, b"")
                frontier.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


class Output:
    """The process's output lines, read by a thread as they come."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        assert process.stdout is not None
        self._thread = threading.Thread(target=self._read, args=(process.stdout,), daemon=True)
        self._thread.start()

    def _read(self, stream: object) -> None:
        for line in stream:  # type: ignore[attr-defined]
            self.lines.append(line.rstrip("\n"))

    def text(self) -> str:
        return "\n".join(self.lines)

    def value(self, prefix: str) -> str:
        return next(line[len(prefix):].strip() for line in self.lines if line.startswith(prefix))


@pytest.fixture()
def sandbox_up(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], Output, Path]]:
    kubeconfig = tmp_path / "kube" / "sandbox.kubeconfig"
    command = [str(Path(sys.executable).with_name("modeldeploy")), "sandbox", "up", "--operator",
               "--kubeconfig", str(kubeconfig)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               start_new_session=True)
    try:
        yield process, Output(process), kubeconfig
    finally:
        if process.poll() is None:  # the test failed before its SIGTERM: do not leak a cluster
            leftovers = descendants(process.pid)
            process.send_signal(signal.SIGTERM)  # it cleans up after itself (files too)
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                for pid in [process.pid, *leftovers]:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                process.wait(10)


@pytest.mark.timeout(240)
def test_sandbox_up_serves_kubectl_and_the_operator_until_sigterm_and_leaves_nothing(
        sandbox_up: tuple[subprocess.Popen[str], Output, Path]) -> None:
    process, output, kubeconfig = sandbox_up
    shm_before = set(Path("/dev/shm").glob("*etcd-*"))
    wait_until(lambda: any(line.startswith(READY_LINE) for line in output.lines) or process.poll() is not None,
               timeout=120, interval=0.2, message="the ready line")
    assert process.poll() is None, output.text()
    text = output.text()
    for component in ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler"):
        assert f"  {component} " in text, text
    assert "operator: cluster-wide, as the chart's ServiceAccount" in text and "resident memory:" in text, text
    assert stat.S_IMODE(kubeconfig.stat().st_mode) == 0o600
    directory = Path(output.value("logs and certificates:"))
    assert directory.is_dir()
    running = descendants(process.pid)
    for binary in COMPONENTS:
        assert any(binary in command for command in running.values()), (binary, running)

    # The printed kubectl command works: the real kubectl, the written kubeconfig.
    kubectl = str(ensure_binaries(build=False).path("kubectl"))
    nodes = subprocess.run([kubectl, "--kubeconfig", str(kubeconfig), "get", "nodes", "-o", "json"],
                           capture_output=True, text=True, timeout=60, check=True)
    ready = {n["metadata"]["name"]: next(c["status"] for c in n["status"]["conditions"] if c["type"] == "Ready")
             for n in json.loads(nodes.stdout)["items"]}
    assert ready == {"cpu-1": "True", "cpu-2": "True", "gpu-a100-1": "True", "gpu-l4-1": "True"}

    # The operator serves any namespace (cluster-wide) and the sandbox kubelet runs the model.
    kube = KubeClient.from_kubeconfig(kubeconfig, discover=True)
    with ArtifactServer() as artifacts:
        kube.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ml"}})
        kube.create({**model_deployment("resnet", artifacts.linear("resnet/1/model.onnx")),
                     "metadata": {"name": "resnet", "namespace": "ml"}})
        wait_until(lambda: ((kube.get(API_VERSION, KIND, "ml", "resnet") or {}).get("status") or {})
                   .get("phase") == "Healthy", timeout=60, message=f"a Healthy ModelDeployment\n{output.text()}")
    kube.close()
    running = descendants(process.pid)
    assert any(b"modelserver" in command for command in running.values()), running

    started = time.monotonic()
    process.send_signal(signal.SIGTERM)  # as `kill PID` or a service manager would stop it
    assert process.wait(60) == 0, output.text()
    took = time.monotonic() - started
    wait_until(lambda: not [pid for pid in running if alive(pid)], timeout=10,
               message=f"every process of the sandbox gone: {running}")
    assert not kubeconfig.exists() and not directory.exists()
    assert set(Path("/dev/shm").glob("*etcd-*")) <= shm_before  # etcd's data (in memory) removed too
    assert output.lines[-1].startswith("stopped: nothing of the sandbox is left running"), output.text()
    assert took < 30, took
