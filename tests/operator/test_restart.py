"""An operator killed with SIGKILL (no cleanup at all) and started again resumes from status alone."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from modeldeploy.cli.kubectl import send_intent
from modeldeploy_sandbox.cluster import LocalCluster
from modeldeploy_sandbox.operator_process import OperatorProcess
from modeldeploy_sandbox.sandbox import API_VERSION, KIND, Sandbox, model_deployment
from modeldeploy_sandbox.waiting import wait_until

from .audit import forbidden, mark, operator_calls, settled

NAME = "resnet"
LEGACY_FINALIZER = "kopf.zalando.org/KopfFinalizerMarker"  # kopf's default, as the chart ran it
KINDS = (("apps/v1", "Deployment"), ("v1", "Service"), ("autoscaling/v2", "HorizontalPodAutoscaler"))


@pytest.fixture(autouse=True)
def no_forbidden(cluster: LocalCluster) -> Iterator[None]:
    """The operator runs with the chart's RBAC: no request of it may be refused with 403."""
    since = mark(cluster)
    yield
    assert forbidden(cluster, since) == []


def canary(sb: Sandbox, version: int) -> dict[str, Any]:
    artifact = sb.artifacts.linear(f"{NAME}/{version}/model.onnx", seed=version)
    rollout = {"strategy": "canary", "steps": [{"weight": 50, "pause": "1h"}], "progressDeadlineSeconds": 7200,
               "scaleDownDelaySeconds": 0}
    return model_deployment(NAME, artifact, rollout=rollout)


def uids(sb: Sandbox) -> dict[str, str]:
    return {f"{kind}/{o['metadata']['name']}": o["metadata"]["uid"] for api, kind in KINDS
            for o in sb.kube.list(api, kind, sb.namespace, {"modeldeploy.dev/name": NAME})}


def reconciled_once(operator: OperatorProcess) -> bool:
    found = re.search(r'^modeldeploy_reconciles_total\{result="ok"\} (\S+)$', operator.metrics(), re.MULTILINE)
    return found is not None and float(found.group(1)) >= 1


def test_a_killed_operator_resumes_a_canary_step_from_status(bare_sandbox: Sandbox, cluster: LocalCluster) -> None:
    sb = bare_sandbox
    with sb.run_operator() as first:
        generation = sb.apply(canary(sb, 1))["metadata"]["generation"]
        stable = sb.wait_for(NAME, lambda s: settled(s, generation), 90, "v1 Healthy")["stableRevision"]
        sb.apply(canary(sb, 2))
        before = sb.wait_for(NAME, lambda s: (s.get("rollout") or {}).get("stage") == "Steps"
                             and s.get("canaryWeight") == 50, 90, "the canary at 50%")
        children = uids(sb)
        first.kill()
    since = mark(cluster)
    with sb.run_operator() as second:
        wait_until(lambda: reconciled_once(second), timeout=30, message="a reconcile by the new operator")
        after = sb.status(NAME)
        # Same rollout clock (the step's 1 h pause is not restarted), same weight, same objects.
        assert after["rollout"] == before["rollout"] and after["canaryWeight"] == 50
        assert (after["stableRevision"], after["phase"]) == (stable, "Progressing")
        assert uids(sb) == children
        writes = [(c.verb, c.resource) for c in operator_calls(cluster, sb.namespace, since) if c.write]
        assert not [w for w in writes if w[0] in ("create", "delete")], writes  # no object, no Event again
        send_intent(sb.kube, sb.namespace, NAME, "promote")
        status = sb.wait_for(NAME, lambda s: s.get("phase") == "Healthy", 60, "promotion by the new operator")
    assert status["stableRevision"] == before["rollout"]["revision"] != stable
    wait_until(lambda: [d["metadata"]["name"] for d in sb.deployments(NAME)] == [status["stableRevision"]],
               timeout=30, message="the old revision removed")


def test_the_finalizer_an_older_operator_left_is_removed_and_deletion_needs_no_operator(
        bare_sandbox: Sandbox, cluster: LocalCluster) -> None:
    """Operators before this one had kopf put its finalizer on every ModelDeployment: after an upgrade kopf
    takes it off (no handler requires it), and from then on a deletion needs no running operator."""
    sb = bare_sandbox
    with sb.run_operator() as first:
        generation = sb.apply(canary(sb, 1))["metadata"]["generation"]
        sb.wait_for(NAME, lambda s: settled(s, generation), 90, "Healthy")
        first.kill()
    sb.kube.merge_patch(API_VERSION, KIND, sb.namespace, NAME, {"metadata": {"finalizers": [LEGACY_FINALIZER]}})
    since = mark(cluster)
    with sb.run_operator():
        wait_until(lambda: not (sb.get(NAME) or {}).get("metadata", {}).get("finalizers"), timeout=30,
                   message="the old finalizer removed")
    calls = operator_calls(cluster, sb.namespace, since)
    assert [c.verb for c in calls if c.write and c.resource == "modeldeployments" and not c.subresource] == [
        "patch"], calls  # that one patch, once
    sb.delete(NAME)  # the operator is stopped: nothing of it is needed any more
    wait_until(lambda: sb.get(NAME) is None and not uids(sb) and not sb.pods(NAME), timeout=60,
               message="the ModelDeployment and its children gone")


def test_an_operator_upgrade_with_a_new_image_canaries_every_model_instead_of_rolling_the_stable(
        bare_sandbox: Sandbox) -> None:
    """A revision pins the images it was created with; the operator's new ones come as a new revision."""
    sb = bare_sandbox
    with sb.run_operator():
        generation = sb.apply(canary(sb, 1))["metadata"]["generation"]
        stable = sb.wait_for(NAME, lambda s: settled(s, generation), 90, "v1 Healthy")["stableRevision"]
    before = sb.kube.get("apps/v1", "Deployment", sb.namespace, stable)
    assert before is not None
    upgraded = "ghcr.io/modeldeploy/modelserver:0.2.0"
    with sb.run_operator(env={"MODELDEPLOY_MODELSERVER_IMAGE": upgraded}):
        status = sb.wait_for(NAME, lambda s: (s.get("rollout") or {}).get("stage") == "Steps", 90,
                             "the new template rolled out as a canary")
        canary_revision = status["canaryRevision"]
        assert canary_revision != stable and status["stableRevision"] == stable
        after = sb.kube.get("apps/v1", "Deployment", sb.namespace, stable)
        assert after is not None and after["metadata"]["generation"] == before["metadata"]["generation"]
        assert after["spec"]["template"] == before["spec"]["template"]  # not rolling-updated in place
        new = sb.kube.get("apps/v1", "Deployment", sb.namespace, canary_revision)
        assert new is not None
        images = {c["image"] for c in new["spec"]["template"]["spec"]["containers"]}
        assert images == {upgraded}
