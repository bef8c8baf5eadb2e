"""Errors a reconcile cannot get past, on plain data: their names, messages, status and back-off."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from modeldeploy.api import ModelDeploymentStatus
from modeldeploy.api.status import Condition
from modeldeploy.rollout.errors import (
    MAX_MESSAGE,
    ApiFailure,
    ChildRef,
    ReconcileError,
    backoff_seconds,
    classify_api_failure,
    failed_status,
    spec_sources,
    unexpected,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)
DEPLOYMENT = ChildRef("apps/v1", "Deployment", "resnet-abcde")
HTTPROUTE = ChildRef("gateway.networking.k8s.io/v1", "HTTPRoute", "resnet")
AFFINITY = ("spec.template.spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution"
            ".nodeSelectorTerms[0].matchExpressions[0].values")


def condition(status: ModelDeploymentStatus, kind: str) -> Condition | None:
    return next((c for c in status.conditions if c.type == kind), None)


def test_a_refused_child_is_invalid_spec_naming_the_child_and_the_spec_field() -> None:
    failure = ApiFailure(422, "Invalid", f'Deployment.apps "resnet-abcde" is invalid: {AFFINITY}: Required value',
                         DEPLOYMENT, (AFFINITY,))
    error = classify_api_failure(failure)
    assert error == ReconcileError("InvalidSpec", "the API server refused Deployment resnet-abcde "
                                   "(check spec.resources.affinity): " + failure.message, stalled=True)


def test_spec_sources_map_child_fields_back_to_the_spec_once_each() -> None:
    fields = ("spec.template.spec.containers[0].resources.requests[cpu]",
              "spec.template.spec.initContainers[0].resources.requests[cpu]", "spec.template.spec.tolerations[0]")
    assert spec_sources(DEPLOYMENT, fields) == ["spec.resources", "spec.resources.tolerations"]
    hpa = ChildRef("autoscaling/v2", "HorizontalPodAutoscaler", "resnet")
    assert spec_sources(hpa, ("spec.behavior.scaleUp.policies[0].value",)) == ["spec.autoscaling.behavior"]
    assert spec_sources(hpa, ("spec.template.spec.affinity",)) == []  # not an HPA field


def test_a_kind_the_api_does_not_serve_names_the_crds_to_install() -> None:
    error = classify_api_failure(ApiFailure(404, "NotFound", "404 page not found\n", HTTPROUTE, kind_not_served=True))
    assert error == ReconcileError(
        "CRDNotInstalled", "the Gateway API CRDs (HTTPRoute gateway.networking.k8s.io/v1) are not installed: install "
        "Gateway API (standard channel) or set spec.rollout.traffic.router: service; the API server answered 404: "
        "404 page not found", stalled=True)
    other = classify_api_failure(ApiFailure(404, "NotFound", "the server could not find the requested resource",
                                            ChildRef("example.com/v1", "Widget", "w"), kind_not_served=True))
    assert other.reason == "CRDNotInstalled"
    assert other.message.startswith("the CRD of Widget (example.com/v1) is not installed: install it;")


@pytest.mark.parametrize(("failure", "reason", "stalled", "start"), [
    (ApiFailure(403, "Forbidden", 'deployments.apps is forbidden: User "x" cannot create', DEPLOYMENT),
     "Forbidden", True, "the API server forbade the operator to write Deployment resnet-abcde: deployments.apps"),
    (ApiFailure(403, "Forbidden", 'pods is forbidden: User "x" cannot list resource "pods"'), "Forbidden", True,
     "the API server forbade the operator a request: pods is forbidden"),
    (ApiFailure(422, "Invalid", "status.phase: Unsupported value"), "OperatorError", True,
     "the API server refused the operator's request (422 Invalid): status.phase"),
    (ApiFailure(500, "InternalError", "etcdserver: request timed out", DEPLOYMENT), "TransientError", False,
     "writing Deployment resnet-abcde failed (500 InternalError): etcdserver"),
    (ApiFailure(409, "Conflict", "the object has been modified", DEPLOYMENT), "TransientError", False,
     "writing Deployment resnet-abcde failed (409 Conflict)"),
    (ApiFailure(404, "NotFound", 'deployments.apps "resnet-abcde" not found', DEPLOYMENT), "TransientError", False,
     "writing Deployment resnet-abcde failed (404 NotFound)"),  # deleted meanwhile: the next round re-plans
    (ApiFailure(503, "ServiceUnavailable", "the server is currently unable to handle the request"),
     "TransientError", False, "an API request failed (503 ServiceUnavailable)"),
    (ApiFailure(0, "ConnectionError", "GET https://10.0.0.1/api: Connection refused"), "TransientError", False,
     "the API server could not be reached or did not answer: GET https://10.0.0.1/api"),
])
def test_each_api_failure_is_named(failure: ApiFailure, reason: str, stalled: bool, start: str) -> None:
    error = classify_api_failure(failure)
    assert (error.reason, error.stalled) == (reason, stalled)
    assert error.message.startswith(start), error.message


def test_an_unexpected_exception_is_an_operator_error_and_long_messages_are_cut() -> None:
    error = unexpected("KeyError", "'replicas'")
    assert error.reason == "OperatorError" and error.stalled
    assert error.message.startswith("unexpected KeyError: 'replicas'; the operator retries with back-off")
    long = unexpected("ValueError", "x" * 5000)
    assert len(long.message) == MAX_MESSAGE and long.message.endswith("…")


def test_back_off_grows_and_transient_errors_retry_at_least_every_30s() -> None:
    stalled = ReconcileError("InvalidSpec", "m", stalled=True)
    transient = ReconcileError("TransientError", "m", stalled=False)
    assert [backoff_seconds(n, stalled) for n in range(10)] == [1, 2, 5, 10, 30, 60, 120, 300, 300, 300]
    assert [backoff_seconds(n, transient) for n in range(7)] == [1, 2, 5, 10, 30, 30, 30]


def test_a_stalled_error_on_an_empty_status_gives_a_phase_conditions_and_one_event() -> None:
    error = ReconcileError("InvalidSpec", "the API server refused Deployment x", stalled=True)
    status, events = failed_status(ModelDeploymentStatus(), error, generation=3, now=T0)
    assert status.phase == "Failed" and status.message == error.message and status.observed_generation == 3
    assert {c.type: (c.status, c.reason) for c in status.conditions} == {
        "Ready": ("False", "InvalidSpec"), "Reconciling": ("False", "Idle"), "Stalled": ("True", "InvalidSpec"),
        "Available": ("False", "NoReadyStable"), "RolloutProgressing": ("False", "InvalidSpec")}
    assert [(e.type, e.reason, e.message) for e in events] == [("Warning", "InvalidSpec", error.message)]

    again, events = failed_status(status, error, generation=3, now=T0 + timedelta(seconds=30))
    assert again == status and events == []  # the same error: nothing to write, nothing to say
    other = ReconcileError("InvalidSpec", "the API server refused HorizontalPodAutoscaler x", stalled=True)
    changed, events = failed_status(status, other, generation=3, now=T0 + timedelta(seconds=60))
    assert [e.message for e in events] == [other.message]
    stalled = condition(changed, "Stalled")
    assert stalled is not None and stalled.last_transition_time == "2026-01-01T00:00:00Z"  # still True since T0


def test_a_transient_error_keeps_the_phase_and_says_reconciling_not_ready() -> None:
    healthy = ModelDeploymentStatus(phase="Healthy", message="revision r is serving", stable_revision="r",
                                    ready_replicas=2, observed_generation=2, conditions=[
                                        Condition(type="Ready", status="True", reason="Serving"),
                                        Condition(type="Reconciling", status="False", reason="Idle")])
    error = ReconcileError("TransientError", "an API request failed (500 InternalError): boom", stalled=False)
    status, events = failed_status(healthy, error, generation=2, now=T0)
    assert status.phase == "Healthy" and status.stable_revision == "r" and status.observed_generation == 2
    assert status.message == error.message
    # kstatus: Reconciling=True is InProgress, and Ready never stays True beside it; the model still serves.
    assert {c.type: (c.status, c.reason) for c in status.conditions} == {
        "Ready": ("False", "TransientError"), "Reconciling": ("True", "TransientError"),
        "Stalled": ("False", "Idle"), "Available": ("True", "StableServing"),
        "RolloutProgressing": ("False", "TransientError")}
    assert all(c.observed_generation == 2 for c in status.conditions)
    assert [e.reason for e in events] == ["TransientError"]


def test_a_transient_error_on_a_new_generation_never_calls_it_healthy() -> None:
    healthy = ModelDeploymentStatus(phase="Healthy", stable_revision="r", ready_replicas=2, observed_generation=2)
    error = ReconcileError("TransientError", "writing Deployment r2 failed (500 InternalError): boom", stalled=False)
    status, _ = failed_status(healthy, error, generation=3, now=T0)
    assert status.phase == "Progressing" and status.observed_generation == 3 and status.stable_revision == "r"
    assert {c.type: c.status for c in status.conditions}["Reconciling"] == "True"


def test_a_transient_error_on_an_empty_status_is_pending_and_reconciling() -> None:
    error = ReconcileError("TransientError", "the API server could not be reached", stalled=False)
    status, _ = failed_status(ModelDeploymentStatus(), error, generation=1, now=T0)
    assert status.phase == "Pending"
    assert {c.type: c.status for c in status.conditions} == {
        "Ready": "False", "Reconciling": "True", "Stalled": "False", "Available": "False",
        "RolloutProgressing": "False"}


def test_a_transient_error_mid_rollout_keeps_the_rollout_progressing() -> None:
    error = ReconcileError("TransientError", "boom", stalled=False)
    status, _ = failed_status(ModelDeploymentStatus(phase="Progressing"), error, generation=1, now=T0)
    assert status.phase == "Progressing"
    progressing = condition(status, "RolloutProgressing")
    assert progressing is not None and progressing.status == "True"
