"""Two operator replicas with kopf peering, as the chart runs them (``replicas: 2``, a KopfPeering in
the served namespace): the higher-priority one works, the other stands by. The active one is killed
(SIGKILL) mid-canary; the standby takes over once the dead peer's entry expires (kopf's peering
lifetime, 60 s) and finishes the canary. No double writes: each replica talks to the apiserver
through its own proxy, so every write is attributed to one of them, and the standby wrote nothing
while the active one was alive. Marked ``reliability``: the failover alone takes up to a minute.
"""

from __future__ import annotations

import collections
import contextlib
import time

import pytest

from modeldeploy_sandbox import chart, manifests
from modeldeploy_sandbox.cluster import LocalCluster
from modeldeploy_sandbox.faults import FaultProxy, Seen
from modeldeploy_sandbox.loadgen import LoadGenerator
from modeldeploy_sandbox.sandbox import Sandbox
from modeldeploy_sandbox.waiting import wait_until

from ..operator.audit import mark, operator_calls
from .scenario import NAME, canary_manifest, child_problems, promoted, wait_explained

PEERING = "modeldeploy"
WRITE_METHODS = ("POST", "PUT", "PATCH", "DELETE")


def writes(proxy: FaultProxy, namespace: str) -> list[Seen]:
    """The replica's writes in ``namespace``, except its peering keep-alives."""
    return [s for s in proxy.requests() if s.method in WRITE_METHODS and f"/namespaces/{namespace}/" in s.path
            and "kopfpeerings" not in s.path]


def install_peering(cluster: LocalCluster, namespace: str) -> None:
    """kopf's peering CRDs (the chart's crds/) and the KopfPeering the chart renders for ``namespace``."""
    manifests.apply_all(cluster.admin, manifests.load_documents([chart.CHART / "crds" / "kopf-peerings.yaml"]))
    (peering,) = [o for o in chart.render({"watchNamespaces": [namespace]}) if o["kind"] == "KopfPeering"]
    manifests.server_side_apply(cluster.admin, peering)


@pytest.mark.reliability
def test_the_standby_replica_finishes_a_canary_when_the_active_one_dies(
        cluster: LocalCluster, bare_sandbox: Sandbox) -> None:
    sb = bare_sandbox
    install_peering(cluster, sb.namespace)
    since = mark(cluster)
    upstream, ca = cluster.control_plane.server, cluster.control_plane.ca_path
    with FaultProxy(upstream, ca) as via_active, FaultProxy(upstream, ca) as via_standby, \
            contextlib.ExitStack() as stack:
        with sb.run_operator(server=via_standby.url, peering=PEERING, priority=100) as standby:
            with sb.run_operator(server=via_active.url, peering=PEERING, priority=200) as active:
                # Until the standby has seen its higher-priority peer it is active too (kopf's own window,
                # seen once as a PATCH of the ModelDeployment by both): start the test once it paused.
                wait_until(lambda: "Pausing operations in favour of" in standby.log_path.read_text(errors="replace"),
                           timeout=30, message="the standby paused in favour of the active replica")
                applied = time.monotonic()
                sb.apply(canary_manifest(sb, 1))
                stable = sb.wait_for(NAME, lambda s: s.get("phase") == "Healthy", 120, "v1 Healthy")["stableRevision"]
                load: LoadGenerator = stack.enter_context(sb.loadgen(NAME, rate=40, duration=400))
                sb.apply(canary_manifest(sb, 2))
                at = sb.wait_for(NAME, lambda s: (s.get("rollout") or {}).get("stage") == "Steps"
                                 and (s.get("rollout") or {}).get("step") == 1, 90, "step 2 of the canary")
                candidate = at["rollout"]["revision"]
                active.kill()
                killed = time.monotonic()
            wait_explained(sb, lambda: promoted(sb, candidate), 150, f"{candidate} promoted by the standby")
            report = load.stop()
            took_over = min((s.at for s in writes(via_standby, sb.namespace)), default=float("nan")) - killed
        by_active, by_standby = writes(via_active, sb.namespace), writes(via_standby, sb.namespace)
    print(f"\nactive replica: {len(by_active)} writes, all before its kill; standby: {len(by_standby)} writes, "
          f"the first {took_over:.1f}s after the kill; load: {report}")
    assert candidate != stable and child_problems(sb) == []
    assert by_active and by_standby
    assert report.failures() == 0, report  # the failover dropped no request
    early = [f"{s.method} {s.path} ({s.user_agent}, {s.at - killed:.1f}s, {s.at - applied:+.1f}s after the "
             f"ModelDeployment was created)" for s in by_standby if s.at < killed]
    assert early == [], f"the standby wrote while the active replica was alive: {early}"
    # Per child: its writers, in order. One switch at most (active, then standby), never back.
    writers: dict[str, list[str]] = collections.defaultdict(list)
    for who, seen in sorted([("active", s) for s in by_active] + [("standby", s) for s in by_standby],
                            key=lambda pair: pair[1].at):
        path = seen.path.removesuffix("/status")
        if not writers[path] or writers[path][-1] != who:
            writers[path].append(who)
    assert all(w in (["active"], ["standby"], ["active", "standby"]) for w in writers.values()), dict(writers)
    # Nobody else wrote as the operator: the audit log has exactly the writes the two proxies relayed.
    audited = [c for c in operator_calls(cluster, sb.namespace, since)
               if c.write and c.resource not in ("kopfpeerings",)]
    assert len(audited) == len(by_active) + len(by_standby), (len(audited), len(by_active), len(by_standby))
