"""The default provider: the operator scrapes each ready pod's /metrics itself (nothing to install).

It keeps the previous scrape of every (revision, pod endpoint) in memory and returns the counter
increase since the previous interval of that revision, so ``interval_seconds`` is not used: the
interval is the time between two runs (the planner asks once per analysis interval, for canary and
stable together). A run is sampled once: asked again for the same ``run`` (a re-plan after a status
Conflict) it answers what it answered, rather than a fresh 0.2 s interval. Rules, chosen to match
what Prometheus' increase() would say:

- first call for a revision -> None, the interval is inconclusive, the baseline is stored; the
  reconciler keeps the baselines in status.analysis (``baseline``/``restore``), so a restarted
  operator measures from where the last one stopped instead of losing an interval;
- a pod seen for the first time is baselined and contributes from the next interval on;
- a pod whose counters went backwards (container restart) counts from zero;
- a pod that disappeared, or could not be scraped, is dropped (re-baselined when it is back);
- no pod scraped with a baseline -> None, and ``missing`` says why (no ready pod, the first scrape,
  or each pod's refusal: a pod whose /metrics answers 403 must not leave the interval unexplained).

Custom PromQL checks need Prometheus: their values are None here (inconclusive).
Synchronous on purpose: the operator calls it from a worker thread.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor

from ..outbound import METRICS_BODY_LIMIT, OutboundError, request
from ..rollout.analysis import RevisionSample
from .base import RevisionTarget
from .exposition import Counters, from_numbers, histogram_quantile, parse, to_numbers

_FORGET_AFTER = 3600.0  # seconds without a sample() before a revision's baselines are dropped


class DirectProvider:
    def __init__(self, timeout: float = 2.0, max_workers: int = 16) -> None:
        self.timeout = timeout
        self.max_workers = max_workers
        self._lock = threading.Lock()
        # (namespace, revision) -> (last use, endpoint -> counters at the previous sample)
        self._baselines: dict[tuple[str, str], tuple[float, dict[str, Counters]]] = {}
        # (namespace, revision) -> (run, what that run answered)
        self._answers: dict[tuple[str, str], tuple[str, RevisionSample | None]] = {}
        # (namespace, revision) -> why its last sample was None
        self._missing: dict[tuple[str, str], str] = {}

    def is_online(self) -> bool:
        return True  # nothing between the operator and the pods

    def _scrape(self, endpoint: str, model: str) -> Counters | str:
        """The pod's counters, or why there are none (a message safe for status)."""
        # No redirects, at most 4 MiB: a pod's /metrics page must not steer or exhaust the operator.
        try:
            page = request("GET", f"http://{endpoint}/metrics", max_bytes=METRICS_BODY_LIMIT, timeout=self.timeout)
            return parse(page.decode("utf-8", "replace"), model)
        except OutboundError as error:  # unreachable, HTTP errors, redirects, oversize
            return str(error)
        except ValueError:
            return f"http://{endpoint}/metrics is not Prometheus text"

    def _scrape_all(self, target: RevisionTarget) -> tuple[dict[str, Counters], list[str]]:
        """Counters by endpoint, and the refusals of the pods that gave none."""
        if not target.endpoints:
            return {}, []
        workers = min(self.max_workers, len(target.endpoints))
        with ThreadPoolExecutor(max_workers=workers) as pool:
            results = list(pool.map(lambda endpoint: self._scrape(endpoint, target.model), target.endpoints))
        scraped = {endpoint: result for endpoint, result in zip(target.endpoints, results, strict=True)
                   if not isinstance(result, str)}
        return scraped, [result for result in results if isinstance(result, str)]

    def prime(self, target: RevisionTarget) -> None:
        now = time.monotonic()
        current, _ = self._scrape_all(target)
        with self._lock:
            self._baselines[(target.namespace, target.revision)] = (now, current)

    def sample(self, target: RevisionTarget, interval_seconds: float,
               custom_queries: Mapping[str, str], run: str = "") -> RevisionSample | None:
        key = (target.namespace, target.revision)
        with self._lock:
            answered = self._answers.get(key)
        if run and answered is not None and answered[0] == run:
            return answered[1]
        result = self._sample(target, custom_queries)
        with self._lock:
            self._answers[key] = (run, result)
        return result

    def missing(self, target: RevisionTarget) -> str:
        with self._lock:
            return self._missing.get((target.namespace, target.revision), "no sample taken yet")

    def baseline(self, target: RevisionTarget) -> dict[str, list[float]]:
        """What the next interval of `target` is measured from, JSON-safe (kept in status across restarts)."""
        with self._lock:
            kept = self._baselines.get((target.namespace, target.revision))
        return {endpoint: to_numbers(counters) for endpoint, counters in kept[1].items()} if kept else {}

    def restore(self, target: RevisionTarget, saved: Mapping[str, list[float]]) -> None:
        """A restarted operator measures from the baseline status kept, instead of losing an interval."""
        counters = {endpoint: parsed for endpoint, numbers in saved.items()
                    if (parsed := from_numbers(list(numbers))) is not None}
        key = (target.namespace, target.revision)
        with self._lock:
            if key not in self._baselines and counters:
                self._baselines[key] = (time.monotonic(), counters)

    def forget(self, namespace: str, name: str) -> None:
        """Drop the baselines of a deleted ModelDeployment's revisions (`<name>-<hash5>`)."""
        with self._lock:
            for store in (self._baselines, self._answers, self._missing):
                for key in [key for key in store if key[0] == namespace and key[1].rpartition("-")[0] == name]:
                    del store[key]

    def forget_revision(self, namespace: str, revision: str) -> None:
        """Drop a deleted revision's baselines: it will never be sampled again."""
        with self._lock:
            self._baselines.pop((namespace, revision), None)
            self._answers.pop((namespace, revision), None)
            self._missing.pop((namespace, revision), None)

    def __len__(self) -> int:
        return len(self._baselines)

    def _sample(self, target: RevisionTarget, custom_queries: Mapping[str, str]) -> RevisionSample | None:
        now = time.monotonic()
        current, refusals = self._scrape_all(target)
        key = (target.namespace, target.revision)
        with self._lock:
            previous = self._baselines.get(key)
            # Only what was scraped now is kept: gone and unreachable pods lose their baseline.
            self._baselines[key] = (now, current)
            self._forget_idle(now)
        deltas = [counters.minus(previous[1][endpoint]) for endpoint, counters in current.items()
                  if previous is not None and endpoint in previous[1]]
        if not deltas:
            why = _why_no_sample(target, previous is None, current, refusals)
            with self._lock:
                self._missing[key] = why
            return None
        total = Counters()
        for delta in deltas:
            total = total.plus(delta)
        return to_sample(total, custom_queries)

    def _forget_idle(self, now: float) -> None:
        for key in [key for key, (used, _) in self._baselines.items() if now - used > _FORGET_AFTER]:
            del self._baselines[key]
            self._answers.pop(key, None)
            self._missing.pop(key, None)


def _why_no_sample(target: RevisionTarget, first: bool, scraped: Mapping[str, Counters], refusals: list[str]) -> str:
    if not target.endpoints:
        return f"no ready pod of {target.revision} to scrape"
    if refusals and not scraped:
        more = f" (and {len(refusals) - 1} more)" if len(refusals) > 1 else ""
        return f"no pod of {target.revision} could be scraped: {refusals[0]}{more}"
    if first:
        return f"the first scrape of {target.revision} is its baseline: measured from the next interval"
    return f"the pods of {target.revision} were scraped for the first time: measured from the next interval"


def to_sample(delta: Counters, custom_queries: Mapping[str, str]) -> RevisionSample:
    requests = round(delta.success + delta.failure)
    success = round(delta.success)
    return RevisionSample(
        requests=requests,
        failures=round(delta.failure),
        latency_p99=histogram_quantile(0.99, delta.buckets),
        # modelserver adds failed requests' time to request_duration_us, so divide by all requests.
        latency_mean=delta.duration_us / requests / 1e6 if requests > 0 else None,
        # Per successful request, as the HPA's queue-time metric (render/hpa.py) computes it.
        queue_time_mean=delta.queue_us / success / 1e6 if success > 0 else None,
        custom={name: None for name in custom_queries},
    )
