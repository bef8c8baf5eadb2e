"""The control plane itself fails mid-canary: the kube-apiserver is killed (SIGKILL) and started
again, or etcd is, with the apiserver left running against it. The canary converges to its
promotion, with no orphaned or duplicated child, every transition's Event, and ready addresses
behind the endpoint throughout (pods keep serving; nothing in the data path needs the apiserver).

These restart the session's shared control plane: each waits until the apiserver answers /readyz.
"""

from __future__ import annotations

import pytest

from modeldeploy.kubeapi import KubeApiError
from modeldeploy_sandbox import chart
from modeldeploy_sandbox.cluster import OPERATOR_GROUP, LocalCluster
from modeldeploy_sandbox.loadgen import NO_ENDPOINT
from modeldeploy_sandbox.sandbox import Sandbox
from modeldeploy_sandbox.waiting import wait_until

from ..operator.audit import mark
from .scenario import (
    NAME,
    EndpointWatch,
    canary_manifest,
    child_problems,
    event_reasons,
    event_uids,
    in_step,
    promoted,
    wait_explained,
)

# What an undisturbed promotion emits (tests/sandbox/test_canary_scenarios.py asserts the same).
TRANSITIONS = {"RevisionCreated", "GatesPassed", "StepStarted", "Promoting", "Promoted"}


def operator_authorized(cluster: LocalCluster, namespace: str) -> bool:
    """Whether the apiserver's authorizer lets the operator's ServiceAccount watch pods in ``namespace``
    (a restarted apiserver refuses with 403 until its RBAC informers have synced)."""
    user = f"system:serviceaccount:{chart.RELEASE_NAMESPACE}:{chart.service_account()}"
    review = {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
              "spec": {"user": user, "groups": [OPERATOR_GROUP, "system:authenticated"],
                       "resourceAttributes": {"namespace": namespace, "verb": "watch", "resource": "pods"}}}
    try:
        answer = cluster.admin.request("POST", "/apis/authorization.k8s.io/v1/subjectaccessreviews", body=review)
    except KubeApiError:
        return False
    return bool((answer.get("status") or {}).get("allowed"))


@pytest.mark.parametrize(("component", "down_seconds", "step"), [("kube-apiserver", 0.0, 0), ("etcd", 3.0, 1)])
def test_a_canary_converges_across_a_control_plane_restart(
        cluster: LocalCluster, bare_sandbox: Sandbox, component: str, down_seconds: float, step: int,
        restarting_authorizer: list[tuple[int, int]]) -> None:
    sb = bare_sandbox
    with sb.run_operator(), EndpointWatch(cluster, sb.namespace) as endpoints:
        sb.apply(canary_manifest(sb, 1))
        stable = sb.wait_for(NAME, lambda s: s.get("phase") == "Healthy", 90, "v1 Healthy")["stableRevision"]
        wait_until(lambda: endpoints.ready() == 2, timeout=30, message="2 ready addresses behind the endpoint")
        endpoints.reset_minimum()
        before = event_uids(sb)
        with sb.loadgen(NAME, rate=40, duration=300) as load:
            sb.apply(canary_manifest(sb, 2))
            at = sb.wait_for(NAME, lambda s: in_step(s, step, analysed=True), 60, f"step {step + 1} analysed")
            candidate = at["rollout"]["revision"]
            restarted = mark(cluster)
            outage = cluster.control_plane.restart(component, down_seconds=down_seconds)
            wait_until(lambda: operator_authorized(cluster, sb.namespace), timeout=30,
                       message="the restarted apiserver authorizing the operator again")
            restarting_authorizer.append((restarted, mark(cluster)))
            wait_explained(sb, lambda: promoted(sb, candidate), 150,
                           f"{candidate} promoted after the {component} restart")
            report = load.stop()
        print(f"\n{component} down and back in {outage:.1f}s; canary promoted; {report}")
    assert candidate != stable
    assert child_problems(sb) == []
    missing = TRANSITIONS - set(event_reasons(sb, before))
    assert not missing, f"Events lost across the {component} restart: {missing}"
    assert endpoints.minimum, endpoints.empty
    assert report.failures(NO_ENDPOINT) == 0, report
    assert report.failures() == 0, f"requests to healthy revisions failed across the {component} restart: {report}"
