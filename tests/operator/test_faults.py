"""API faults between the operator and the real apiserver converge, without duplicates.

The operator talks to the apiserver through the fault proxy (``sandbox.run_operator(server=...)``).
Every test asserts that its faults were really met (``Rule.hits``, ``Rule.abandoned``), then that the
ModelDeployment reached Healthy with exactly one Deployment per revision, one create of it in the
audit log, and each Event once.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from modeldeploy_sandbox.cluster import LocalCluster
from modeldeploy_sandbox.faults import (
    DropWatch,
    FaultProxy,
    Gone,
    Rule,
    Timeout,
    conflict,
    server_error,
    too_many_requests,
)
from modeldeploy_sandbox.sandbox import Sandbox, model_deployment
from modeldeploy_sandbox.waiting import wait_until

from .audit import count, forbidden, mark, operator_calls, settled

NAME = "resnet"
OPERATOR = "^modeldeploy-operator$"  # the reconciler's client; kopf's own requests say kopf/...


@pytest.fixture(autouse=True)
def no_forbidden(cluster: LocalCluster) -> Iterator[None]:
    """The operator runs with the chart's RBAC: no request of it may be refused with 403."""
    since = mark(cluster)
    yield
    assert forbidden(cluster, since) == []


@pytest.fixture()
def proxy(cluster: LocalCluster) -> Iterator[FaultProxy]:
    with FaultProxy(cluster.control_plane.server, cluster.control_plane.ca_path, seed=8) as running:
        yield running


def deploy(sb: Sandbox, version: int, timeout: float = 90, *, announced: bool = True) -> dict[str, Any]:
    """Apply model `version`; its Healthy status (and, if `announced`, once its Promoted Event is sent)."""
    artifact = sb.artifacts.linear(f"{NAME}/{version}/model.onnx", seed=version)
    applied = sb.apply(model_deployment(NAME, artifact, rollout={"strategy": "immediate", "scaleDownDelaySeconds": 0}))
    generation = applied["metadata"]["generation"]
    status = sb.wait_for(NAME, lambda s: settled(s, generation), timeout,
                         f"Healthy at generation {generation} despite the faults")
    # The Promoted Event is sent after the status that records it: the tests stop the operator next.
    if announced:
        wait_until(lambda: any(e.get("reason") == "Promoted" and status["stableRevision"] in e.get("message", "")
                               for e in sb.events(NAME)), timeout=30, message="the Promoted Event")
    return status


def deployments(sb: Sandbox) -> list[str]:
    return sorted(d["metadata"]["name"] for d in sb.deployments(NAME))


def assert_no_duplicates(sb: Sandbox, cluster: LocalCluster, since: int, revisions: list[str]) -> None:
    try:
        wait_until(lambda: deployments(sb) == revisions[-1:], timeout=30, message="one Deployment, the last revision's")
    except TimeoutError as error:
        raise AssertionError(f"{error}: {deployments(sb)}\n{sb.describe(NAME)}") from None
    calls = operator_calls(cluster, sb.namespace, since)
    assert count(calls, "create", "deployments", 201) == len(revisions)  # once per revision
    assert count(calls, "delete", "deployments", 200) == len(revisions) - 1  # only the superseded ones
    reasons = [e["reason"] for e in sb.events(NAME)]
    # Each revision announced once: a first deploy when it serves (Promoted), a later one from its start too.
    assert reasons.count("RevisionCreated") == len(revisions) - 1 and reasons.count("Promoted") == len(revisions), \
        reasons
    recorded = [(r["name"], r["state"]) for r in sb.status(NAME)["revisions"]]
    assert len({name for name, _ in recorded}) == len(recorded) and (revisions[-1], "Stable") in recorded, recorded


def metric(text: str, name: str, **labels: str) -> float:
    selector = ",".join(f'{key}="{value}"' for key, value in labels.items())
    found = re.search(rf"^{name}\{{{selector}\}} (\S+)$", text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def test_errors_conflicts_and_throttling_are_retried_to_one_deployment(
        bare_sandbox: Sandbox, cluster: LocalCluster, proxy: FaultProxy) -> None:
    sb = bare_sandbox
    rules: list[Rule] = [
        proxy.add(server_error(), method="GET", path=rf"/modeldeployments/{NAME}$", user_agent=OPERATOR),
        proxy.add(server_error(), method="POST", path=r"/deployments$", times=2),
        proxy.add(too_many_requests(), method="POST", path=r"/services$"),
        proxy.add(conflict(), method="PATCH", path=rf"/modeldeployments/{NAME}/status$", times=2),
    ]
    since = mark(cluster)
    with sb.run_operator(server=proxy.url) as operator:
        status = deploy(sb, 1)
        text = operator.metrics()
    assert [rule.hits for rule in rules] == [1, 2, 1, 2]
    assert_no_duplicates(sb, cluster, since, [status["stableRevision"]])
    failed = sum(metric(text, "modeldeploy_reconciles_total", result=r) for r in ("error", "conflict"))
    assert failed >= 4  # at least the GET, the two creates and the 429 each ended a reconcile, run again


def test_random_faults_on_every_request_converge_through_a_new_revision(
        bare_sandbox: Sandbox, cluster: LocalCluster, proxy: FaultProxy) -> None:
    sb = bare_sandbox
    # The operator's requests and kopf's (finalizers, lists) fail now and then, reproducibly (reads come
    # from the watch caches: a reconcile sends only its few writes). Not Events: they are best effort, and
    # a lost one is no duplicate.
    errors = proxy.add(server_error(), path=r"^(?!.*/events$)", watch=False, times=None, probability=0.15)
    conflicts = proxy.add(conflict(), method="PATCH", times=3)  # the first three PATCHes, whichever they are
    since = mark(cluster)
    with sb.run_operator(server=proxy.url):
        old = deploy(sb, 1)["stableRevision"]
        new = deploy(sb, 2)["stableRevision"]
        proxy.clear()
        assert_no_duplicates(sb, cluster, since, [old, new])
    assert errors.hits >= 3 and conflicts.hits == 3, (errors.hits, conflicts.hits)


def test_a_create_whose_answer_is_lost_is_not_repeated(
        bare_sandbox: Sandbox, cluster: LocalCluster, proxy: FaultProxy) -> None:
    """The create reaches the apiserver, its answer never comes back: the client times out (30 s)."""
    sb = bare_sandbox
    lost = proxy.add(Timeout(hold=60, forward=True), method="POST", path=r"/deployments$", user_agent=OPERATOR)
    since = mark(cluster)
    with sb.run_operator(server=proxy.url):
        status = deploy(sb, 1, timeout=120)
    assert (lost.hits, lost.abandoned) == (1, 1)
    creates = [c.code for c in operator_calls(cluster, sb.namespace, since)
               if (c.verb, c.resource) == ("create", "deployments")]
    assert creates == [201]  # the next reconcile found it, compared it, and did not create it again
    assert_no_duplicates(sb, cluster, since, [status["stableRevision"]])


def test_dropped_watches_and_410_gone_are_survived(
        bare_sandbox: Sandbox, cluster: LocalCluster, proxy: FaultProxy) -> None:
    sb = bare_sandbox
    watched = rf"/namespaces/{sb.namespace}/"
    rules: list[Rule] = [  # per watch, in order: the first rule left for a request answers it
        proxy.add(DropWatch(after_events=1), watch=True, path=watched + "modeldeployments$"),
        proxy.add(Gone(), watch=True, path=watched + "modeldeployments$"),
        proxy.add(Gone(), watch=True, path=watched + "deployments$"),
        proxy.add(DropWatch(after_events=1), watch=True, path=watched + "deployments$"),
        proxy.add(DropWatch(after_events=2), watch=True, path=watched + "pods$"),
    ]
    since = mark(cluster)
    with sb.run_operator(server=proxy.url):
        status = deploy(sb, 1)
        wait_until(lambda: all(rule.hits == 1 for rule in rules), timeout=30,
                   message=f"every watch fault met: {[rule.hits for rule in rules]}")
        # After a 410 the stream restarts from a fresh list, as client-go's reflector does.
        lists = [s for s in proxy.requests("GET", watched + "modeldeployments$") if not s.watch]
        assert len(lists) >= 2, lists
        # Healthy needs no more reconciles and the resync is 300 s away: only a watch event can tell
        # the operator about this edit.
        live = sb.get(NAME)
        assert live is not None
        sb.apply({**live, "spec": {**live["spec"], "autoscaling": {"minReplicas": 1, "maxReplicas": 3}}})
        wait_until(lambda: (sb.kube.get("autoscaling/v2", "HorizontalPodAutoscaler", sb.namespace, NAME)
                            or {}).get("spec", {}).get("maxReplicas") == 3, timeout=20,
                   message="the edit seen through the resumed watch")
    assert_no_duplicates(sb, cluster, since, [status["stableRevision"]])


def test_events_the_api_refused_after_the_status_write_are_sent_once_by_the_next_operator(
        bare_sandbox: Sandbox, proxy: FaultProxy) -> None:
    """Status is written first and keeps the transition's Events; a new process sends what was lost."""
    sb = bare_sandbox
    refused = proxy.add(server_error(), method="POST", path=r"/events$", user_agent=OPERATOR, times=None)

    def sent(reason: str) -> int:
        return [e["reason"] for e in sb.events(NAME)].count(reason)

    with sb.run_operator(server=proxy.url):
        deploy(sb, 1, announced=False)  # the Events are refused
        # Promoted is sent right after the status write deploy() waited for: stop once it was refused.
        wait_until(lambda: refused.hits >= 1, timeout=30, message="the Promoted Event refused")
    assert sent("Promoted") == 0
    recorded = [e["reason"] for e in sb.status(NAME)["recentEvents"]]
    assert recorded == ["Promoted"]  # a first deploy's one Event
    proxy.clear()
    with sb.run_operator(server=proxy.url):
        wait_until(lambda: sent("Promoted") == 1, timeout=30, message="the lost Event sent from status")

    def found_sent() -> int:
        return len([s for s in proxy.requests("GET", rf"/events/{NAME}\.") if s.status == 200])

    with sb.run_operator(server=proxy.url):  # looks it up, finds it sent: no duplicate
        wait_until(lambda: found_sent() == 1, timeout=30, message="the restarted operator found it sent")
    assert sent("Promoted") == 1
