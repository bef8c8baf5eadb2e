"""The operator on the real control plane: the children it renders, its status, revisions, deletion.

Real controllers make the ReplicaSets and EndpointSlices, the real scheduler binds the pods, the
sandbox kubelet runs them as modelserver processes, and readiness is real. What the operator did is
read from the apiserver's audit log (``audit``), never inferred from a pause.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from modeldeploy.kubeapi import KubeClient
from modeldeploy_sandbox.cluster import LocalCluster
from modeldeploy_sandbox.sandbox import API_VERSION, KIND, Sandbox, model_deployment
from modeldeploy_sandbox.waiting import wait_until

from .audit import count, forbidden, mark, operator_calls, settled
from .reading import metric

NAME = "resnet"
CHILDREN = (("apps/v1", "Deployment"), ("v1", "Service"), ("autoscaling/v2", "HorizontalPodAutoscaler"),
            ("policy/v1", "PodDisruptionBudget"))


@pytest.fixture(autouse=True)
def no_forbidden(cluster: LocalCluster) -> Iterator[None]:
    """The operator runs with the chart's RBAC: no request of it may be refused with 403."""
    since = mark(cluster)
    yield
    assert forbidden(cluster, since) == []


def condition(status: dict[str, Any], kind: str) -> tuple[str | None, str | None]:
    for entry in status.get("conditions", []):
        if entry["type"] == kind:
            return entry["status"], entry.get("reason")
    return None, None


def deploy(sb: Sandbox, version: int = 1, **spec: Any) -> dict[str, Any]:
    """Apply a ModelDeployment for model ``version`` and wait until it is Healthy: its status."""
    artifact = sb.artifacts.linear(f"{NAME}/{version}/model.onnx", seed=version)
    generation = sb.apply(model_deployment(NAME, artifact, **spec))["metadata"]["generation"]
    return sb.wait_for(NAME, lambda s: settled(s, generation), 90, f"{NAME} Healthy at generation {generation}")


def children(sb: Sandbox) -> dict[tuple[str, str], list[str]]:
    return {(api, kind): sorted(o["metadata"]["name"] for o in sb.kube.list(api, kind, sb.namespace,
                                                                           {"modeldeploy.dev/name": NAME}))
            for api, kind in CHILDREN}


def test_a_model_deployment_gets_owned_children_and_a_healthy_status(
        sandbox: Sandbox, admin: KubeClient, cluster: LocalCluster) -> None:
    since = mark(cluster)
    status = deploy(sandbox)
    revision = status["stableRevision"]
    assert re.fullmatch(rf"{NAME}-[0-9a-f]{{5}}", revision), revision
    assert status["observedGeneration"] == 1 and status["readyReplicas"] == 1
    assert condition(status, "Ready") == ("True", "Serving") and condition(status, "Stalled")[0] == "False"
    assert [(r["name"], r["state"]) for r in status["revisions"]] == [(revision, "Stable")]
    owner = sandbox.get(NAME)
    assert owner is not None
    assert children(sandbox) == {CHILDREN[0]: [revision], CHILDREN[1]: sorted([NAME, revision]),
                                 CHILDREN[2]: [NAME], CHILDREN[3]: [NAME]}
    for api, kind in CHILDREN:
        for child in sandbox.kube.list(api, kind, sandbox.namespace, {"modeldeploy.dev/name": NAME}):
            assert child["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "modeldeploy"
            (reference,) = child["metadata"]["ownerReferences"]
            assert (reference["uid"], reference["controller"]) == (owner["metadata"]["uid"], True), kind
    main = sandbox.kube.get("v1", "Service", sandbox.namespace, NAME)
    assert main is not None and main["spec"]["selector"]["modeldeploy.dev/revision"] == revision
    hpa = sandbox.kube.get("autoscaling/v2", "HorizontalPodAutoscaler", sandbox.namespace, NAME)
    assert hpa is not None and hpa["spec"]["scaleTargetRef"]["name"] == revision
    # The real endpoint controller publishes the ready pod behind the main Service.
    (pod,) = sandbox.pods(NAME)
    slices = wait_until(lambda: admin.list("discovery.k8s.io/v1", "EndpointSlice", sandbox.namespace,
                                           {"kubernetes.io/service-name": NAME}), message="an EndpointSlice")
    addresses = [(e["addresses"], e["conditions"].get("ready")) for s in slices for e in s.get("endpoints") or []]
    assert addresses == [([pod["status"]["podIP"]], True)]
    sandbox.wait_for_events(NAME, "Promoted")  # sent after the status write that records it
    reasons = [e["reason"] for e in sandbox.events(NAME)]
    # A first deploy is announced once, when it serves (the HPA's own Events share the name).
    assert reasons.count("RevisionCreated") == 0 and reasons.count("Promoted") == 1, reasons
    # A first deploy's pods are born with the traffic label (ready for a canary): no patch per pod.
    assert pod["metadata"]["labels"]["modeldeploy.dev/traffic"] == "serving"
    assert count(operator_calls(cluster, sandbox.namespace, since), "patch", "pods") == 0


@pytest.mark.parametrize("requests", [{}, {"cpu": "0.25", "memory": "0.5Gi"}], ids=["defaults", "decimal-quantities"])
def test_a_resync_with_nothing_changed_writes_nothing(
        bare_sandbox: Sandbox, cluster: LocalCluster, requests: dict[str, str]) -> None:
    """The apiserver stores objects defaulted and quantities canonical (``0.25`` as ``250m``): no difference.
    And a resync reads from the watch caches: no request of any kind, only the watches stay open."""
    sb = bare_sandbox
    with sb.run_operator(env={"MODELDEPLOY_RESYNC_SECONDS": "0.5"}) as operator:
        deploy(sb, resources={"requests": requests})
        wait_until(lambda: not sb.status(NAME).get("retiring"), message="nothing left to retire")
        # Events are sent after the status that records them: wait for the last one too.
        wait_until(lambda: "Promoted" in [e["reason"] for e in sb.events(NAME)], message="the Promoted Event")
        since = mark(cluster)
        reconciled = metric(operator.metrics(), "modeldeploy_reconciles_total")
        wait_until(lambda: metric(operator.metrics(), "modeldeploy_reconciles_total") >= reconciled + 3,
                   timeout=30, interval=0.5, message="three resyncs")
        calls = operator_calls(cluster, sb.namespace, since)
    assert [(c.verb, c.resource, c.name) for c in calls if c.verb != "watch"] == []


def test_a_spec_update_rolls_a_new_revision_and_removes_the_old(sandbox: Sandbox, cluster: LocalCluster) -> None:
    since = mark(cluster)
    rollout = {"strategy": "immediate", "scaleDownDelaySeconds": 0}
    old = deploy(sandbox, rollout=rollout)["stableRevision"]
    new_status = deploy(sandbox, 2, rollout=rollout)
    new = new_status["stableRevision"]
    assert new != old and new_status["observedGeneration"] == 2
    wait_until(lambda: children(sandbox)[CHILDREN[0]] == [new], timeout=30, message="the old Deployment removed")
    assert children(sandbox)[CHILDREN[1]] == sorted([NAME, new])
    main = sandbox.kube.get("v1", "Service", sandbox.namespace, NAME)
    assert main is not None and main["spec"]["selector"]["modeldeploy.dev/revision"] == new
    hpa = sandbox.kube.get("autoscaling/v2", "HorizontalPodAutoscaler", sandbox.namespace, NAME)
    assert hpa is not None and hpa["spec"]["scaleTargetRef"]["name"] == new
    wait_until(lambda: {p["metadata"]["labels"]["modeldeploy.dev/revision"] for p in sandbox.pods(NAME)} == {new},
               timeout=30, message="only the new revision's pods")
    calls = operator_calls(cluster, sandbox.namespace, since)
    assert count(calls, "create", "deployments", 201) == 2  # one per revision, never re-created
    assert count(calls, "delete", "deployments", 200) == 1


def test_an_autoscaling_edit_patches_the_hpa_and_makes_no_revision(sandbox: Sandbox, cluster: LocalCluster) -> None:
    revision = deploy(sandbox)["stableRevision"]
    since = mark(cluster)
    manifest = sandbox.get(NAME)
    assert manifest is not None
    sandbox.apply({**manifest, "spec": {**manifest["spec"], "autoscaling": {"minReplicas": 1, "maxReplicas": 3}}})
    wait_until(lambda: (sandbox.kube.get("autoscaling/v2", "HorizontalPodAutoscaler", sandbox.namespace, NAME)
                        or {}).get("spec", {}).get("maxReplicas") == 3, timeout=30, message="HPA maxReplicas 3")
    status = sandbox.wait_for(NAME, lambda s: s.get("observedGeneration") == 2, 30, "generation 2 observed")
    assert status["phase"] == "Healthy" and status["stableRevision"] == revision
    assert children(sandbox)[CHILDREN[0]] == [revision]
    calls = operator_calls(cluster, sandbox.namespace, since)
    assert count(calls, "patch", "horizontalpodautoscalers") == 1
    assert [c for c in calls if c.write and c.resource == "deployments"] == []


def test_a_deleted_child_of_any_kind_comes_back_at_once_not_at_the_resync(sandbox: Sandbox) -> None:
    """Every owned kind is watched: the chart's resync is 120 s, each child must be back well before."""
    revision = deploy(sandbox)["stableRevision"]
    for api_version, kind, name in (("autoscaling/v2", "HorizontalPodAutoscaler", NAME),
                                    ("policy/v1", "PodDisruptionBudget", NAME),
                                    ("v1", "Service", NAME), ("v1", "Service", revision)):
        old = sandbox.kube.get(api_version, kind, sandbox.namespace, name)
        assert old is not None
        sandbox.kube.delete(api_version, kind, sandbox.namespace, name)

        def recreated(api_version: str = api_version, kind: str = kind, name: str = name,
                      uid: str = old["metadata"]["uid"]) -> bool:
            live = sandbox.kube.get(api_version, kind, sandbox.namespace, name)
            return live is not None and live["metadata"]["uid"] != uid

        wait_until(recreated, timeout=20, message=f"{kind} {name} recreated after its deletion")


def test_it_carries_no_finalizer_and_its_deletion_is_the_garbage_collectors_alone(
        sandbox: Sandbox, cluster: LocalCluster) -> None:
    created = mark(cluster)
    deploy(sandbox)
    assert not sandbox.get(NAME)["metadata"].get("finalizers")  # type: ignore[index]
    # Nothing but the status subresource is ever written on it: no finalizer (kopf's daemon has none).
    assert count(operator_calls(cluster, sandbox.namespace, created), "patch", "modeldeployments") == 0
    since = mark(cluster)
    sandbox.delete(NAME)
    assert sandbox.get(NAME) is None  # gone with the DELETE itself: nothing holds it
    wait_until(lambda: not any(children(sandbox).values()) and not sandbox.pods(NAME), timeout=60,
               message="children and pods gone")
    calls = operator_calls(cluster, sandbox.namespace, since)
    assert [c for c in calls if c.write] == [], calls  # the children went with the real GC


def test_without_the_operator_the_garbage_collector_removes_the_children(
        bare_sandbox: Sandbox, cluster: LocalCluster) -> None:
    sb = bare_sandbox
    with sb.run_operator():
        deploy(sb)
    since = mark(cluster)
    sb.delete(NAME)  # as after an uninstall: no operator, and no finalizer left behind to hold it
    wait_until(lambda: sb.get(NAME) is None and not any(children(sb).values()) and not sb.pods(NAME),
               timeout=60, message="the garbage collector removed the children")
    assert operator_calls(cluster, sb.namespace, since) == []


def test_an_invalid_spec_stalls_with_the_field_named_and_no_hot_loop(
        sandbox: Sandbox, cluster: LocalCluster) -> None:
    artifact = sandbox.artifacts.linear(f"{NAME}/1/model.onnx")
    # Valid for the CRD; only the operator can add up durations against the deadline.
    rollout = {"strategy": "canary", "steps": [{"weight": 50, "pause": "10m"}], "progressDeadlineSeconds": 60}
    sandbox.apply(model_deployment(NAME, artifact, rollout=rollout))
    status = sandbox.wait_for(NAME, lambda s: condition(s, "Stalled")[0] == "True", 30, "Stalled")
    assert condition(status, "Stalled") == ("True", "InvalidSpec") and status["phase"] == "Failed"
    assert "spec.rollout.progressDeadlineSeconds" in status["message"]
    assert children(sandbox)[CHILDREN[0]] == []
    sandbox.wait_for_events(NAME, "InvalidSpec")  # sent after the status write that records it
    assert [e["reason"] for e in sandbox.events(NAME)] == ["InvalidSpec"]
    since = mark(cluster)
    # A second ModelDeployment going Healthy is the clock: a hot loop would read the first meanwhile.
    other = sandbox.artifacts.linear("other/1/model.onnx")
    sandbox.apply(model_deployment("other", other))
    sandbox.wait_for_phase("other", "Healthy", 90)
    reads = [c for c in operator_calls(cluster, sandbox.namespace, since) if c.name == NAME]
    assert len(reads) <= 2, reads
    fixed = {**rollout, "steps": [{"weight": 50, "pause": "10s"}]}
    sandbox.apply(model_deployment(NAME, artifact, rollout=fixed))
    wait_until(lambda: children(sandbox)[CHILDREN[0]], timeout=30, message="the fixed spec rolls out")


def test_the_operator_exports_its_own_metrics(sandbox: Sandbox) -> None:
    deploy(sandbox)
    operator = sandbox.operator
    assert operator is not None

    def promoted() -> str:
        text = operator.metrics()
        return text if 'outcome="promoted"' in text else ""

    text = wait_until(promoted, timeout=10, message="the promotion counted")
    assert re.search(r'modeldeploy_reconciles_total\{result="ok"\} [1-9]', text)
    # Created labelled canary, relabelled stable on promotion (a stable label means "it served").
    assert 'modeldeploy_api_writes_total{kind="Deployment"} 2.0' in text
    assert f'modeldeploy_phase{{name="{NAME}",namespace="{sandbox.namespace}",phase="Healthy"}} 1.0' in text
    assert re.search(r"modeldeploy_reconcile_duration_seconds_count [1-9]", text)


def test_a_deleted_model_deployment_leaves_no_metric_series(sandbox: Sandbox) -> None:
    deploy(sandbox)
    operator = sandbox.operator
    assert operator is not None
    series = f'name="{NAME}",namespace="{sandbox.namespace}"'
    healthy = f"modeldeploy_phase{{{series},phase=\"Healthy\"}} 1.0"
    wait_until(lambda: healthy in operator.metrics(), timeout=10, message="the Healthy series (set after status)")
    sandbox.kube.delete(API_VERSION, KIND, sandbox.namespace, NAME)
    wait_until(lambda: series not in operator.metrics(), timeout=30,
               message="the phase and weight series of the deleted ModelDeployment removed")
