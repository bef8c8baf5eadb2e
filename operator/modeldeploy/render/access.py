"""spec.access: the NetworkPolicy of a ModelDeployment and the token check of its modelserver pods.

Pure: the spec and the operator's view of its peers (its own pods, Prometheus) in, manifests out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from modeldeploy.api import ModelDeploymentSpec

from .labels import Owner, child_labels, object_meta, selector
from .ports import GRPC_PORT, HTTP_PORT, METRICS_PORT

NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"  # set by the API server on every namespace
# Where the server container finds its own ServiceAccount token, as in-cluster clients expect it.
SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
TOKEN_VOLUME = "kube-api-access"
TOKEN_EXPIRATION_SECONDS = 3607  # the kubelet refreshes it at 80% of its life (3607: the API server's default)
AUTH_CACHE_SECONDS = 60  # how long modelserver trusts a TokenReview verdict


def token_audience(namespace: str, name: str) -> str:
    """The audience a caller's token must carry: one ModelDeployment, never the API server."""
    return f"modeldeploy.dev/{namespace}/{name}"


@dataclass(frozen=True)
class AccessPeers:
    """Who besides spec.access reaches model pods: the operator and Prometheus (the chart's settings)."""

    operator_namespace: str = "modeldeploy-system"
    operator_pod_labels: dict[str, str] = field(
        default_factory=lambda: {"app.kubernetes.io/name": "modeldeploy"})
    operator_service_account: str = "modeldeploy"  # allowed to call the model's HTTP API (gates)
    prometheus_namespace_selector: dict[str, Any] = field(
        default_factory=lambda: {"matchLabels": {NAMESPACE_NAME_LABEL: "monitoring"}})
    prometheus_pod_selector: dict[str, Any] = field(default_factory=dict)

    def identity(self) -> str:
        return f"{self.operator_namespace}/{self.operator_service_account}"


def _port_list(*ports: int) -> list[dict[str, Any]]:
    return [{"port": port, "protocol": "TCP"} for port in ports]


def _namespace_peer(namespace: str) -> dict[str, Any]:
    return {"namespaceSelector": {"matchLabels": {NAMESPACE_NAME_LABEL: namespace}}}


def caller_namespaces(spec: ModelDeploymentSpec) -> list[str]:
    """Namespaces whose pods may reach the inference ports: listed ones and the ServiceAccounts' ones."""
    access = spec.access
    if access is None:
        return []
    return sorted({*access.namespaces, *(sa.namespace for sa in access.service_accounts)})


def render_network_policy(spec: ModelDeploymentSpec, *, name: str, namespace: str, owner: Owner,
                          peers: AccessPeers) -> dict[str, Any] | None:
    """networking.k8s.io/v1 NetworkPolicy `<name>` over all revisions' pods; None without spec.access.

    Ingress is what is listed here and nothing else (NetworkPolicies add up: another policy selecting the
    same pods, such as the chart's namespace-wide one, can only admit more).
    """
    if spec.access is None:
        return None
    ingress: list[dict[str, Any]] = []
    callers = caller_namespaces(spec)
    if callers:
        ingress.append({"from": [_namespace_peer(ns) for ns in callers], "ports": _port_list(HTTP_PORT, GRPC_PORT)})
    operator = {**_namespace_peer(peers.operator_namespace), "podSelector": {"matchLabels": peers.operator_pod_labels}}
    # The operator: gates (metadata, smoke requests on 8000) and the direct provider's scrapes (8002).
    ingress.append({"from": [operator], "ports": _port_list(HTTP_PORT, METRICS_PORT)})
    prometheus = {"namespaceSelector": peers.prometheus_namespace_selector,
                  "podSelector": peers.prometheus_pod_selector}
    ingress.append({"from": [prometheus], "ports": _port_list(METRICS_PORT)})
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": object_meta(name, namespace, owner, child_labels(name, None, None)),
        "spec": {"podSelector": {"matchLabels": selector(name)}, "policyTypes": ["Ingress"], "ingress": ingress},
    }


def requires_token(spec: ModelDeploymentSpec) -> bool:
    return spec.access is not None and spec.access.require_token


def server_auth_args(spec: ModelDeploymentSpec, *, name: str, namespace: str, peers: AccessPeers) -> list[str]:
    """modelserver flags of the token check (empty without access.requireToken). The model's own pods'
    ServiceAccount and the operator are always allowed: the operator's gates call the model."""
    access = spec.access
    if access is None or not access.require_token:
        return []
    args = ["--auth-token-review", "--auth-audience", token_audience(namespace, name),
            "--auth-service-account-dir", SERVICE_ACCOUNT_DIR, "--auth-cache-seconds", str(AUTH_CACHE_SECONDS)]
    for ns in sorted(set(access.namespaces)):
        args += ["--auth-allow-namespace", ns]
    accounts = {f"{sa.namespace}/{sa.name}" for sa in access.service_accounts} | {peers.identity()}
    for account in sorted(accounts):
        args += ["--auth-allow-service-account", account]
    return args


def token_volume() -> dict[str, Any]:
    """What automountServiceAccountToken would mount, as a volume of the server container only."""
    return {"name": TOKEN_VOLUME, "projected": {"defaultMode": 0o444, "sources": [
        {"serviceAccountToken": {"path": "token", "expirationSeconds": TOKEN_EXPIRATION_SECONDS}},
        {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
        {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"apiVersion": "v1",
                                                                      "fieldPath": "metadata.namespace"}}]}},
    ]}}


def token_mount() -> dict[str, Any]:
    return {"name": TOKEN_VOLUME, "mountPath": SERVICE_ACCOUNT_DIR, "readOnly": True}


def access_identity(spec: ModelDeploymentSpec, peers: AccessPeers) -> str:
    """The part of the pods spec.access decides, for the revision hash. Empty without requireToken, so that
    revisions without it keep their hash; a changed list of callers is a new revision, rolled out as one."""
    if not requires_token(spec):
        return ""
    access = spec.access
    assert access is not None
    callers = ",".join([*sorted(set(access.namespaces)),
                        *sorted({f"{sa.namespace}/{sa.name}" for sa in access.service_accounts})])
    return f"|auth={access.service_account_name}|callers={callers}|operator={peers.identity()}"
