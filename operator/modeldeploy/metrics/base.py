"""The provider interface (Flagger's providers.Interface, made per revision) and the metric names."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from ..rollout.analysis import RevisionSample

# Triton's names; modelserver exports the same (runtime-image/modelserver/metrics.py).
SUCCESS = "nv_inference_request_success"
FAILURE = "nv_inference_request_failure"
REQUEST_DURATION_US = "nv_inference_request_duration_us"
QUEUE_DURATION_US = "nv_inference_queue_duration_us"
LATENCY_HISTOGRAM = "nv_inference_request_duration_seconds"


@dataclass(frozen=True)
class RevisionTarget:
    namespace: str  # of the ModelDeployment
    name: str  # the ModelDeployment
    revision: str  # revision name (label modeldeploy.dev/revision)
    model: str  # model name on the inference protocol (metric label `model`)
    endpoints: tuple[str, ...] = ()  # "host:port" of each READY pod's metrics port (direct provider)


class MetricsProvider(Protocol):
    def is_online(self) -> bool:
        """The metric source answers."""
        ...

    def prime(self, target: RevisionTarget) -> None:
        """Start a new interval now (a step began): direct takes fresh baselines, prometheus does nothing."""
        ...

    def sample(self, target: RevisionTarget, interval_seconds: float,
               custom_queries: Mapping[str, str]) -> RevisionSample | None:
        """The revision's metrics over the last interval; None when there is nothing to judge (inconclusive)."""
        ...
