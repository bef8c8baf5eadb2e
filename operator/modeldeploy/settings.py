"""Operator settings, from the environment (the Helm chart sets these)."""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .metrics.allowlist import addresses_from_env
from .render.access import AccessPeers
from .render.images import RuntimeImages


@dataclass(frozen=True)
class OperatorSettings:
    images: RuntimeImages = field(default_factory=RuntimeImages)
    metrics_port: int = 8080  # 0: no metrics server
    resync_seconds: float = 300.0  # safety-net reconcile of a quiet ModelDeployment
    # Serving only named namespaces (`--namespace=...`): no cluster-scoped reads at all (see handlers).
    namespaced: bool = False
    # The namespaces served in namespaced mode (the chart's watchNamespaces; kopf gets them as --namespace).
    namespaces: tuple[str, ...] = ()
    # Worker threads that run reconciles: at most this many objects reconcile at once.
    reconcile_workers: int = 8
    # Client-side API rate limit (client-go's QPS/burst): a thousand objects starting at once queue
    # here rather than flood the apiserver. Not below what a first sync needs: at 100 a second the
    # limit alone kept 1,000 objects' 6,400 requests from syncing in under 62 s (bench/reconcile.py).
    api_qps: float = 200.0
    api_burst: int = 400
    # Prometheus base URLs analysis may query (metrics.allowlist); empty: none, only the direct provider.
    prometheus_addresses: tuple[str, ...] = ()

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> OperatorSettings:
        return cls(
            images=RuntimeImages.from_env(environ),
            metrics_port=int(environ.get("MODELDEPLOY_METRICS_PORT", "8080")),
            resync_seconds=float(environ.get("MODELDEPLOY_RESYNC_SECONDS", "300")),
            namespaced=environ.get("MODELDEPLOY_NAMESPACED", "").lower() in ("1", "true", "yes"),
            namespaces=tuple(n.strip() for n in environ.get("MODELDEPLOY_WATCH_NAMESPACES", "").split(",")
                             if n.strip()),
            reconcile_workers=int(environ.get("MODELDEPLOY_RECONCILE_WORKERS", "8")),
            api_qps=float(environ.get("MODELDEPLOY_API_QPS", "200")),
            api_burst=int(environ.get("MODELDEPLOY_API_BURST", "400")),
            prometheus_addresses=addresses_from_env(environ),
        )


def _json_object(environ: Mapping[str, str], key: str, default: dict[str, Any]) -> dict[str, Any]:
    text = environ.get(key, "")
    if not text:
        return default
    value = json.loads(text)
    if not isinstance(value, dict):
        raise ValueError(f"{key} must be a JSON object, got {text!r}")
    return value


def access_peers_from_env(environ: Mapping[str, str] = os.environ) -> AccessPeers:
    """The operator's own pods and Prometheus as the chart describes them (spec.access NetworkPolicies)."""
    default = AccessPeers()
    return AccessPeers(
        operator_namespace=environ.get("MODELDEPLOY_OPERATOR_NAMESPACE", default.operator_namespace),
        operator_pod_labels={str(k): str(v) for k, v in _json_object(
            environ, "MODELDEPLOY_OPERATOR_POD_LABELS", default.operator_pod_labels).items()},
        operator_service_account=environ.get("MODELDEPLOY_OPERATOR_SERVICE_ACCOUNT",
                                             default.operator_service_account),
        prometheus_namespace_selector=_json_object(environ, "MODELDEPLOY_PROMETHEUS_NAMESPACE_SELECTOR",
                                                   default.prometheus_namespace_selector),
        prometheus_pod_selector=_json_object(environ, "MODELDEPLOY_PROMETHEUS_POD_SELECTOR",
                                             default.prometheus_pod_selector),
    )


@functools.cache
def access_peers() -> AccessPeers:
    """access_peers_from_env, read once per process (the chart sets it; it never changes while running)."""
    return access_peers_from_env()
