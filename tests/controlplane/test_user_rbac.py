"""docs/install.md's "RBAC for users", applied to the real apiserver and asked with SubjectAccessReviews:
a namespace editor (the built-in `edit` role, which the author role aggregates into) may apply
ModelDeployments but not patch their status; only the release managers' group may, where it is bound."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from modeldeploy.kubeapi import KubeClient
from modeldeploy_sandbox import manifests
from modeldeploy_sandbox.cluster import LocalCluster
from modeldeploy_sandbox.waiting import wait_until

INSTALL_DOC = Path(__file__).resolve().parents[2] / "docs" / "install.md"
GROUP = "serving.modeldeploy.dev"


def documented_rbac() -> list[dict[str, Any]]:
    section = INSTALL_DOC.read_text().split("### RBAC for users", 1)[1].split("\n### ", 1)[0]
    (block,) = re.findall(r"```yaml\n(.*?)```", section, re.DOTALL)
    return [document for document in yaml.safe_load_all(block) if document]


@pytest.fixture()
def applied(cluster: LocalCluster, admin: KubeClient) -> Iterator[list[dict[str, Any]]]:
    documents = documented_rbac()
    namespaces = {d["metadata"]["namespace"] for d in documents if d["metadata"].get("namespace")}
    for namespace in namespaces:
        cluster.create_namespace(namespace)
    try:
        manifests.apply_all(admin, documents)
        yield documents
    finally:
        for document in documents:
            if not document["metadata"].get("namespace"):
                admin.delete(document["apiVersion"], document["kind"], None, document["metadata"]["name"])
        for namespace in namespaces:
            cluster.delete_namespace(namespace)


def allowed(admin: KubeClient, namespace: str, verb: str, resource: str, *, user: str, groups: list[str],
            subresource: str = "") -> bool:
    review = {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
              "spec": {"user": user, "groups": ["system:authenticated", *groups],
                       "resourceAttributes": {"namespace": namespace, "verb": verb, "group": GROUP,
                                              "resource": resource, "subresource": subresource}}}
    answer = admin.request("POST", "/apis/authorization.k8s.io/v1/subjectaccessreviews", body=review)
    return bool(answer["status"].get("allowed"))


def test_authors_apply_models_and_only_release_managers_patch_status(
        admin: KubeClient, applied: list[dict[str, Any]]) -> None:
    (binding,) = [d for d in applied if d["kind"] == "RoleBinding"]
    namespace = binding["metadata"]["namespace"]
    (managers,) = [s["name"] for s in binding["subjects"] if s["kind"] == "Group"]
    # A namespace editor: the built-in `edit` ClusterRole, bound in the namespace.
    admin.create({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                  "metadata": {"name": "editors", "namespace": namespace},
                  "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "edit"},
                  "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "editors"}]})

    def editor_may(verb: str, subresource: str = "") -> bool:
        return allowed(admin, namespace, verb, "modeldeployments", user="alice", groups=["editors"],
                       subresource=subresource)

    # The aggregation controller copies the author rules into `edit` shortly after they appear.
    wait_until(lambda: editor_may("create"), timeout=30, message="`edit` aggregated the author role")
    assert editor_may("patch") and editor_may("delete")
    assert not editor_may("patch", "status") and not editor_may("update", "status")

    def manager_may(namespace_asked: str) -> bool:
        return allowed(admin, namespace_asked, "patch", "modeldeployments", user="bob", groups=[managers],
                       subresource="status")

    assert manager_may(namespace)
    assert not manager_may("default")  # bound per namespace, not cluster-wide
