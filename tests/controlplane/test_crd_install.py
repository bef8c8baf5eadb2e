"""Our CRD on the real API server: `kubectl apply -f crds/` (and the chart's copy) installs it, and the
defaults the API server fills in are the operator's (pydantic's) defaults."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from modeldeploy.api import API_VERSION, KIND, ModelDeploymentSpec
from modeldeploy.api.crd import custom_resource_definition
from modeldeploy.api.types import GROUP
from modeldeploy.kubeapi import KubeClient
from modeldeploy_sandbox.binaries import selected_version
from modeldeploy_sandbox.controlplane import ControlPlane

from . import dry_run
from .invalid_objects import DIGEST
from .kubectl import CRD_DIRECTORIES, CRD_NAME, apply_crds, kubectl

pytestmark = pytest.mark.compat

MODEL = {"uri": "https://models.example/m.onnx", "digest": DIGEST}


def test_the_control_plane_runs_the_selected_release(admin: KubeClient) -> None:
    """The compatibility job (MODELDEPLOY_KUBE_VERSION=oldest) really runs on the oldest release."""
    assert admin.request("GET", "/version")["gitVersion"] == selected_version()


@pytest.mark.parametrize("directory", CRD_DIRECTORIES, ids=["crds", "chart-crds"])
def test_kubectl_apply_installs_the_crd(control_plane: ControlPlane, admin: KubeClient, directory: Path) -> None:
    output = apply_crds(control_plane, directory)
    assert f"customresourcedefinition.apiextensions.k8s.io/{CRD_NAME}" in output
    crd = admin.get("apiextensions.k8s.io/v1", "CustomResourceDefinition", None, CRD_NAME)
    assert crd is not None
    conditions = {c["type"]: c["status"] for c in crd["status"]["conditions"]}
    assert conditions["Established"] == "True" and conditions["NamesAccepted"] == "True"
    # Stored as generated: the API server dropped or rewrote nothing of the schema.
    assert crd["spec"]["versions"] == custom_resource_definition()["spec"]["versions"]


@pytest.mark.parametrize("directory", CRD_DIRECTORIES, ids=["crds", "chart-crds"])
def test_a_first_install_is_accepted_whatever_the_session_installed(control_plane: ControlPlane,
                                                                     directory: Path) -> None:
    """Another fixture may have installed the CRD already, so that `kubectl apply` was an update or no change
    at all: create the same schema afresh, as a new user's cluster does, under another group and dry-run."""
    (path,) = [path for path in directory.glob("*.yaml") if path.name.startswith(GROUP)]
    crd = yaml.safe_load(path.read_text())
    crd["spec"]["group"] = "first-install.test"
    crd["metadata"]["name"] = f"{crd['spec']['names']['plural']}.first-install.test"
    created = kubectl(control_plane, "create", "--dry-run=server", "-f", "-", stdin=yaml.safe_dump(crd))
    assert created.returncode == 0, created.stderr


def test_kubectl_explain_reads_the_descriptions(control_plane: ControlPlane, modeldeploy_crd: str) -> None:
    # The API server publishes a new CRD's OpenAPI a few seconds after it is Established.
    deadline = time.monotonic() + 30
    while (explained := kubectl(control_plane, "explain", "mdep.spec.rollout.analysis.checks.max")).returncode:
        assert time.monotonic() < deadline, explained.stderr
        time.sleep(0.5)
    assert "a duration (250ms)" in explained.stdout


SPECS: dict[str, dict[str, Any]] = {
    "minimal": {"model": MODEL},
    # Every optional object present but empty: their own defaults are filled in too.
    "empty-optional-objects": {
        "model": MODEL,
        "runtime": {"batching": {}},
        "resources": {"gpu": {}, "tolerations": [{}]},
        "autoscaling": {"metrics": [{"type": "queueTime", "targetAverageMicroseconds": 500}]},
        "rollout": {"steps": [{"weight": 20}], "traffic": {}, "analysis": {"provider": {}},
                    "gates": {"smokeTest": {"configMapRef": {"name": "golden"}}}},
    },
}


@pytest.mark.parametrize("spec", SPECS.values(), ids=SPECS.keys())
def test_apiserver_defaults_are_the_pydantic_defaults(admin: KubeClient, dry_run_namespace: str,
                                                      spec: dict[str, Any]) -> None:
    obj = {"apiVersion": API_VERSION, "kind": KIND,
           "metadata": {"name": "defaults", "namespace": dry_run_namespace}, "spec": spec}
    defaulted = dry_run.create(admin, obj)["spec"]
    assert defaulted == ModelDeploymentSpec.model_validate(spec).to_dict()
