"""The operator on the emulated API: children, status, revisions, idempotence, deletion, API faults."""

from __future__ import annotations

import time

from modeldeploy.sandbox.emulator_server import EmulatorHandle, wait_until

from .operator_harness import (
    DEPLOYMENTS,
    HPAS,
    MD,
    NAMESPACE,
    PDBS,
    SERVICES,
    condition,
    mark_ready,
    model_deployment,
    operator,
    revisions,
    status_of,
)


def _healthy(emulator: EmulatorHandle, name: str = "resnet") -> dict:  # type: ignore[type-arg]
    return wait_until(lambda: status_of(emulator, name).get("phase") == "Healthy" and status_of(emulator, name),
                      timeout=15, message=f"{name} Healthy")


def _first_revision(emulator: EmulatorHandle, name: str = "resnet") -> str:
    return wait_until(lambda: revisions(emulator, name), message="a revision Deployment")[0]


def test_create_renders_children_and_reports_status(emulator: EmulatorHandle) -> None:
    with operator(emulator):
        emulator.create(model_deployment())
        revision = _first_revision(emulator)
        progressing = wait_until(lambda: status_of(emulator).get("phase") == "Progressing" and status_of(emulator))
        assert condition(progressing, "Reconciling") == ("True", "RolloutInProgress")
        deployment = emulator.get(DEPLOYMENTS, NAMESPACE, revision)
        assert deployment is not None and deployment["spec"]["replicas"] == 2
        owner = emulator.get(MD, NAMESPACE, "resnet")
        assert owner is not None
        for resource, child in ((DEPLOYMENTS, revision), (SERVICES, revision), (SERVICES, "resnet"),
                                (HPAS, "resnet"), (PDBS, "resnet")):
            obj = wait_until(lambda r=resource, c=child: emulator.get(r, NAMESPACE, c), message=f"{resource} {child}")
            assert obj["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "modeldeploy"
            assert obj["metadata"]["ownerReferences"][0]["uid"] == owner["metadata"]["uid"]
        mark_ready(emulator, revision)
        status = _healthy(emulator)
        assert status["stableRevision"] == revision and status["observedGeneration"] == 1
        assert condition(status, "Ready") == ("True", "Serving")
        assert condition(status, "Stalled")[0] == "False"
        main = emulator.get(SERVICES, NAMESPACE, "resnet")
        assert main is not None and main["spec"]["selector"]["modeldeploy.dev/revision"] == revision
        hpa = emulator.get(HPAS, NAMESPACE, "resnet")
        assert hpa is not None and hpa["spec"]["scaleTargetRef"]["name"] == revision
        events = [e["reason"] for e in emulator.list("v1/events", NAMESPACE)]
        assert "RevisionCreated" in events and "Promoted" in events


def test_a_resync_with_nothing_changed_writes_nothing(emulator: EmulatorHandle) -> None:
    with operator(emulator, resync_seconds=0.2):
        emulator.create(model_deployment())
        mark_ready(emulator, _first_revision(emulator))
        _healthy(emulator)
        time.sleep(0.5)  # let the last transition's writes land
        emulator.reset_counts()
        time.sleep(1.5)  # several resyncs
        reads = sum(count for (verb, _), count in emulator.counts().items() if verb in ("get", "list"))
        assert reads > 0, "the operator did not resync at all"
        assert emulator.writes() == 0, emulator.counts()


def test_a_spec_update_rolls_out_a_new_revision_and_removes_the_old(emulator: EmulatorHandle) -> None:
    with operator(emulator):
        emulator.create(model_deployment())
        old = _first_revision(emulator)
        mark_ready(emulator, old)
        _healthy(emulator)
        emulator.patch(MD, NAMESPACE, "resnet", {"spec": {"model": {"uri": "https://models.example/resnet/2/model.onnx"}}})
        both = wait_until(lambda: len(revisions(emulator)) == 2 and revisions(emulator), message="new revision")
        new = next(name for name in both if name != old)
        assert status_of(emulator).get("phase") in ("Progressing", "Healthy")
        mark_ready(emulator, new)
        wait_until(lambda: revisions(emulator) == [new], message="old revision removed")
        status = _healthy(emulator)
        assert status["stableRevision"] == new and status["observedGeneration"] == 2
        main = emulator.get(SERVICES, NAMESPACE, "resnet")
        assert main is not None and main["spec"]["selector"]["modeldeploy.dev/revision"] == new
        assert emulator.get(SERVICES, NAMESPACE, old) is None
        hpa = emulator.get(HPAS, NAMESPACE, "resnet")
        assert hpa is not None and hpa["spec"]["scaleTargetRef"]["name"] == new


def test_an_autoscaling_edit_patches_the_hpa_and_makes_no_revision(emulator: EmulatorHandle) -> None:
    with operator(emulator):
        emulator.create(model_deployment())
        revision = _first_revision(emulator)
        mark_ready(emulator, revision)
        _healthy(emulator)
        emulator.patch(MD, NAMESPACE, "resnet", {"spec": {"autoscaling": {"maxReplicas": 9}}})
        wait_until(lambda: (emulator.get(HPAS, NAMESPACE, "resnet") or {}).get("spec", {}).get("maxReplicas") == 9,
                   message="HPA maxReplicas 9")
        wait_until(lambda: status_of(emulator).get("observedGeneration") == 2, message="generation 2 observed")
        assert revisions(emulator) == [revision]
        assert status_of(emulator)["phase"] == "Healthy"


def test_delete_removes_every_child_even_without_a_garbage_collector() -> None:
    from modeldeploy.sandbox.emulator_server import running_emulator

    with running_emulator(gc=False) as emulator, operator(emulator):
        emulator.create(model_deployment())
        revision = _first_revision(emulator)
        mark_ready(emulator, revision)
        _healthy(emulator)
        emulator.delete(MD, NAMESPACE, "resnet")
        wait_until(lambda: emulator.get(MD, NAMESPACE, "resnet") is None, message="finalizer released")
        for resource in (DEPLOYMENTS, SERVICES, HPAS, PDBS):
            assert emulator.list(resource, NAMESPACE) == [], resource


def test_invalid_spec_stalls_with_the_field_named_and_no_hot_loop(emulator: EmulatorHandle) -> None:
    with operator(emulator, resync_seconds=300):
        bad = model_deployment(rollout={"strategy": "canary", "steps": [{"weight": 50}, {"weight": 20}]})
        emulator.create(bad)
        status = wait_until(lambda: status_of(emulator).get("phase") == "Failed" and status_of(emulator))
        assert condition(status, "Stalled") == ("True", "InvalidSpec")
        assert "spec.rollout.steps[1].weight" in status["message"]
        assert revisions(emulator) == []
        emulator.reset_counts()
        time.sleep(1.0)
        assert sum(emulator.counts().values()) <= 2, emulator.counts()  # no retry loop
        emulator.patch(MD, NAMESPACE, "resnet", {"spec": {"rollout": {"steps": [{"weight": 20}, {"weight": 50}]}}})
        wait_until(lambda: revisions(emulator), message="fixed spec rolls out")


def test_api_faults_converge_without_duplicates(emulator: EmulatorHandle) -> None:
    emulator.fail_next("create", DEPLOYMENTS, status=500, count=2)
    emulator.fail_next("patch", f"{MD}/status", status=409, count=2)
    with operator(emulator):
        emulator.create(model_deployment())
        revision = wait_until(lambda: revisions(emulator), timeout=20, message="Deployment after 500s")[0]
        emulator.fail_next("patch", DEPLOYMENTS, status=500, count=1)
        mark_ready(emulator, revision)
        status = wait_until(lambda: status_of(emulator).get("phase") == "Healthy" and status_of(emulator),
                            timeout=20, message="Healthy after faults")
        assert revisions(emulator) == [revision]
        assert len(emulator.list(SERVICES, NAMESPACE)) == 2  # the revision's and the main one
        assert status["stableRevision"] == revision
        counts = emulator.counts()  # the faults really were hit: retries happened
        assert counts[("create", DEPLOYMENTS)] >= 3 and counts[("patch", f"{MD}/status")] >= 3, counts


def test_the_operator_exports_its_own_metrics(emulator: EmulatorHandle) -> None:
    from prometheus_client import generate_latest

    from modeldeploy.sandbox.modeldeploy_operator import running_modeldeploy

    with running_modeldeploy(emulator.url) as (_, context):
        emulator.create(model_deployment())
        mark_ready(emulator, _first_revision(emulator))
        _healthy(emulator)
        promoted = b'modeldeploy_rollouts_total{outcome="promoted"'
        wait_until(lambda: promoted in generate_latest(context.metrics.registry))
        text = generate_latest(context.metrics.registry).decode()
    assert 'modeldeploy_reconciles_total{result="ok"}' in text
    assert 'modeldeploy_api_writes_total{kind="Deployment"} 1.0' in text
    assert 'modeldeploy_phase{name="resnet",namespace="ml",phase="Healthy"} 1.0' in text
    assert "modeldeploy_reconcile_duration_seconds_count" in text
