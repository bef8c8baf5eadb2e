"""Least-privilege RBAC: exactly what the operator code and kopf call, nothing else.

Where each rule comes from (checked against the code of modeldeploy and of kopf 1.45):

* modeldeployments get/list/watch/patch: kopf lists+watches them and merge-patches its finalizer
  and `modeldeploy.dev/*` annotations; the reconciler GETs them (reconciler.reconcile).
* modeldeployments/status patch: the reconciler merge-patches status (resourceVersion-guarded).
  Nothing GETs or PUTs the subresource (reads go to the main resource; kopf keeps its state in
  annotations, not status), so neither get nor update is granted.
* modeldeployments/finalizers update: children set blockOwnerDeletion in their ownerReferences, which
  OwnerReferencesPermissionEnforcement allows only to who may update the owner's finalizers (the
  real-control-plane tests run the operator with this RBAC and that plugin on).
* deployments get/list/watch/create/patch/delete: KubeClient.apply (GET, POST, merge PATCH),
  observe (list), _delete_revision (DELETE), kopf's on.event watch.
* services/hpas/pdbs/httproutes get/list/watch/create/patch: apply and the routers; kopf's on.event
  watches (a deleted child wakes its owner at once). services delete: _delete_revision; the endpoint
  (Service or HTTPRoute), HPA and PDB are deleted when nothing serves (the first revision was rejected). The garbage
  collector removes the children of a deleted ModelDeployment (their ownerReferences), not the operator.
* pods get/list/watch/patch: observe() lists the pods of a ModelDeployment (failure classification,
  targets); the service router labels the serving revisions' pods (modeldeploy.dev/traffic).
* configmaps get: smoke-test golden inputs (gates.smokeTest.configMapRef).
* networkpolicies get/list/watch/create/patch/delete: the NetworkPolicy of spec.access (access_policy.py:
  applied, or deleted when spec.access is unset).
* serviceaccounts/token create on the operator's own ServiceAccount only (a Role of its own, the one
  rule with resourceNames): the gates' token for models with access.requireToken (caller_token.py).
* events get/create: KubeClient.create_event (core/v1); kopf posts core/v1 events too (never events.k8s.io).
  A restarted operator GETs the Events it kept in status.recentEvents, to send the ones a crash lost.
* kopf peering get/list/watch/patch: kopf watches the peering object and merge-patches its keep-alive;
  it never creates one (the chart does), so no `create`.
* customresourcedefinitions get/list/watch: kopf's resource observer.
* with --namespace (watchNamespaces) the chart sets MODELDEPLOY_NAMESPACED, which turns kopf's scanning
  off (no namespace or CRD watch; see handlers.configure). The one cluster-scoped right is patch on
  modeldeployments: the namespace controller deletes the Role with the namespace, and kopf must still
  release its finalizer then (tests/sandbox: deleting a watched namespace completes).
"""

from __future__ import annotations

from typing import Any

from .rendering import FULL_VALUES, by_kind, operator_container, render

Rule = tuple[str, str, frozenset[str]]

NAMESPACED_RULES: set[Rule] = {
    ("serving.modeldeploy.dev", "modeldeployments", frozenset({"get", "list", "watch", "patch"})),
    ("serving.modeldeploy.dev", "modeldeployments/status", frozenset({"patch"})),
    ("serving.modeldeploy.dev", "modeldeployments/finalizers", frozenset({"update"})),
    ("apps", "deployments", frozenset({"get", "list", "watch", "create", "patch", "delete"})),
    ("", "services", frozenset({"get", "list", "watch", "create", "patch", "delete"})),
    ("autoscaling", "horizontalpodautoscalers", frozenset({"get", "list", "watch", "create", "patch", "delete"})),
    ("policy", "poddisruptionbudgets", frozenset({"get", "list", "watch", "create", "patch", "delete"})),
    ("gateway.networking.k8s.io", "httproutes", frozenset({"get", "list", "watch", "create", "patch", "delete"})),
    ("", "pods", frozenset({"get", "list", "watch", "patch"})),
    ("", "configmaps", frozenset({"get"})),
    ("", "events", frozenset({"get", "create"})),
    ("networking.k8s.io", "networkpolicies", frozenset({"get", "list", "watch", "create", "patch", "delete"})),
}
PEERING_VERBS = frozenset({"get", "list", "watch", "patch"})
CRD_RULE: Rule = ("apiextensions.k8s.io", "customresourcedefinitions", frozenset({"get", "list", "watch"}))


def flatten(role: dict[str, Any]) -> set[Rule]:
    rules: set[Rule] = set()
    for rule in role["rules"]:
        assert set(rule) == {"apiGroups", "resources", "verbs"}, "no resourceNames/nonResourceURLs needed"
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                rules.add((group, resource, frozenset(rule["verbs"])))
    return rules


def _caller_token(obj: dict[str, Any]) -> bool:
    """The operator's Role (and binding) for a token of its own ServiceAccount (tests/chart/test_access.py)."""
    return str(obj["metadata"]["name"]).endswith("-caller-token")


def _roles(objects: list[dict[str, Any]], kind: str = "Role") -> list[dict[str, Any]]:
    return [obj for obj in by_kind(objects, kind) if not _caller_token(obj)]


def _all_roles(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return by_kind(objects, "ClusterRole") + _roles(objects)


def test_cluster_wide_rules_are_exactly_what_the_code_calls() -> None:
    (role,) = by_kind(render(), "ClusterRole")
    assert flatten(role) == NAMESPACED_RULES | {
        ("kopf.dev", "clusterkopfpeerings", PEERING_VERBS), CRD_RULE}
    assert _roles(render()) == []


def test_watch_namespaces_mode_uses_roles_per_namespace_and_one_cluster_right() -> None:
    objects = render(FULL_VALUES)
    # No namespace or CRD watch in this mode (kopf's scanning is off); only finalizer release cluster-wide.
    (finalizers,) = by_kind(objects, "ClusterRole")
    assert flatten(finalizers) == {("serving.modeldeploy.dev", "modeldeployments", frozenset({"patch"}))}
    (cluster_binding,) = by_kind(objects, "ClusterRoleBinding")
    assert cluster_binding["roleRef"]["name"] == finalizers["metadata"]["name"]
    env = {e["name"]: e.get("value") for e in operator_container(objects)["env"]}
    assert env["MODELDEPLOY_NAMESPACED"] == "true"
    assert "MODELDEPLOY_NAMESPACED" not in {e["name"] for e in operator_container(render())["env"]}
    roles = {role["metadata"]["namespace"]: role for role in _roles(objects)}
    assert set(roles) == {"ml", "risk"}
    for role in roles.values():
        assert flatten(role) == NAMESPACED_RULES | {("kopf.dev", "kopfpeerings", PEERING_VERBS)}
    bindings = {binding["metadata"]["namespace"]: binding for binding in _roles(objects, "RoleBinding")}
    assert set(bindings) == {"ml", "risk"}
    for namespace, binding in bindings.items():
        assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                      "name": roles[namespace]["metadata"]["name"]}
        assert binding["subjects"][0]["namespace"] == "modeldeploy-system"


def test_no_wildcards_no_secrets_no_escalation() -> None:
    for values in (None, FULL_VALUES):
        for role in _all_roles(render(values)):
            for group, resource, verbs in flatten(role):
                assert "*" not in (group, resource) and "*" not in verbs
                assert resource != "secrets"
                assert not verbs & {"escalate", "bind", "impersonate", "deletecollection"}
                assert not resource.startswith(("roles", "clusterroles", "rolebindings", "clusterrolebindings"))


def test_every_kind_the_api_client_knows_is_covered() -> None:
    """modeldeploy.kubeapi.KINDS is the only way the operator reaches the API: each kind needs a rule."""
    from modeldeploy.kubeapi import KINDS

    (role,) = by_kind(render(), "ClusterRole")
    granted = {(group, resource): verbs for group, resource, verbs in flatten(role)}
    read_only = {("v1", "ConfigMap"): {"get"}, ("v1", "Pod"): {"get", "list"}, ("v1", "Event"): {"create"},
                 ("serving.modeldeploy.dev/v1alpha1", "ModelDeployment"): {"get", "patch"}}
    for (api_version, kind), info in KINDS.items():
        verbs = granted.get((info.group, info.plural))
        assert verbs is not None, f"{kind} has no RBAC rule"
        # Anything else is a child: applied (get, create, patch).
        assert read_only.get((api_version, kind), {"get", "create", "patch"}) <= verbs, kind


def test_rbac_can_be_turned_off() -> None:
    objects = render({"rbac": {"create": False}, "serviceAccount": {"create": False, "name": "mine"}})
    assert _all_roles(objects) == []
    assert by_kind(objects, "ServiceAccount") == []
    (deployment,) = by_kind(objects, "Deployment")
    assert deployment["spec"]["template"]["spec"]["serviceAccountName"] == "mine"
