"""The operator's own Prometheus metrics (prometheus-client), on their own registry."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server


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
        self.phase = Gauge("modeldeploy_phase", "1 for the current phase of each ModelDeployment.",
                           ["namespace", "name", "phase"], registry=self.registry)

    def forget(self, namespace: str, name: str) -> None:
        """Remove the series of a deleted ModelDeployment (they would report it forever otherwise)."""
        for gauge, names in ((self.canary_weight, ("namespace", "name")),
                             (self.phase, ("namespace", "name", "phase"))):
            series = {tuple(sample.labels[label] for label in names)
                      for metric in gauge.collect() for sample in metric.samples}
            for labels in series:
                if labels[:2] == (namespace, name):
                    gauge.remove(*labels)

    def serve(self, port: int, address: str = "0.0.0.0") -> None:
        start_http_server(port, addr=address, registry=self.registry)
