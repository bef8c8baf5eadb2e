"""The gatewayAPI router on a cluster without the Gateway API CRDs: status says what is missing.

A second real control plane, started without the Gateway API CRDs, for this module only.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from modeldeploy_sandbox.cluster import LocalCluster
from modeldeploy_sandbox.sandbox import Sandbox, model_deployment
from modeldeploy_sandbox.waiting import wait_until

from .reading import condition, printed_row, stalled_with, warnings

NAME = "resnet"
GATEWAY = {"router": "gatewayAPI", "gateway": {"parentRefs": [{"name": "public"}]}}


@pytest.fixture(scope="module")
def bare_cluster() -> Iterator[LocalCluster]:
    with LocalCluster(gateway_api=False) as cluster:
        yield cluster


@pytest.fixture()
def bare_cluster_sandbox(bare_cluster: LocalCluster) -> Iterator[Sandbox]:
    refused_before = len(bare_cluster.forbidden())
    with Sandbox(bare_cluster) as sb, sb.run_operator():
        yield sb
    assert bare_cluster.forbidden()[refused_before:] == []


def test_gateway_api_router_without_its_crds_stalls_naming_them(bare_cluster_sandbox: Sandbox) -> None:
    sb = bare_cluster_sandbox
    sb.apply(model_deployment(NAME, sb.artifacts.linear(), rollout={"strategy": "immediate", "traffic": GATEWAY}))

    status = sb.wait_for(NAME, stalled_with("CRDNotInstalled"), 60, "Stalled/CRDNotInstalled")
    message = condition(status, "Stalled")["message"]
    assert message == ("the Gateway API CRDs (HTTPRoute gateway.networking.k8s.io/v1) are not installed: "
                       "install Gateway API (standard channel) or set spec.rollout.traffic.router: service; "
                       "the API server answered 404: 404 page not found"), message
    assert status["phase"] == "Failed" and status["message"] == message
    # The Warning is sent after the status write that records it.
    assert wait_until(lambda: warnings(sb, NAME, "CRDNotInstalled"), timeout=15, message="the Warning") == [message]
    row = printed_row(sb.kube, sb.namespace, NAME)
    assert row["Phase"] == "Failed" and row["Ready"] == "False", row
