"""Transient API errors and bugs, on the real apiserver: the reconciler in this process, as the chart's
ServiceAccount, with faults injected at the client (the one thing a real apiserver will not do on cue).

Transient errors (a 500, a 409 on a child, an unreachable apiserver) show as Reconciling=True with the
last error; a bug (any other exception) as Stalled=True/OperatorError. Both: an Event, the error
metric, back-off, and no exception escaping the daemon.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from prometheus_client import generate_latest

from modeldeploy import handlers
from modeldeploy import reconciler as reconciler_module
from modeldeploy.kubeapi import Conflict, KubeApiError, KubeClient
from modeldeploy.reconciler import Context, Reconciler
from modeldeploy.rollout import Observed, Plan
from modeldeploy.rollout.errors import backoff_seconds
from modeldeploy_sandbox.cluster import LocalCluster
from modeldeploy_sandbox.sandbox import Sandbox, model_deployment

from .reading import condition, metric, printed_row, warnings

NAME = "resnet"
Fault = Callable[[], Exception]


class FaultyKube(KubeClient):
    """The operator's client, failing the requests whose method and path match a fault."""

    faults: dict[tuple[str, str], Fault]

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        for (fault_method, fragment), fault in getattr(self, "faults", {}).items():
            if method == fault_method and fragment in path:
                raise fault()
        return super().request(method, path, **kwargs)


@pytest.fixture()
def kube(bare_sandbox: Sandbox, cluster: LocalCluster) -> Iterator[FaultyKube]:
    """A client as the chart's ServiceAccount for the sandbox's namespace; no 403 allowed."""
    refused_before = len(cluster.forbidden())
    values = {"operator": {"logFormat": "plain"}, "watchNamespaces": [bare_sandbox.namespace]}
    client = FaultyKube.from_kubeconfig(cluster.operator_kubeconfig(values))
    assert isinstance(client, FaultyKube)
    client.faults = {}
    yield client
    client.close()
    assert cluster.forbidden()[refused_before:] == []


def _metrics(context: Context) -> str:
    return generate_latest(context.metrics.registry).decode()


@pytest.mark.parametrize(("fault", "says"), [
    (lambda: KubeApiError(500, "InternalError", "etcdserver: request timed out"),
     "writing HorizontalPodAutoscaler resnet failed (500 InternalError): etcdserver: request timed out"),
    (lambda: Conflict(409, "Conflict", 'Operation cannot be fulfilled on horizontalpodautoscalers "resnet"'),
     "writing HorizontalPodAutoscaler resnet failed (409 Conflict): Operation cannot be fulfilled"),
], ids=["500", "409"])
def test_a_transient_error_on_a_child_is_reconciling_with_the_last_error_then_clears(
        bare_sandbox: Sandbox, kube: FaultyKube, fault: Fault, says: str) -> None:
    sb = bare_sandbox
    sb.apply(model_deployment(NAME, sb.artifacts.linear()))
    kube.faults = {("POST", "/horizontalpodautoscalers"): fault}
    context = Context(kube=kube)

    outcome = Reconciler(context).run_once(sb.namespace, NAME)

    assert outcome.result == "error" and outcome.error is not None
    assert outcome.error.reason == "TransientError" and not outcome.error.stalled
    status = sb.status(NAME)
    reconciling = condition(status, "Reconciling")
    assert reconciling["status"] == "True" and reconciling["reason"] == "TransientError"
    assert reconciling["message"].startswith(says), reconciling
    assert status["phase"] == "Pending" and condition(status, "Stalled")["status"] == "False"
    assert condition(status, "Ready")["status"] == "False"
    assert warnings(sb, NAME, "TransientError") == [reconciling["message"]]
    assert printed_row(sb.kube, sb.namespace, NAME)["Phase"] == "Pending"
    assert printed_row(sb.kube, sb.namespace, NAME)["Ready"] == "False"
    assert metric(_metrics(context), "modeldeploy_reconciles_total", result="error") == 1
    assert [backoff_seconds(attempt, outcome.error) for attempt in range(6)] == [1, 2, 5, 10, 30, 30]

    kube.faults = {}
    assert Reconciler(context).run_once(sb.namespace, NAME).result == "ok"
    reconciling = condition(sb.status(NAME), "Reconciling")
    assert reconciling["reason"] == "RolloutInProgress", reconciling  # the error is gone from status


def test_an_unreachable_apiserver_is_a_transient_error_not_an_exception(bare_sandbox: Sandbox) -> None:
    context = Context(kube=KubeClient(host="http://127.0.0.1:9", timeout=2.0))  # discard port: refused
    outcome = Reconciler(context).run_once(bare_sandbox.namespace, NAME)
    assert outcome.result == "error" and outcome.error is not None
    assert outcome.error.reason == "TransientError" and not outcome.error.stalled
    assert outcome.error.message.startswith("the API server could not be reached or did not answer: GET http://127.0.0.1:9/apis/")


def test_a_bug_in_a_reconcile_stalls_with_an_event_and_the_daemon_backs_off(
        bare_sandbox: Sandbox, kube: FaultyKube, monkeypatch: pytest.MonkeyPatch) -> None:
    sb = bare_sandbox
    sb.apply(model_deployment(NAME, sb.artifacts.linear()))
    planned: list[float] = []

    def broken_plan(observed: Observed) -> Plan:
        planned.append(time.monotonic())
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(reconciler_module, "plan", broken_plan)
    context = Context(kube=kube)
    handlers.use_context(context)

    class Stopped:
        """kopf's DaemonStopped, as the loop reads it: true once three reconciles ran."""

        def __bool__(self) -> bool:
            return len(planned) >= 3

    daemon: Any = handlers.run_model_deployment  # kopf types it with every kwarg kopf passes
    try:
        asyncio.run(asyncio.wait_for(daemon(namespace=sb.namespace, name=NAME, stopped=Stopped()), timeout=30))
    finally:
        handlers.use_context(None)

    gaps = [later - earlier for earlier, later in itertools.pairwise(planned)]
    assert gaps[0] >= 0.9 and gaps[1] >= 1.9, f"the daemon retried without back-off: {gaps}"
    status = sb.status(NAME)
    stalled = condition(status, "Stalled")
    assert stalled["status"] == "True" and stalled["reason"] == "OperatorError"
    assert stalled["message"].startswith("unexpected ZeroDivisionError: division by zero; "), stalled
    assert status["phase"] == "Failed"
    assert warnings(sb, NAME, "OperatorError") == [stalled["message"]]  # one Event for three failures
    assert metric(_metrics(context), "modeldeploy_reconciles_total", result="error") == 3
