"""Fixtures of the e2e tests: a real cluster (kind, set up by e2e/run.sh), the operator's own API
client, per-test namespaces, ModelDeployments adapted from samples/, and a load generator.

These tests live outside `testpaths` (tests/), so the normal `pytest` run never collects them;
`pytest --collect-only e2e` works without a cluster (nothing here touches it before a test runs).
"""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from modeldeploy.kubeapi import KubeApiError, KubeClient

from .helpers import Load, Model


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "e2e: needs the kind cluster e2e/run.sh sets up")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if Path(str(item.fspath)).is_relative_to(Path(__file__).parent):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def models() -> dict[str, Model]:
    path = os.environ.get("E2E_MODELS")
    if not path:
        pytest.skip("e2e tests run through e2e/run.sh (E2E_MODELS is not set)")
    raw = json.loads(Path(path).read_text())
    return {version: Model(**entry) for version, entry in raw.items()}


@pytest.fixture(scope="session")
def kube(models: dict[str, Model]) -> Iterator[KubeClient]:
    client = KubeClient.from_environment(timeout=60.0)
    yield client
    client.close()


@pytest.fixture(scope="session")
def operator_namespace() -> str:
    return os.environ.get("E2E_OPERATOR_NAMESPACE", "modeldeploy-system")


@pytest.fixture
def namespace(kube: KubeClient) -> Iterator[str]:
    name = f"e2e-{uuid.uuid4().hex[:8]}"
    kube.request("POST", "/api/v1/namespaces", body={"apiVersion": "v1", "kind": "Namespace",
                                                    "metadata": {"name": name}})
    yield name
    with contextlib.suppress(KubeApiError):  # already going away
        kube.request("DELETE", f"/api/v1/namespaces/{name}")


@pytest.fixture
def load_factory(kube: KubeClient) -> Callable[[str, str], Load]:
    def make(namespace: str, name: str) -> Load:
        return Load(kube, namespace, name)
    return make
