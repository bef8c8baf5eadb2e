"""Operator settings, from the environment (the Helm chart sets these)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from .metrics.allowlist import addresses_from_env
from .render.images import RuntimeImages


@dataclass(frozen=True)
class OperatorSettings:
    images: RuntimeImages = field(default_factory=RuntimeImages)
    metrics_port: int = 8080  # 0: no metrics server
    resync_seconds: float = 300.0  # safety-net reconcile of a quiet ModelDeployment
    # Serving only named namespaces (`--namespace=...`): no cluster-scoped reads at all (see handlers).
    namespaced: bool = False
    # Threads that run reconciles (kopf's executor): at most this many objects reconcile at once.
    reconcile_workers: int = 8
    # Prometheus base URLs analysis may query (metrics.allowlist); empty: none, only the direct provider.
    prometheus_addresses: tuple[str, ...] = ()

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> OperatorSettings:
        return cls(
            images=RuntimeImages.from_env(environ),
            metrics_port=int(environ.get("MODELDEPLOY_METRICS_PORT", "8080")),
            resync_seconds=float(environ.get("MODELDEPLOY_RESYNC_SECONDS", "300")),
            namespaced=environ.get("MODELDEPLOY_NAMESPACED", "").lower() in ("1", "true", "yes"),
            reconcile_workers=int(environ.get("MODELDEPLOY_RECONCILE_WORKERS", "8")),
            prometheus_addresses=addresses_from_env(environ),
        )
