"""Fixtures for tests against the Kubernetes API emulator (each test gets a fresh one)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from modeldeploy.kubeapi import KubeClient
from modeldeploy.sandbox.emulator_server import EmulatorHandle, running_emulator


@pytest.fixture()
def emulator() -> Iterator[EmulatorHandle]:
    """A running emulator: ``emulator.url``, sync accessors, fault injection, request counts."""
    with running_emulator() as handle:
        yield handle


@pytest.fixture()
def kube(emulator: EmulatorHandle) -> Iterator[KubeClient]:
    """The operator's API client pointed at the emulator."""
    client = KubeClient(emulator.url)
    yield client
    client.close()
