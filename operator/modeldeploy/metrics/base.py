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


class MetricsUnavailable(Exception):
    """The provider does not answer: no data, which is not a verdict (the analysis holds)."""


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

    def baseline(self, target: RevisionTarget) -> dict[str, list[float]]:
        """What the next interval is measured from, JSON-safe; {} when the provider keeps nothing."""
        ...

    def restore(self, target: RevisionTarget, saved: Mapping[str, list[float]]) -> None:
        """Take `saved` (a baseline() of an earlier process) unless a baseline is already held."""
        ...

    def sample(self, target: RevisionTarget, interval_seconds: float,
               custom_queries: Mapping[str, str], run: str) -> RevisionSample | None:
        """The revision's metrics over the interval `run` names; None when there is nothing to judge
        (inconclusive). Idempotent per `run`: asked again (a re-plan after a status Conflict), the same
        interval gives the same answer. Raises MetricsUnavailable when the source does not answer."""
        ...

    def missing(self, target: RevisionTarget) -> str:
        """Why the last sample() of `target` was None, for the inconclusive check's message."""
        ...
