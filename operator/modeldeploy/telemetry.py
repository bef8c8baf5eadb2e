"""The operator's own Prometheus metrics (prometheus-client), on their own registry."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import TYPE_CHECKING, get_args

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from .api.status import Phase

if TYPE_CHECKING:
    from .cache import Cache
    from .workqueue import WorkQueue

PHASES: tuple[str, ...] = get_args(Phase)  # the phase gauge's values


class OperatorMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.reconciles = Counter("modeldeploy_reconciles_total", "Reconciles by result (ok, conflict, error).",
                                  ["result"], registry=self.registry)
        self.reconcile_seconds = Histogram("modeldeploy_reconcile_duration_seconds", "Duration of one reconcile.",
                                           registry=self.registry,
                                           buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
        self.api_writes = Counter("modeldeploy_api_writes_total", "Kubernetes API writes by kind.",
                                  ["kind"], registry=self.registry)
        self.rollouts = Counter("modeldeploy_rollouts_total", "Finished rollouts by outcome.",
                                ["outcome", "reason"], registry=self.registry)
        self.analysis_verdicts = Counter("modeldeploy_analysis_verdicts_total", "Analysis intervals by verdict.",
                                         ["verdict"], registry=self.registry)
        self.canary_weight = Gauge("modeldeploy_canary_weight", "Current canary weight in percent.",
                                   ["namespace", "name"], registry=self.registry)
        self.phase = Gauge("modeldeploy_phase", "1 for the current phase of each ModelDeployment (its only "
                           "series: the other phases have none).", ["namespace", "name", "phase"],
                           registry=self.registry)

        self.api_requests = Counter("modeldeploy_api_requests_total",
                                    "Kubernetes API requests by verb and HTTP status code (0: no answer).",
                                    ["verb", "code"], registry=self.registry)
        self.queue_depth = Gauge("modeldeploy_workqueue_depth", "ModelDeployments waiting for a worker.",
                                 registry=self.registry)
        self.queue_timers = Gauge("modeldeploy_workqueue_timers", "ModelDeployments with a due timer pending.",
                                  registry=self.registry)
        self.served = Gauge("modeldeploy_served_objects", "ModelDeployments this replica serves.",
                            registry=self.registry)
        self.cache_objects = Gauge("modeldeploy_cache_objects", "Objects in the watch caches, by kind.", ["kind"],
                                   registry=self.registry)
        self.cache_relists = Gauge("modeldeploy_cache_relists", "Lists of the watch caches (first ones, 410s).",
                                   registry=self.registry)
        self.throttled_seconds = Gauge("modeldeploy_api_throttled_seconds",
                                       "Time API requests waited for the client-side rate limit.",
                                       registry=self.registry)

    def api_requests_observer(self) -> Callable[[str, int], None]:
        def observe(verb: str, code: int) -> None:
            self.api_requests.labels(verb, str(code)).inc()
        return observe

    def watch_engine(self, *, queue: WorkQueue, cache: Cache, served: Callable[[], int],
                     throttled: Callable[[], float]) -> None:
        """Read the queue, caches and limiter at each scrape."""
        self.queue_depth.set_function(lambda: len(queue))
        self.queue_timers.set_function(queue.pending_timers)
        self.served.set_function(served)
        self.cache_relists.set_function(cache.relists)
        self.throttled_seconds.set_function(throttled)
        for (_, kind), store in cache.stores.items():
            self.cache_objects.labels(kind).set_function(store.__len__)

    def set_phase(self, namespace: str, name: str, current: str) -> None:
        """One series per object, its current phase: not six with five zeros (at 3,000 objects the zeros
        alone were 11 MiB of the operator's memory)."""
        for phase in PHASES:
            if phase != current:
                with contextlib.suppress(KeyError):  # never set
                    self.phase.remove(namespace, name, phase)
        if current in PHASES:
            self.phase.labels(namespace, name, current).set(1)

    def forget(self, namespace: str, name: str) -> None:
        """Remove the series of a deleted ModelDeployment (they would report it forever otherwise). By
        their labels, not by a scan of every series: deleting N objects stays linear in N."""
        for labels, gauge in [((namespace, name), self.canary_weight),
                              *(((namespace, name, phase), self.phase) for phase in PHASES)]:
            with contextlib.suppress(KeyError):  # never set
                gauge.remove(*labels)

    def serve(self, port: int, address: str = "0.0.0.0") -> None:
        start_http_server(port, addr=address, registry=self.registry)
