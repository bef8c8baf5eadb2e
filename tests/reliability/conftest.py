"""Fixtures of the reliability campaign: the operator may meet no 403 in any scenario, and a fault
proxy in front of the session's real apiserver. The long scenarios are marked ``reliability``
(``make test-reliability``); ``make test`` runs the others."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from modeldeploy_sandbox.cluster import LocalCluster
from modeldeploy_sandbox.faults import FaultProxy

from ..operator.audit import forbidden, mark


@pytest.fixture()
def restarting_authorizer() -> list[tuple[int, int]]:
    """Audit-log ranges (byte offsets) in which a restarted kube-apiserver had not yet loaded the
    RBAC objects: its 403s there are its own, not the chart's RBAC (tests append the ranges)."""
    return []


@pytest.fixture(autouse=True)
def no_forbidden(request: pytest.FixtureRequest, restarting_authorizer: list[tuple[int, int]]) -> Iterator[None]:
    """The operator runs with the chart's RBAC: no request of it may be refused with 403 (in every
    test on the cluster; the others start none)."""
    if "cluster" not in request.fixturenames:
        yield
        return
    cluster: LocalCluster = request.getfixturevalue("cluster")
    since = mark(cluster)
    yield
    refused = forbidden(cluster, since)
    tolerated: set[int] = set()  # positions in `refused`: the audit log is in order, a window is one slice
    for start, end in restarting_authorizer:
        after_start, after_end = len(forbidden(cluster, start)), len(forbidden(cluster, end))
        tolerated.update(range(len(refused) - after_start, len(refused) - after_end))
    refused = [r for i, r in enumerate(refused) if i not in tolerated]
    assert refused == []


@pytest.fixture()
def proxy(cluster: LocalCluster) -> Iterator[FaultProxy]:
    with FaultProxy(cluster.control_plane.server, cluster.control_plane.ca_path, seed=9) as running:
        yield running
