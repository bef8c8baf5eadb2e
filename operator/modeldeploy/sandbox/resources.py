"""The API resources the emulator serves by default (discovery data + behaviour flags)."""

from __future__ import annotations

import dataclasses

from ..kubeapi import KindInfo

ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")


@dataclasses.dataclass(frozen=True)
class ResourceDecl:
    """One served resource: what discovery reports and how writes behave."""

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool = True
    subresources: tuple[str, ...] = ()
    shortnames: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        """The short resource id used everywhere in the sandbox: ``apps/v1/deployments``, ``v1/pods``."""
        return f"{self.api_version}/{self.plural}"

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def qualified(self) -> str:
        """The name the real API server uses in messages: ``deployments.apps``, ``pods``."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def has_status(self) -> bool:
        return "status" in self.subresources

    def path(self, namespace: str | None = None, name: str | None = None, subresource: str | None = None) -> str:
        # The same URL layout the operator's client uses: one definition of it.
        return KindInfo(self.group, self.version, self.plural, self.namespaced).path(namespace, name, subresource)


def _decl(api_version: str, plural: str, kind: str, **kwargs: object) -> ResourceDecl:
    group, _, version = api_version.rpartition("/")
    return ResourceDecl(group=group, version=version, plural=plural, kind=kind, **kwargs)  # type: ignore[arg-type]


DEFAULT_RESOURCES: tuple[ResourceDecl, ...] = (
    _decl("v1", "namespaces", "Namespace", namespaced=False, subresources=("status",), shortnames=("ns",)),
    _decl("v1", "nodes", "Node", namespaced=False, subresources=("status",), shortnames=("no",)),
    _decl("v1", "events", "Event", shortnames=("ev",)),
    _decl("v1", "pods", "Pod", subresources=("status",), shortnames=("po",)),
    _decl("v1", "services", "Service", subresources=("status",), shortnames=("svc",)),
    _decl("v1", "configmaps", "ConfigMap", shortnames=("cm",)),
    _decl("v1", "secrets", "Secret"),
    _decl("apps/v1", "deployments", "Deployment", subresources=("status", "scale"), shortnames=("deploy",)),
    _decl(
        "autoscaling/v2",
        "horizontalpodautoscalers",
        "HorizontalPodAutoscaler",
        subresources=("status",),
        shortnames=("hpa",),
    ),
    _decl("policy/v1", "poddisruptionbudgets", "PodDisruptionBudget", subresources=("status",), shortnames=("pdb",)),
    _decl("gateway.networking.k8s.io/v1", "httproutes", "HTTPRoute", subresources=("status",)),
    _decl("events.k8s.io/v1", "events", "Event", shortnames=("ev",)),
    _decl(
        "apiextensions.k8s.io/v1",
        "customresourcedefinitions",
        "CustomResourceDefinition",
        namespaced=False,
        subresources=("status",),
        shortnames=("crd", "crds"),
    ),
    _decl(
        "serving.modeldeploy.dev/v1alpha1",
        "modeldeployments",
        "ModelDeployment",
        subresources=("status",),
        shortnames=("mdep",),
    ),
)
