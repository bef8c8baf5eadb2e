"""Triton-compatible Prometheus metrics, in a private CollectorRegistry.

The hot path only bumps plain integers on a per-model-version ``ModelStats`` (all updates
happen on the event-loop thread, so no locks); a custom collector turns them into metric
families at scrape time. That keeps per-request cost to a few attribute increments.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import GaugeMetricFamily, HistogramMetricFamily, Metric

# Seconds; covers sub-millisecond CPU models up to slow GPU batches.
LATENCY_BUCKETS: tuple[float, ...] = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip

COUNTERS: dict[str, str] = {
    "nv_inference_request_success": "Number of successful inference requests, all batch sizes",
    "nv_inference_request_failure": "Number of failed inference requests, all batch sizes",
    "nv_inference_count": "Number of inferences performed (a batch of n counts n)",
    "nv_inference_exec_count": "Number of model executions performed",
    "nv_inference_request_duration_us": "Cumulative inference request duration in microseconds",
    "nv_inference_queue_duration_us": "Cumulative inference queuing duration in microseconds",
    "nv_inference_compute_infer_duration_us": "Cumulative compute inference duration in microseconds",
}
HISTOGRAM = "nv_inference_request_duration_seconds"
PENDING = "nv_inference_pending_request_count"


class ModelStats:
    __slots__ = (
        "buckets",
        "compute_ns",
        "exec_count",
        "failure",
        "inference_count",
        "latency_sum",
        "pending",
        "queue_ns",
        "request_ns",
        "success",
        "version",
    )

    def __init__(self, version: str) -> None:
        self.version = version
        self.success = 0
        self.failure: dict[str, int] = {}
        self.inference_count = 0
        self.exec_count = 0
        self.request_ns = 0
        self.queue_ns = 0
        self.compute_ns = 0
        self.pending = 0
        self.buckets = [0] * (len(LATENCY_BUCKETS) + 1)
        self.latency_sum = 0.0

    def observe_success(self, duration_ns: int, batch: int) -> None:
        self.success += 1
        self.inference_count += batch
        self.request_ns += duration_ns
        self._observe_latency(duration_ns)

    def observe_failure(self, reason: str, duration_ns: int) -> None:
        self.failure[reason] = self.failure.get(reason, 0) + 1
        self.request_ns += duration_ns
        self._observe_latency(duration_ns)

    def observe_execution(self, queue_ns: int, compute_ns: int) -> None:
        """One model execution; queue_ns and compute_ns are summed over the requests it served (as Triton)."""
        self.exec_count += 1
        self.queue_ns += queue_ns
        self.compute_ns += compute_ns

    def _observe_latency(self, duration_ns: int) -> None:
        seconds = duration_ns / 1e9
        self.latency_sum += seconds
        self.buckets[bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1


class ServerMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.models: dict[tuple[str, str], ModelStats] = {}
        self.registry.register(self)

    def stats(self, model: str, version: int | str) -> ModelStats:
        key = (model, str(version))
        st = self.models.get(key)
        if st is None:
            st = self.models[key] = ModelStats(str(version))
        return st

    def collect(self) -> Iterator[Metric]:
        families = {name: Metric(name, doc, "counter") for name, doc in COUNTERS.items()}
        hist = HistogramMetricFamily(HISTOGRAM, "Inference request latency in seconds", labels=["model", "version"])
        pending = GaugeMetricFamily(PENDING, "Requests waiting in the batch queue", labels=["model", "version"])
        for (model, version), st in list(self.models.items()):
            lv = {"model": model, "version": version}
            families["nv_inference_request_success"].add_sample("nv_inference_request_success", lv, st.success)
            for reason, n in st.failure.items():
                families["nv_inference_request_failure"].add_sample(
                    "nv_inference_request_failure", {**lv, "reason": reason}, n
                )
            for fam_name, value in (
                ("nv_inference_count", st.inference_count),
                ("nv_inference_exec_count", st.exec_count),
                ("nv_inference_request_duration_us", st.request_ns // 1000),
                ("nv_inference_queue_duration_us", st.queue_ns // 1000),
                ("nv_inference_compute_infer_duration_us", st.compute_ns // 1000),
            ):
                families[fam_name].add_sample(fam_name, lv, value)
            cumulative, running = [], 0
            for le, n in zip([*map(str, LATENCY_BUCKETS), "+Inf"], st.buckets, strict=True):
                running += n
                cumulative.append((le, float(running)))
            hist.add_metric([model, version], cumulative, st.latency_sum)
            pending.add_metric([model, version], st.pending)
        yield from families.values()
        yield hist
        yield pending

    def exposition(self) -> bytes:
        text = generate_latest(self.registry)
        # prometheus-client appends "_total" to a counter's HELP/TYPE lines; Triton's counters
        # have no suffix, and the operator's queries use Triton's names. Samples are already
        # unsuffixed, so only the metadata lines need renaming.
        for name in COUNTERS:
            text = text.replace(f" {name}_total ".encode(), f" {name} ".encode())
        return text
