"""Labels, selectors and owner references shared by every child object."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY = "modeldeploy"
NAME_LABEL = "modeldeploy.dev/name"
REVISION_LABEL = "modeldeploy.dev/revision"
ROLE_LABEL = "modeldeploy.dev/role"
SPEC_HASH_ANNOTATION = "modeldeploy.dev/spec-hash"
# Set by the service router on the pods of the revisions that get traffic while several do (a
# Service selects by equality only, so "revision in (a, b)" is written on the pods themselves).
TRAFFIC_LABEL = "modeldeploy.dev/traffic"
SERVING = "serving"


@dataclass(frozen=True)
class Owner:
    """The ModelDeployment that owns a child (namespace: where its children live)."""

    api_version: str
    kind: str
    name: str
    namespace: str
    uid: str


def child_labels(name: str, revision: str | None, role: str | None) -> dict[str, str]:
    """Labels of a child: managed-by and name always, revision and role when given."""
    labels = {MANAGED_BY_LABEL: MANAGED_BY, NAME_LABEL: name}
    if revision is not None:
        labels[REVISION_LABEL] = revision
    if role is not None:
        labels[ROLE_LABEL] = role
    return labels


def selector(name: str, revision: str | None = None) -> dict[str, str]:
    """Pods of a ModelDeployment, or of one of its revisions. Never the role: it changes on promotion."""
    labels = {NAME_LABEL: name}
    if revision is not None:
        labels[REVISION_LABEL] = revision
    return labels


def owner_reference(owner: Owner) -> dict[str, Any]:
    """A controller reference: children are garbage-collected with the ModelDeployment."""
    return {
        "apiVersion": owner.api_version,
        "kind": owner.kind,
        "name": owner.name,
        "uid": owner.uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def object_meta(name: str, namespace: str, owner: Owner, labels: dict[str, str],
                annotations: dict[str, str] | None = None) -> dict[str, Any]:
    """metadata of a child, controlled by `owner`."""
    meta: dict[str, Any] = {"name": name, "namespace": namespace, "labels": labels}
    if annotations:
        meta["annotations"] = annotations
    meta["ownerReferences"] = [owner_reference(owner)]
    return meta
