"""Triton-compatible Prometheus metrics, in a private CollectorRegistry.

The hot path only bumps plain integers on a per-model-version ``ModelStats`` (all updates
happen on the event-loop thread, so no locks); a custom collector turns them into metric
families at scrape time. That keeps per-request cost to a few attribute increments.
"""

from __future__ import annotations

import bisect
import time
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
    "nv_inference_compute_input_duration_us": "Cumulative compute input duration in microseconds",
    "nv_inference_compute_infer_duration_us": "Cumulative compute inference duration in microseconds",
    "nv_inference_compute_output_duration_us": "Cumulative compute output duration in microseconds",
}
# Triton's response-cache counters, per model; only models with response_cache enabled have them.
CACHE_COUNTERS: dict[str, str] = {
    "nv_cache_num_hits_per_model": "Number of response cache hits per model",
    "nv_cache_num_misses_per_model": "Number of response cache misses per model",
    "nv_cache_hit_duration_per_model": "Cumulative time spent retrieving cached responses on hits, in microseconds",
    "nv_cache_miss_duration_per_model": "Cumulative time spent looking up and inserting responses on misses, in us",
}
# Every series of nv_inference_request_failure exists from the start (at 0), as in Triton, so a
# failure-rate query answers 0 rather than "no data" before the first failure.
FAILURE_REASONS: tuple[str, ...] = ("REJECTED", "CANCELED", "BACKEND", "OTHER")
HISTOGRAM = "nv_inference_request_duration_seconds"
PENDING = "nv_inference_pending_request_count"


class ModelStats:
    """Counters of one model version, read by /metrics and by the statistics extension.

    Which requests count where (runtime-image/README.md, "Which requests count where", has the table beside Triton's):
    success/failure and request duration count every request that named a loaded model;
    queue, compute and inference counts only requests that reached an execution (not cache
    hits, not requests refused while decoding); compute times are charged to every request of
    a batch, as Triton does.
    """

    __slots__ = (
        "batch_stats",
        "buckets",
        "cache_enabled",
        "cache_hit_ns",
        "cache_hits",
        "cache_miss_ns",
        "cache_misses",
        "compute_input_ns",
        "compute_ns",
        "compute_output_ns",
        "exec_count",
        "executed_requests",
        "fail_ns",
        "failure",
        "inference_count",
        "last_inference_ms",
        "latency_sum",
        "pending",
        "queue_ns",
        "request_ns",
        "success",
        "success_ns",
        "version",
    )

    def __init__(self, version: str) -> None:
        self.version = version
        self.success = 0
        self.success_ns = 0
        self.failure: dict[str, int] = dict.fromkeys(FAILURE_REASONS, 0)
        self.fail_ns = 0
        self.inference_count = 0
        self.exec_count = 0
        self.executed_requests = 0  # requests served by an execution (the count of queue/compute stats)
        self.request_ns = 0
        self.queue_ns = 0
        self.compute_input_ns = 0
        self.compute_ns = 0
        self.compute_output_ns = 0
        self.pending = 0
        self.buckets = [0] * (len(LATENCY_BUCKETS) + 1)
        self.latency_sum = 0.0
        self.last_inference_ms = 0  # wall clock of the last request, ms since the epoch (0: never)
        # batch size -> [executions, compute_input_ns, compute_infer_ns, compute_output_ns], per execution
        self.batch_stats: dict[int, list[int]] = {}
        self.cache_enabled = False
        self.cache_hits = 0
        self.cache_hit_ns = 0
        self.cache_misses = 0
        self.cache_miss_ns = 0

    def observe_success(self, duration_ns: int, batch: int) -> None:
        self.success += 1
        self.success_ns += duration_ns
        self.request_ns += duration_ns
        self.last_inference_ms = time.time_ns() // 1_000_000
        self._observe_latency(duration_ns)

    def observe_failure(self, reason: str, duration_ns: int) -> None:
        self.failure[reason] = self.failure.get(reason, 0) + 1
        self.fail_ns += duration_ns
        self.request_ns += duration_ns
        self.last_inference_ms = time.time_ns() // 1_000_000
        self._observe_latency(duration_ns)

    def observe_execution(
        self,
        queue_ns: int,
        compute_ns: int,
        *,
        requests: int = 1,
        batch_size: int = 1,
        input_ns: int = 0,
        output_ns: int = 0,
    ) -> None:
        """One model execution serving ``requests`` requests holding ``batch_size`` samples.

        ``queue_ns`` is summed over the requests. ``input_ns``, ``compute_ns`` and ``output_ns``
        are the execution's own stage times: each request of the batch is charged all of them
        (Triton's per-request accounting), the per-batch-size stats take them once.
        """
        self.exec_count += 1
        self.executed_requests += requests
        self.inference_count += batch_size
        self.queue_ns += queue_ns
        self.compute_input_ns += input_ns * requests
        self.compute_ns += compute_ns * requests
        self.compute_output_ns += output_ns * requests
        per_size = self.batch_stats.get(batch_size)
        if per_size is None:
            per_size = self.batch_stats[batch_size] = [0, 0, 0, 0]
        per_size[0] += 1
        per_size[1] += input_ns
        per_size[2] += compute_ns
        per_size[3] += output_ns

    def observe_cache(self, hit: bool, duration_ns: int) -> None:
        if hit:
            self.cache_hits += 1
            self.cache_hit_ns += duration_ns
        else:
            self.cache_misses += 1
            self.cache_miss_ns += duration_ns

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
        families = {name: Metric(name, doc, "counter") for name, doc in (COUNTERS | CACHE_COUNTERS).items()}
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
                ("nv_inference_compute_input_duration_us", st.compute_input_ns // 1000),
                ("nv_inference_compute_infer_duration_us", st.compute_ns // 1000),
                ("nv_inference_compute_output_duration_us", st.compute_output_ns // 1000),
            ):
                families[fam_name].add_sample(fam_name, lv, value)
            if st.cache_enabled:
                for fam_name, value in (
                    ("nv_cache_num_hits_per_model", st.cache_hits),
                    ("nv_cache_num_misses_per_model", st.cache_misses),
                    ("nv_cache_hit_duration_per_model", st.cache_hit_ns // 1000),
                    ("nv_cache_miss_duration_per_model", st.cache_miss_ns // 1000),
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
        for name in COUNTERS | CACHE_COUNTERS:
            text = text.replace(f" {name}_total ".encode(), f" {name} ".encode())
        return text
