"""The API client's side of error reporting and of idempotent applies, on plain data."""

from __future__ import annotations

import pytest

from modeldeploy.kubeapi import Invalid, KubeApiError, NotFound, _error, is_subset
from modeldeploy.reporting import ChildWriteFailed, api_failure, reconcile_error, status_patch, writing
from modeldeploy.rollout.errors import ChildRef

INVALID = (b'{"kind":"Status","apiVersion":"v1","status":"Failure","message":"Deployment.apps \\"r-1\\" is invalid: '
           b'spec.template.spec.tolerations[0].operator: Invalid value: \\"x\\": value must be empty when `operator` '
           b'is \'Exists\'","reason":"Invalid","details":{"name":"r-1","group":"apps","kind":"Deployment","causes":'
           b'[{"reason":"FieldValueInvalid","message":"Invalid value","field":"spec.template.spec.tolerations[0]'
           b'.operator"}]},"code":422}')
GONE = b'{"kind":"Status","status":"Failure","message":"deployments.apps \\"r-1\\" not found","reason":"NotFound",' \
       b'"details":{"name":"r-1","group":"apps","kind":"deployments"},"code":404}'
NO_RESOURCE = b'{"kind":"Status","status":"Failure","message":"the server could not find the requested resource",' \
              b'"reason":"NotFound","details":{},"code":404}'


def resources(**values: object) -> dict[str, object]:
    return {"spec": {"containers": [{"name": "server", "resources": {"requests": values}}]}}


@pytest.mark.parametrize(("desired", "live"), [("0.5", "500m"), ("1024Mi", "1Gi"), (2, "2"), ("1000m", "1"),
                                               ("1e3", "1k")])
def test_quantities_of_resources_compare_by_value(desired: object, live: object) -> None:
    assert is_subset(resources(cpu=desired), resources(cpu=live))


def test_other_strings_and_different_quantities_still_differ() -> None:
    assert not is_subset(resources(cpu="1"), resources(cpu="2"))
    assert not is_subset(resources(cpu="lots"), resources(cpu="500m"))
    assert not is_subset({"metadata": {"labels": {"version": "1.0"}}}, {"metadata": {"labels": {"version": "1"}}})
    env = {"env": [{"name": "RATIO", "value": "0.5"}]}
    assert not is_subset(env, {"env": [{"name": "RATIO", "value": "500m"}]})


def test_hpa_targets_compare_by_value() -> None:
    def target(value: str) -> dict[str, object]:
        return {"pods": {"target": {"type": "AverageValue", "averageValue": value}}}

    assert is_subset(target("5000"), target("5k")) and not is_subset(target("5000"), target("6k"))


def test_a_404_tells_a_missing_kind_from_a_missing_object() -> None:
    page = _error(404, b"404 page not found\n")
    assert isinstance(page, NotFound) and page.kind_not_served and page.message == "404 page not found\n"
    assert isinstance(gone := _error(404, GONE), NotFound) and not gone.kind_not_served
    assert isinstance(unknown := _error(404, NO_RESOURCE), NotFound) and unknown.kind_not_served


def test_api_failure_keeps_the_apiservers_message_and_fields() -> None:
    error = _error(422, INVALID)
    assert isinstance(error, Invalid)
    child = ChildRef("apps/v1", "Deployment", "r-1")
    failure = api_failure(error, child)
    assert (failure.status, failure.reason, failure.child) == (422, "Invalid", child)
    assert failure.fields == ("spec.template.spec.tolerations[0].operator",)
    assert failure.message.startswith('Deployment.apps "r-1" is invalid: spec.template.spec.tolerations[0]')


def test_writing_names_the_child_of_an_api_error_and_lets_other_errors_through() -> None:
    with pytest.raises(ChildWriteFailed) as caught, writing("apps/v1", "Deployment", "r-1"):
        raise _error(422, INVALID)
    error = reconcile_error(caught.value)
    assert error.reason == "InvalidSpec" and error.stalled
    assert error.message.startswith("the API server refused Deployment r-1 (check spec.resources.tolerations): ")
    with pytest.raises(KeyError), writing("apps/v1", "Deployment", "r-1"):
        raise KeyError("replicas")


def test_reconcile_error_of_reads_and_of_bugs() -> None:
    assert reconcile_error(KubeApiError(0, "ConnectionError", "refused")).reason == "TransientError"
    bug = reconcile_error(KeyError("replicas"))
    assert bug.reason == "OperatorError" and bug.message.startswith("unexpected KeyError: 'replicas'; ")


def test_status_patch_nulls_what_disappeared_and_sends_only_what_changed() -> None:
    old = {"phase": "Healthy", "message": "serving", "canaryRevision": "r-2", "analysis": {"verdict": "Pass", "n": 1}}
    new = {"phase": "Failed", "message": "serving", "analysis": {"verdict": "Pass", "n": 2}}
    assert status_patch(old, new) == {"phase": "Failed", "canaryRevision": None, "analysis": {"n": 2}}


def test_empty_maps_and_lists_match_what_the_apiserver_stores_for_them() -> None:
    assert is_subset({"metadata": {"labels": {}}, "data": {}}, {"metadata": {"name": "x"}})
    assert is_subset({"metadata": {"labels": {}}}, {"metadata": {"labels": {"a": "1"}}})  # merging {} changes nothing
    assert is_subset({"spec": {"tolerations": []}}, {"spec": {}})
    assert not is_subset({"spec": {"tolerations": []}}, {"spec": {"tolerations": [{"key": "k"}]}})
    assert not is_subset({"spec": {"labels": {}}}, {"spec": {"labels": "x"}})
