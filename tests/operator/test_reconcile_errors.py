"""Transient API errors and bugs, on the real apiserver: transient errors through the fault proxy in
front of it, met by the operator process; a bug by the reconciler in this process (a broken planner),
as the chart's ServiceAccount.

Transient errors (a 500, a 409 on a child, an unreachable apiserver) show as Reconciling=True with the
last error; a bug (any other exception) as Stalled=True/OperatorError. Both: an Event, the error
metric, back-off, and no exception escaping the daemon.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator

import pytest
from prometheus_client import generate_latest

from modeldeploy import reconciler as reconciler_module
from modeldeploy.controller import Controller
from modeldeploy.kubeapi import KubeClient
from modeldeploy.reconciler import Context, Reconciler
from modeldeploy.rollout import Observed, Plan
from modeldeploy_sandbox.cluster import LocalCluster
from modeldeploy_sandbox.faults import FaultProxy, Refuse, conflict, server_error
from modeldeploy_sandbox.sandbox import Sandbox, model_deployment
from modeldeploy_sandbox.waiting import wait_until

from .reading import condition, metric, printed_row, warnings

NAME = "resnet"


@pytest.fixture()
def kube(bare_sandbox: Sandbox, cluster: LocalCluster) -> Iterator[KubeClient]:
    """A client as the chart's ServiceAccount for the sandbox's namespace; no 403 allowed."""
    refused_before = len(cluster.forbidden())
    values = {"operator": {"logFormat": "plain"}, "watchNamespaces": [bare_sandbox.namespace]}
    client = KubeClient.from_kubeconfig(cluster.operator_kubeconfig(values))
    yield client
    client.close()
    assert cluster.forbidden()[refused_before:] == []


def _metrics(context: Context) -> str:
    return generate_latest(context.metrics.registry).decode()


@pytest.mark.parametrize(("fault", "says"), [
    (server_error("etcdserver: request timed out"),
     "writing HorizontalPodAutoscaler resnet failed (500 InternalError): etcdserver: request timed out"),
    (conflict('horizontalpodautoscalers "resnet"'),
     "writing HorizontalPodAutoscaler resnet failed (409 Conflict): Operation cannot be fulfilled"),
], ids=["500", "409"])
def test_a_transient_error_on_a_child_is_reconciling_with_the_last_error_then_clears(
        bare_sandbox: Sandbox, cluster: LocalCluster, fault: Refuse, says: str) -> None:
    """The operator process, through the fault proxy in front of the real apiserver, meets the error."""
    sb = bare_sandbox
    refused_before = len(cluster.forbidden())
    with FaultProxy(cluster.control_plane.server, cluster.control_plane.ca_path) as proxy:
        rule = proxy.add(fault, method="POST", path=r"/horizontalpodautoscalers$", times=None)
        with sb.run_operator(server=proxy.url) as operator:
            sb.apply(model_deployment(NAME, sb.artifacts.linear()))
            status = sb.wait_for(NAME, lambda s: condition(s, "Reconciling").get("reason") == "TransientError",
                                 60, "Reconciling=True/TransientError")
            reconciling = condition(status, "Reconciling")
            assert reconciling["status"] == "True" and reconciling["message"].startswith(says), reconciling
            assert status["phase"] == "Pending" and condition(status, "Stalled")["status"] == "False"
            assert condition(status, "Ready")["status"] == "False"
            row = printed_row(sb.kube, sb.namespace, NAME)
            assert (row["Phase"], row["Ready"]) == ("Pending", "False"), row
            wait_until(lambda: rule.hits >= 2, timeout=30, message="a retry after the back-off")
            assert metric(operator.metrics(), "modeldeploy_reconciles_total", result="error") >= 2
            assert warnings(sb, NAME, "TransientError") == [reconciling["message"]]  # one Event, not one a retry

            proxy.clear()  # the apiserver recovers: the next retry gets through and the error leaves status
            status = sb.wait_for_phase(NAME, "Healthy", timeout=60)
            assert condition(status, "Reconciling")["status"] == "False"
    assert cluster.forbidden()[refused_before:] == []


def test_an_unreachable_apiserver_is_a_transient_error_not_an_exception(bare_sandbox: Sandbox) -> None:
    context = Context(kube=KubeClient(host="http://127.0.0.1:9", timeout=2.0))  # discard port: refused
    outcome = Reconciler(context).run_once(bare_sandbox.namespace, NAME)
    assert outcome.result == "error" and outcome.error is not None
    assert outcome.error.reason == "TransientError" and not outcome.error.stalled
    assert outcome.error.message.startswith("the API server could not be reached or did not answer: GET http://127.0.0.1:9/apis/")


def test_a_bug_in_a_reconcile_stalls_with_an_event_and_the_controller_backs_off(
        bare_sandbox: Sandbox, kube: KubeClient, monkeypatch: pytest.MonkeyPatch) -> None:
    sb = bare_sandbox
    sb.apply(model_deployment(NAME, sb.artifacts.linear()))
    planned: list[float] = []

    def broken_plan(observed: Observed) -> Plan:
        planned.append(time.monotonic())
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(reconciler_module, "plan", broken_plan)
    context = Context(kube=kube)
    # The operator's engine as handlers run it: one worker, the key served until three reconciles ran.
    controller = Controller(context, workers=1, resync_seconds=300)
    controller.start()
    try:
        controller.serve((sb.namespace, NAME), stopped=lambda: len(planned) >= 3)
        wait_until(lambda: len(planned) >= 3, timeout=30, message="three reconciles")
    finally:
        controller.stop()

    gaps = [later - earlier for earlier, later in itertools.pairwise(planned)]
    assert gaps[0] >= 0.9 and gaps[1] >= 1.9, f"the controller retried without back-off: {gaps}"
    status = sb.status(NAME)
    stalled = condition(status, "Stalled")
    assert stalled["status"] == "True" and stalled["reason"] == "OperatorError"
    assert stalled["message"].startswith("unexpected ZeroDivisionError: division by zero; "), stalled
    assert status["phase"] == "Failed"
    assert warnings(sb, NAME, "OperatorError") == [stalled["message"]]  # one Event for three failures
    assert metric(_metrics(context), "modeldeploy_reconciles_total", result="error") == 3
