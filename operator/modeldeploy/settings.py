"""Operator settings, from the environment (the Helm chart sets these)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from .render.images import RuntimeImages


@dataclass(frozen=True)
class OperatorSettings:
    images: RuntimeImages = field(default_factory=RuntimeImages)
    metrics_port: int = 8080  # 0: no metrics server
    resync_seconds: float = 300.0  # safety-net reconcile of a quiet ModelDeployment
    # Serving only named namespaces (`--namespace=...`): no cluster-scoped reads at all (see handlers).
    namespaced: bool = False

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> OperatorSettings:
        return cls(
            images=RuntimeImages.from_env(environ),
            metrics_port=int(environ.get("MODELDEPLOY_METRICS_PORT", "8080")),
            resync_seconds=float(environ.get("MODELDEPLOY_RESYNC_SECONDS", "300")),
            namespaced=environ.get("MODELDEPLOY_NAMESPACED", "").lower() in ("1", "true", "yes"),
        )
