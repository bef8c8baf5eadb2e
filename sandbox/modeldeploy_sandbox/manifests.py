"""Putting manifests into a cluster as ``kubectl apply --server-side`` does, and the cluster-wide
objects every sandbox has: our CRD, the Gateway API CRDs and RuntimeClass ``nvidia``.

The Gateway API CRDs come from the ``sigs.k8s.io/gateway-api`` Go module in the module cache
(``go mod download`` fetches it through the module proxy); nothing of them is copied into the repo.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

from modeldeploy.kubeapi import KubeClient
from modeldeploy_sandbox.binaries import REPO

FIELD_MANAGER = "modeldeploy-sandbox"
GATEWAY_API_VERSION = "v1.6.3"  # standard channel
CRD_DIRECTORY = REPO / "crds"
GPU_RUNTIME_CLASS = "nvidia"


def load_documents(paths: Iterable[Path]) -> Iterator[dict[str, Any]]:
    for path in paths:
        for document in yaml.safe_load_all(path.read_text()):
            if document:
                yield document


def server_side_apply(kube: KubeClient, obj: Mapping[str, Any], manager: str = FIELD_MANAGER) -> dict[str, Any]:
    """PATCH application/apply-patch+yaml (``kubectl apply --server-side --force-conflicts``)."""
    meta = obj["metadata"]
    path = kube.kind_info(obj["apiVersion"], obj["kind"]).path(meta.get("namespace"), meta["name"])
    answer = kube.request("PATCH", path, body=json.loads(json.dumps(obj)), content_type="application/apply-patch+yaml",
                          query=[("fieldManager", manager), ("force", "true")])
    return dict(answer)


def wait_established(kube: KubeClient, names: Iterable[str], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    for name in names:
        while True:
            crd = kube.get("apiextensions.k8s.io/v1", "CustomResourceDefinition", None, name) or {}
            conditions = {c["type"]: c["status"] for c in (crd.get("status") or {}).get("conditions") or []}
            if conditions.get("Established") == "True":
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"CRD {name} not Established after {timeout}s: {conditions}")
            time.sleep(0.05)


def apply_all(kube: KubeClient, documents: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    applied = [server_side_apply(kube, document) for document in documents]
    crds = [a["metadata"]["name"] for a in applied if a.get("kind") == "CustomResourceDefinition"]
    wait_established(kube, crds)
    return applied


def gateway_api_directory(version: str = GATEWAY_API_VERSION) -> Path:
    """The Gateway API module's standard-channel CRD folder, downloaded into the Go module cache if needed."""
    result = subprocess.run(["go", "mod", "download", "-json", f"sigs.k8s.io/gateway-api@{version}"],
                            capture_output=True, text=True, check=False)
    try:
        info = json.loads(result.stdout)
    except ValueError:
        info = {}
    if result.returncode != 0 or "Dir" not in info:
        raise RuntimeError(f"go mod download sigs.k8s.io/gateway-api@{version} failed: "
                           f"{info.get('Error') or result.stderr.strip()}")
    return Path(info["Dir"]) / "config" / "crd" / "standard"


def gateway_api_documents(version: str = GATEWAY_API_VERSION) -> list[dict[str, Any]]:
    return list(load_documents(sorted(gateway_api_directory(version).glob("*.yaml"))))


def modeldeploy_crds(directory: Path = CRD_DIRECTORY) -> list[dict[str, Any]]:
    return list(load_documents(sorted(directory.glob("*.yaml"))))


def gpu_runtime_class() -> dict[str, Any]:
    """RuntimeClass ``nvidia`` as the GPU operator installs it, scheduling onto GPU nodes."""
    return {
        "apiVersion": "node.k8s.io/v1", "kind": "RuntimeClass", "metadata": {"name": GPU_RUNTIME_CLASS},
        "handler": GPU_RUNTIME_CLASS,
        "scheduling": {"nodeSelector": {"nvidia.com/gpu.present": "true"}},
    }


def install_cluster_objects(kube: KubeClient, *, gateway_api: bool = True) -> None:
    """Our CRD, the Gateway API CRDs (unless ``gateway_api=False``) and RuntimeClass ``nvidia``."""
    documents = modeldeploy_crds() + (gateway_api_documents() if gateway_api else [])
    apply_all(kube, [*documents, gpu_runtime_class()])
