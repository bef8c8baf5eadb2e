"""API faults through the fault proxy during a canary: 500s, 409s, 429s, slow answers, dropped
watches and 410 Gone. The canary still converges to the undisturbed end, and the operator does not
hot-loop: its requests per second during the faults are counted at the proxy and bounded against an
undisturbed canary of the same run.

The bound, against an undisturbed canary of the same run (requests counted when they arrive at the
proxy, the operator's and kopf's alike): under faults the mean rate is at most 2x the undisturbed
mean, and the busiest second at most 2x the undisturbed busiest second (or, as the undisturbed rates
are now tiny, at most 10/s and 40/s). Retries with back-off add
a few requests; a hot loop (retrying a 500 or a 409 at once) multiplies them. Lists are bounded
apart: the operator reads from watch caches, so an undisturbed canary sends few requests, and a 410
Gone rightly relists (one list per broken watch, the operator's cache and kopf's own): at most two
per watch fault met, beside the undisturbed canary's lists.
"""

from __future__ import annotations

import time

from modeldeploy_sandbox.cluster import LocalCluster
from modeldeploy_sandbox.faults import (
    Delay,
    DropWatch,
    FaultProxy,
    Gone,
    Rule,
    Seen,
    conflict,
    server_error,
    too_many_requests,
)
from modeldeploy_sandbox.loadgen import NO_ENDPOINT
from modeldeploy_sandbox.sandbox import Sandbox
from modeldeploy_sandbox.waiting import wait_until

from .scenario import (
    NAME,
    EndpointWatch,
    RequestRate,
    canary_manifest,
    child_problems,
    promoted,
    request_rate,
    wait_explained,
)

FACTOR = 2.0
# Reads come from watch caches: an undisturbed canary sends ~3 requests a second, so twice its busiest
# second is a handful, within the noise of one retried reconcile. A hot loop sends hundreds a second.
HOT_LOOP_PEAK, HOT_LOOP_MEAN = 40, 10.0


def is_list(seen: Seen) -> bool:
    """A GET of a collection (…/namespaces/<ns>/<resource>), not of one object and not a watch."""
    parts = seen.path.strip("/").split("/")
    return seen.method == "GET" and not seen.watch and "namespaces" in parts and \
        len(parts) == parts.index("namespaces") + 3


def rollout(sb: Sandbox, proxy: FaultProxy, version: int,
            stable: str) -> tuple[str, RequestRate, float, int]:
    """Roll out ``version`` to its promotion; the candidate, the operator's request rate meanwhile (lists
    apart), the seconds it took and the lists."""
    began = time.monotonic()
    sb.apply(canary_manifest(sb, version))
    candidate = wait_until(lambda: (sb.status(NAME).get("rollout") or {}).get("revision") not in (None, stable)
                           and sb.status(NAME)["rollout"]["revision"], timeout=60, message="the canary started")
    wait_explained(sb, lambda: promoted(sb, candidate), 150, f"{candidate} promoted despite the faults")
    ended = time.monotonic()
    seen = [s for s in proxy.requests() if began <= s.at <= ended]
    times = [s.at for s in seen if not is_list(s)]
    return str(candidate), request_rate(times), ended - began, sum(1 for s in seen if is_list(s))


def test_a_canary_converges_through_api_faults_without_a_hot_loop(
        cluster: LocalCluster, bare_sandbox: Sandbox, proxy: FaultProxy) -> None:
    sb = bare_sandbox
    watched = rf"/namespaces/{sb.namespace}/"
    with sb.run_operator(server=proxy.url), EndpointWatch(cluster, sb.namespace) as endpoints:
        sb.apply(canary_manifest(sb, 1))
        v1 = str(sb.wait_for(NAME, lambda s: s.get("phase") == "Healthy", 90, "v1 Healthy")["stableRevision"])
        with sb.loadgen(NAME, rate=40, duration=400) as load:
            v2, calm, calm_seconds, calm_lists = rollout(sb, proxy, 2, v1)
            endpoints.reset_minimum()
            # A storm of bounded size: each kind of fault a few times, spread over the canary by its
            # probability. (Reads come from the caches: the faults fall on writes, relists and kopf's
            # own requests; a steady rate of 500s would rightly grow the back-off to 30 s.)
            rules: list[Rule] = [
                # Not Events (best effort; a lost one is no duplicate) and not watches (their own rules).
                proxy.add(server_error(), path=r"^(?!.*/events$)", watch=False, times=8, probability=0.05),
                proxy.add(conflict(), method="PATCH", path=r"/status$", times=3, probability=0.5),
                # Any verb (GETs are rare now), not Events (as above).
                proxy.add(too_many_requests(), path=r"^(?!.*/events$)", watch=False, times=3, probability=0.1),
                proxy.add(Delay(1.5), watch=False, times=10, probability=0.1),
                proxy.add(DropWatch(after_events=1), watch=True, path=watched, times=4),
                proxy.add(Gone(), watch=True, path=watched, times=3),
            ]
            assert proxy.drop_watches() >= 3  # the operator's open watches restart into the rules above
            v3, stormy, stormy_seconds, stormy_lists = rollout(sb, proxy, 3, v2)
            proxy.clear()
            report = load.stop()
        problems = child_problems(sb)
    print(f"\nundisturbed canary: {calm.total} requests in {calm_seconds:.1f}s = {calm.mean:.1f}/s, "
          f"peak {calm.peak_per_second}/s\nunder faults:       {stormy.total} requests in {stormy_seconds:.1f}s = "
          f"{stormy.mean:.1f}/s, peak {stormy.peak_per_second}/s; faults met {[r.hits for r in rules]}; "
          f"lists {calm_lists} undisturbed, {stormy_lists} under faults")
    assert all(rule.hits >= 1 for rule in rules), [(type(r.fault).__name__, r.hits) for r in rules]
    assert problems == []
    assert stormy.peak_per_second <= max(FACTOR * calm.peak_per_second, HOT_LOOP_PEAK), (stormy, calm)
    assert stormy.mean <= max(FACTOR * calm.mean, HOT_LOOP_MEAN), (stormy, calm)
    watch_faults = sum(rule.hits for rule in rules if isinstance(rule.fault, DropWatch | Gone))
    assert stormy_lists <= calm_lists + 2 * watch_faults, (stormy_lists, calm_lists, watch_faults)
    assert endpoints.minimum, endpoints.empty
    assert report.failures(NO_ENDPOINT) == 0, report
    assert report.failures() == 0, f"requests to healthy revisions failed: {report}"
    assert v3 != v2
