"""Fixtures of the real-API-server tests: our CRD installed with kubectl, and a namespace to try objects in."""

from __future__ import annotations

import pytest

from modeldeploy.kubeapi import KubeClient
from modeldeploy_sandbox.controlplane import ControlPlane

from .kubectl import CRD_DIRECTORIES, apply_crds

NAMESPACE = "controlplane-tests"


@pytest.fixture(scope="session")
def modeldeploy_crd(control_plane: ControlPlane) -> str:
    """`kubectl apply -f crds/` on the session's control plane; kubectl's output."""
    return apply_crds(control_plane, CRD_DIRECTORIES[0])


@pytest.fixture(scope="session")
def dry_run_namespace(admin: KubeClient, modeldeploy_crd: str) -> str:
    """Where objects are tried with dryRun=All (a dry run still needs the namespace to exist)."""
    admin.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}})
    return NAMESPACE
