"""The Deployment of one revision: `<name>-<hash5>`, never edited in place except for replicas/role."""

from __future__ import annotations

from typing import Any, Literal

from modeldeploy.api import ModelDeploymentSpec

from .access import AccessPeers, requires_token, server_auth_args, token_mount, token_volume
from .containers import (
    REPOSITORY_VOLUME,
    SOURCE_VOLUME,
    TMP_VOLUME,
    fetch_container,
    pvc_claim,
    server_container,
)
from .images import RuntimeImages
from .labels import (
    MANAGED_BY,
    MANAGED_BY_LABEL,
    SERVING,
    SPEC_HASH_ANNOTATION,
    TRAFFIC_LABEL,
    Owner,
    child_labels,
    object_meta,
    selector,
)
from .placement import placement
from .ports import METRICS_PORT
from .signature import signature_volume
from .storage import credentials_volume, decryption_volumes, repository_volume, tmp_size_limit

Role = Literal["stable", "canary"]
# Image users: modelserver images are distroless `nonroot`; Triton's images run as triton-server.
RUNTIME_UIDS = {"onnx": 65532, "triton": 1000}
TERMINATION_GRACE_SECONDS = 30  # time to drain in-flight requests after SIGTERM


def _volumes(spec: ModelDeploymentSpec) -> list[dict[str, Any]]:
    volumes: list[dict[str, Any]] = [
        # fetch writes it, the server reads it; bounded so that an artifact cannot fill the node's disk.
        {"name": REPOSITORY_VOLUME, "emptyDir": repository_volume(spec)},
        # the only writable path: root filesystems are read-only
        {"name": TMP_VOLUME, "emptyDir": {"sizeLimit": tmp_size_limit()}},
    ]
    claim = pvc_claim(spec.model.uri)
    if claim is not None:
        volumes.append({"name": SOURCE_VOLUME,
                        "persistentVolumeClaim": {"claimName": claim, "readOnly": True}})
    credentials = credentials_volume(spec)
    if credentials is not None:
        volumes.append(credentials)
    trust = signature_volume(spec)
    if trust is not None:
        volumes.append(trust)
    volumes += decryption_volumes(spec)
    return volumes


def _service_account(spec: ModelDeploymentSpec) -> dict[str, Any]:
    # Workload identity (IRSA, GKE/Azure) keys on the pod's ServiceAccount; its API token stays unmounted.
    # With access.requireToken the server reviews callers' tokens as this account (CEL: the same one).
    if spec.access is not None and spec.access.service_account_name is not None and requires_token(spec):
        return {"serviceAccountName": spec.access.service_account_name}
    credentials = spec.model.credentials
    if credentials is None or credentials.service_account_name is None:
        return {}
    return {"serviceAccountName": credentials.service_account_name}


def _pod_security_context(spec: ModelDeploymentSpec) -> dict[str, Any]:
    uid = RUNTIME_UIDS[spec.runtime.kind]
    return {"runAsNonRoot": True, "runAsUser": uid, "runAsGroup": uid, "fsGroup": uid,
            "seccompProfile": {"type": "RuntimeDefault"}}


def _server(spec: ModelDeploymentSpec, *, name: str, namespace: str, images: RuntimeImages,
            peers: AccessPeers) -> dict[str, Any]:
    server = server_container(spec, images)
    if requires_token(spec):
        # Only the server gets an API token (to call TokenReview); fetch never does.
        server["args"] = [*server["args"], *server_auth_args(spec, name=name, namespace=namespace, peers=peers)]
        server["volumeMounts"] = [*server["volumeMounts"], token_mount()]
    return server


def _pod_template(spec: ModelDeploymentSpec, *, name: str, namespace: str, revision: str, spec_hash: str,
                  images: RuntimeImages, peers: AccessPeers, born_serving: bool) -> dict[str, Any]:
    # No role label on pods: promotion relabels the Deployment, and a template change would
    # re-create every pod. Promotion must never re-deploy (DESIGN section 4).
    labels = {MANAGED_BY_LABEL: MANAGED_BY, **selector(name, revision)}
    if born_serving:
        labels[TRAFFIC_LABEL] = SERVING
    annotations = {
        SPEC_HASH_ANNOTATION: spec_hash,
        "kubectl.kubernetes.io/default-container": "server",
        # Conventional scrape annotations, for Prometheus setups that discover pods by them.
        "prometheus.io/scrape": "true",
        "prometheus.io/port": str(METRICS_PORT),
        "prometheus.io/path": "/metrics",
    }
    pod_spec: dict[str, Any] = {
        "automountServiceAccountToken": False,  # the runtimes never call the Kubernetes API
        **_service_account(spec),
        "enableServiceLinks": False,  # no *_SERVICE_HOST variables leaking into the runtime's env
        "terminationGracePeriodSeconds": TERMINATION_GRACE_SECONDS,
        "securityContext": _pod_security_context(spec),
        "initContainers": [fetch_container(spec, name, images)],
        "containers": [_server(spec, name=name, namespace=namespace, images=images, peers=peers)],
        "volumes": [*_volumes(spec), *([token_volume()] if requires_token(spec) else [])],
        **placement(spec),
    }
    return {"metadata": {"labels": labels, "annotations": annotations}, "spec": pod_spec}


def render_deployment(
    spec: ModelDeploymentSpec,
    *,
    name: str,
    namespace: str,
    revision: str,
    spec_hash: str,
    role: Role,
    replicas: int | None,
    owner: Owner,
    images: RuntimeImages,
    peers: AccessPeers | None = None,
    born_serving: bool = False,
) -> dict[str, Any]:
    """apps/v1 Deployment `revision`. replicas None leaves spec.replicas out: the HPA owns it.
    `peers`: the operator's identity the token check admits (spec.access.requireToken).
    `born_serving`: its pods carry the traffic label from creation (a first deploy's; see traffic.service)."""
    deployment_spec: dict[str, Any] = {}
    if replicas is not None:
        deployment_spec["replicas"] = replicas
    deployment_spec |= {
        "revisionHistoryLimit": 1,  # rollback goes to another revision's Deployment, not an old ReplicaSet
        # Selector is immutable: name + revision only, never the role.
        "selector": {"matchLabels": selector(name, revision)},
        # A revision's template changes only with the operator itself (upgrade, image settings):
        # then surge, and never drop below the serving capacity.
        "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
        "template": _pod_template(spec, name=name, namespace=namespace, revision=revision, spec_hash=spec_hash,
                                  images=images, peers=peers or AccessPeers(), born_serving=born_serving),
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": object_meta(revision, namespace, owner, child_labels(name, revision, role),
                                {SPEC_HASH_ANNOTATION: spec_hash}),
        "spec": deployment_spec,
    }

