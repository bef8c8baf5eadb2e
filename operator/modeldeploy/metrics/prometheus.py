"""PromQL over Prometheus' HTTP API (/api/v1/query; /-/ready for is_online).

Series are selected by the labels ``namespace``, ``revision`` and ``model``: the scrape
configuration must copy the pod label ``modeldeploy.dev/revision`` into ``revision`` (see
docs/analysis.md). The window is the interval rounded up to whole seconds; it should span at
least two scrapes, or ``increase()`` has nothing to extrapolate from. An HTTP error or timeout of
the builtin queries -> MetricsUnavailable (the analysis holds); missing series -> None
(inconclusive); a failing custom query only makes its own check inconclusive.

Requests go through ``outbound``: no redirects, answers capped at 4 MiB, and Prometheus' error text
reaches status only as a short sanitised excerpt. A custom query must select only the
ModelDeployment's own namespace (``api.promql_scope``): checked again here, after rendering.
"""

from __future__ import annotations

import json
import math
import urllib.parse
from collections.abc import Mapping

from ..api.promql_scope import namespace_problems
from ..outbound import METADATA_BODY_LIMIT, METRICS_BODY_LIMIT, HttpStatus, OutboundError, excerpt, request
from ..rollout.analysis import RevisionSample
from .base import (
    FAILURE,
    LATENCY_HISTOGRAM,
    QUEUE_DURATION_US,
    REQUEST_DURATION_US,
    SUCCESS,
    MetricsUnavailable,
    RevisionTarget,
)


class QueryError(Exception):
    """Prometheus did not answer the query usefully."""


def window(interval_seconds: float) -> str:
    return f"{max(1, math.ceil(interval_seconds))}s"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


def selector(target: RevisionTarget) -> str:
    return (f'namespace="{_escape(target.namespace)}",revision="{_escape(target.revision)}",'
            f'model="{_escape(target.model)}"')


def render_query(template: str, target: RevisionTarget, interval_seconds: float) -> str:
    """Fill a custom check's {{namespace}} {{name}} {{revision}} {{interval}} placeholders."""
    values = {"namespace": target.namespace, "name": target.name, "revision": target.revision,
              "interval": window(interval_seconds)}
    for key, value in values.items():
        template = template.replace("{{" + key + "}}", value)
    return template


def builtin_queries(target: RevisionTarget, interval_seconds: float) -> dict[str, str]:
    sel, w = selector(target), window(interval_seconds)
    return {
        "success": f"sum(increase({SUCCESS}{{{sel}}}[{w}]))",
        "failure": f"sum(increase({FAILURE}{{{sel}}}[{w}]))",
        "duration_us": f"sum(increase({REQUEST_DURATION_US}{{{sel}}}[{w}]))",
        "queue_us": f"sum(increase({QUEUE_DURATION_US}{{{sel}}}[{w}]))",
        "p99": f"histogram_quantile(0.99, sum by (le) (rate({LATENCY_HISTOGRAM}_bucket{{{sel}}}[{w}])))",
    }


class PrometheusProvider:
    def __init__(self, address: str, timeout: float = 5.0) -> None:
        self.address = address.rstrip("/")
        self.timeout = timeout

    def is_online(self) -> bool:
        try:
            request("GET", f"{self.address}/-/ready", max_bytes=METADATA_BODY_LIMIT, timeout=self.timeout)
        except OutboundError:
            return False
        return True

    def prime(self, target: RevisionTarget) -> None:
        return None  # Prometheus keeps the history: nothing to reset

    def baseline(self, target: RevisionTarget) -> dict[str, list[float]]:
        return {}  # nothing to keep across a restart

    def restore(self, target: RevisionTarget, saved: Mapping[str, list[float]]) -> None:
        return None

    def query(self, promql: str) -> float | None:
        """First value of an instant query (scalar or vector); None when empty or NaN/Inf."""
        url = f"{self.address}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
        try:
            body = json.loads(request("GET", url, max_bytes=METRICS_BODY_LIMIT, timeout=self.timeout))
        except HttpStatus as error:  # bad PromQL: 400 with Prometheus' JSON error
            raise QueryError(f"{excerpt(promql)}: {error}{_prometheus_error(error.body)}") from None
        except OutboundError as error:
            raise QueryError(f"{excerpt(promql)}: {error}") from None
        except ValueError:
            raise QueryError(f"{excerpt(promql)}: the answer is not JSON") from None
        if not isinstance(body, dict) or body.get("status") != "success":
            raise QueryError(f"{excerpt(promql)}: query failed{_prometheus_error(body)}")
        data = body.get("data", {})
        result = data.get("result")
        if data.get("resultType") == "scalar":
            raw = result[1] if isinstance(result, list) and len(result) == 2 else None
        elif data.get("resultType") == "vector" and result:
            raw = result[0].get("value", [None, None])[1]
        else:
            return None
        try:
            value = float(raw) if raw is not None else None
        except (TypeError, ValueError):
            return None
        return value if value is not None and math.isfinite(value) else None

    def sample(self, target: RevisionTarget, interval_seconds: float,
               custom_queries: Mapping[str, str], run: str = "") -> RevisionSample | None:
        # Stateless: the window ends now, so a repeated call measures the same interval (run unused).
        try:
            values = {key: self.query(promql) for key, promql in builtin_queries(target, interval_seconds).items()}
        except QueryError as error:  # our own queries failed: Prometheus is down or refuses them
            raise MetricsUnavailable(f"Prometheus at {self.address}: {error}") from error
        success = values["success"]
        if success is None and values["failure"] is None:
            return None  # no series at all: not scraped yet, or the relabeling is missing
        # increase() extrapolates to the window's edges: round to whole requests.
        successes, failures = round(success or 0.0), round(values["failure"] or 0.0)
        requests = successes + failures
        duration, queue = values["duration_us"], values["queue_us"]
        return RevisionSample(
            requests=requests, failures=failures, latency_p99=values["p99"],
            latency_mean=duration / requests / 1e6 if duration is not None and requests > 0 else None,
            queue_time_mean=queue / successes / 1e6 if queue is not None and successes > 0 else None,
            custom={name: self._custom(template, target, interval_seconds)
                    for name, template in custom_queries.items()})

    def missing(self, target: RevisionTarget) -> str:
        return (f"Prometheus has no {SUCCESS} or {FAILURE} series of revision {target.revision} "
                "(not scraped yet, or the scrape config does not keep the revision label)")

    def _custom(self, template: str, target: RevisionTarget, interval_seconds: float) -> float | None:
        promql = render_query(template, target, interval_seconds)
        if namespace_problems(promql, target.namespace):
            return None  # never sent: it would read another namespace (InvalidSpec says so in status)
        try:
            return self.query(promql)
        except QueryError:
            return None


def _prometheus_error(answer: object) -> str:
    """`: <errorType>: <error>` from Prometheus' JSON error, sanitised and short; '' when there is none."""
    if isinstance(answer, bytes):
        try:
            answer = json.loads(answer)
        except ValueError:
            return ""
    if not isinstance(answer, dict) or not isinstance(answer.get("error"), str):
        return ""
    kind = answer.get("errorType")
    prefix = f": {excerpt(kind, 40)}" if isinstance(kind, str) else ""
    return f"{prefix}: {excerpt(answer['error'])}"
