"""Metric providers: where the analysis samples of a revision come from.

``provider_for`` hands out one ``DirectProvider`` per operator process, so its in-memory
baselines survive from one reconcile to the next. After an operator restart they are gone:
the first interval of each revision is inconclusive (never passed, never failed).
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache

from ..api.spec import Provider
from ..rollout.analysis import RevisionSample
from .allowlist import addresses_from_env, allowed, refusal
from .base import MetricsProvider, MetricsUnavailable, RevisionTarget
from .direct import DirectProvider
from .prometheus import PrometheusProvider

__all__ = ["DirectProvider", "MetricsProvider", "MetricsUnavailable", "PrometheusProvider", "RefusedProvider",
           "RevisionTarget", "forget_baselines", "provider_for"]


@lru_cache(maxsize=1)
def _direct() -> DirectProvider:
    return DirectProvider()


@lru_cache(maxsize=64)
def _prometheus(address: str) -> PrometheusProvider:
    return PrometheusProvider(address)


def forget_baselines(namespace: str, name: str, revision: str | None = None) -> None:
    """A deleted ModelDeployment's revisions (named `<name>-<hash>`), or one deleted revision, keep no
    baselines (memory stays flat however many revisions come and go)."""
    if revision is not None:
        _direct().forget_revision(namespace, revision)
    else:
        _direct().forget(namespace, name)


class RefusedProvider:
    """A Prometheus address outside the allow-list: never contacted; the analysis holds and says why."""

    def __init__(self, reason: str) -> None:
        self.reason = reason

    def is_online(self) -> bool:
        raise MetricsUnavailable(self.reason)

    def prime(self, target: RevisionTarget) -> None:
        return None

    def baseline(self, target: RevisionTarget) -> dict[str, list[float]]:
        return {}

    def restore(self, target: RevisionTarget, saved: Mapping[str, list[float]]) -> None:
        return None

    def sample(self, target: RevisionTarget, interval_seconds: float,
               custom_queries: Mapping[str, str], run: str = "") -> RevisionSample | None:
        raise MetricsUnavailable(self.reason)

    def missing(self, target: RevisionTarget) -> str:
        return self.reason


def provider_for(spec_provider: Provider) -> MetricsProvider:
    """The provider a ModelDeployment's analysis asks for; a Prometheus only from the operator's allow-list."""
    if spec_provider.type == "prometheus" and spec_provider.address:
        allow_list = addresses_from_env()
        if not allowed(spec_provider.address, allow_list):
            return RefusedProvider(refusal(spec_provider.address, allow_list))
        return _prometheus(spec_provider.address)
    return _direct()
