"""Fixtures for sandbox tests: the session's real control plane (``cluster``, ``sandbox``,
``bare_sandbox`` in tests/conftest.py) with real modelserver processes; none may outlive a module."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest


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
