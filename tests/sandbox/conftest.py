"""Fixtures for sandbox tests: real modelserver processes on 127.0.0.x; none may outlive a test."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from modeldeploy.sandbox.cluster import Sandbox
from modeldeploy.sandbox.emulator_server import EmulatorHandle, running_emulator


def modelserver_children() -> list[int]:
    """Live (unreaped: zombies count too) child processes of this test process running modelserver."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        state, ppid = stat.rsplit(")", 1)[1].split()[:2]
        if int(ppid) == os.getpid() and (b"modelserver" in cmdline or state == "Z"):
            found.append(int(entry.name))
    return found


@pytest.fixture(autouse=True, scope="module")
def no_leaked_processes() -> Iterator[None]:
    """Checked per module: module-scoped fixtures keep their pods across a module's tests."""
    yield
    assert modelserver_children() == [], "sandbox tests leaked modelserver processes"


@pytest.fixture()
def emulator() -> Iterator[EmulatorHandle]:
    with running_emulator() as handle:
        yield handle


@pytest.fixture()
def sandbox() -> Iterator[Sandbox]:
    """Emulator + kubelet + artifact server, with the real operator running."""
    with Sandbox() as sb, sb.run_operator():
        yield sb
