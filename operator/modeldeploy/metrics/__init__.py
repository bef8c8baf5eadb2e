"""Metric providers: where the analysis samples of a revision come from.

``provider_for`` hands out one ``DirectProvider`` per operator process, so its in-memory
baselines survive from one reconcile to the next. After an operator restart they are gone:
the first interval of each revision is inconclusive (never passed, never failed).
"""

from __future__ import annotations

from functools import lru_cache

from ..api.spec import Provider
from .base import MetricsProvider, RevisionTarget
from .direct import DirectProvider
from .prometheus import PrometheusProvider

__all__ = ["DirectProvider", "MetricsProvider", "PrometheusProvider", "RevisionTarget", "provider_for"]


@lru_cache(maxsize=1)
def _direct() -> DirectProvider:
    return DirectProvider()


@lru_cache(maxsize=64)
def _prometheus(address: str) -> PrometheusProvider:
    return PrometheusProvider(address)


def provider_for(spec_provider: Provider) -> MetricsProvider:
    """The provider a ModelDeployment's analysis asks for."""
    if spec_provider.type == "prometheus" and spec_provider.address:
        return _prometheus(spec_provider.address)
    return _direct()
