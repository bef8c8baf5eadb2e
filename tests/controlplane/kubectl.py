"""The real kubectl, built with the control plane, run against it as the admin."""

from __future__ import annotations

import subprocess
from pathlib import Path

from modeldeploy.api.types import GROUP, PLURAL
from modeldeploy_sandbox.controlplane import ControlPlane

ROOT = Path(__file__).resolve().parents[2]
CRD_DIRECTORIES = (ROOT / "crds", ROOT / "charts" / "modeldeploy" / "crds")
CRD_NAME = f"{PLURAL}.{GROUP}"


def kubectl(plane: ControlPlane, *args: str, stdin: str | None = None,
            timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    """Run kubectl; its discovery cache stays in the control plane's directory, not in ~/.kube."""
    argv = [str(plane.binaries.path("kubectl")), f"--kubeconfig={plane.kubeconfig}",
            f"--cache-dir={plane.directory / 'kubectl-cache'}", *args]
    return subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=timeout, check=False)


def apply_crds(plane: ControlPlane, directory: Path) -> str:
    """`kubectl apply -f <directory>` as a user installs the CRDs, then wait until they are Established."""
    applied = kubectl(plane, "apply", "-f", str(directory))
    assert applied.returncode == 0, f"kubectl apply -f {directory} was refused:\n{applied.stderr}"
    waited = kubectl(plane, "wait", "--for=condition=Established", "--timeout=30s", f"crd/{CRD_NAME}")
    assert waited.returncode == 0, waited.stderr
    return applied.stdout
