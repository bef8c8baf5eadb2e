"""The chart's part of spec.access: the operator's own-token Role, token reviewers, the peers' env."""

from __future__ import annotations

import json

from .rendering import by_kind, operator_container, render


def test_the_operator_may_request_tokens_of_its_own_service_account_only() -> None:
    objects = render()
    (role,) = [r for r in by_kind(objects, "Role") if r["metadata"]["name"].endswith("-caller-token")]
    (binding,) = [b for b in by_kind(objects, "RoleBinding") if b["metadata"]["name"] == role["metadata"]["name"]]
    (account,) = by_kind(objects, "ServiceAccount")
    name, namespace = account["metadata"]["name"], account["metadata"]["namespace"]
    assert role["metadata"]["namespace"] == namespace
    assert role["rules"] == [{"apiGroups": [""], "resources": ["serviceaccounts/token"], "resourceNames": [name],
                              "verbs": ["create"]}]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": name, "namespace": namespace}]


def test_token_reviewers_are_bound_to_auth_delegator() -> None:
    reviewers = [{"namespace": "ml", "serviceAccount": "resnet-server"}]
    bindings = [b for b in by_kind(render({"accessControl": {"tokenReviewers": reviewers}}), "ClusterRoleBinding")
                if b["roleRef"]["name"] == "system:auth-delegator"]
    assert [b["subjects"] for b in bindings] == [[{"kind": "ServiceAccount", "name": "resnet-server",
                                                   "namespace": "ml"}]]
    assert not [b for b in by_kind(render(), "ClusterRoleBinding") if b["roleRef"]["name"] == "system:auth-delegator"]


def test_the_operator_knows_its_identity_and_prometheus_for_network_policies() -> None:
    env = {e["name"]: e.get("value") for e in operator_container(render())["env"]}
    (account,) = by_kind(render(), "ServiceAccount")
    assert env["MODELDEPLOY_OPERATOR_NAMESPACE"] == account["metadata"]["namespace"]
    assert env["MODELDEPLOY_OPERATOR_SERVICE_ACCOUNT"] == account["metadata"]["name"]
    (deployment,) = by_kind(render(), "Deployment")
    labels = json.loads(env["MODELDEPLOY_OPERATOR_POD_LABELS"])
    assert labels.items() <= deployment["spec"]["template"]["metadata"]["labels"].items() and labels
    assert json.loads(env["MODELDEPLOY_PROMETHEUS_NAMESPACE_SELECTOR"]) == {
        "matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}
    assert json.loads(env["MODELDEPLOY_PROMETHEUS_POD_SELECTOR"]) == {}
