"""Watch events wake a reconcile only when something the planner reads changed."""

from __future__ import annotations

from modeldeploy.wakeups import WakeFilter, deployment_fingerprint, model_deployment_fingerprint, pod_fingerprint


def md(generation: int, status: dict | None = None) -> dict:  # type: ignore[type-arg]
    return {"metadata": {"name": "m", "namespace": "ml", "generation": generation}, "status": status or {}}


def test_own_status_writes_do_not_wake_but_spec_changes_and_intents_do() -> None:
    wake = WakeFilter()
    seen = lambda body, kind="MD", event="MODIFIED": wake.changed(  # noqa: E731
        kind, event, body, model_deployment_fingerprint(body))
    assert seen(md(1)) is True  # first sight
    assert seen(md(1, {"phase": "Healthy", "conditions": [{"type": "Ready"}]})) is False  # our status write
    assert seen(md(2, {"phase": "Healthy"})) is True  # a spec change
    assert seen(md(2, {"phase": "Healthy", "intent": {"action": "pause"}})) is True  # an intent
    assert seen(md(2, {"phase": "Healthy", "intent": {"action": "pause"}})) is False
    finalized = md(2, {"phase": "Healthy", "intent": {"action": "pause"}})
    finalized["metadata"]["finalizers"] = ["kopf.zalando.org/KopfFinalizerMarker"]
    assert seen(finalized) is False  # a finalizer (an older operator's, being removed) is no news
    assert seen(md(2), event="DELETED") is True


def test_deployments_and_pods_wake_on_readiness_and_container_state_only() -> None:
    wake = WakeFilter()
    deployment = {"metadata": {"name": "d", "namespace": "ml", "annotations": {"a": "1"}},
                  "spec": {"replicas": 2}, "status": {"readyReplicas": 1}}
    assert wake.changed("Deployment", None, deployment, deployment_fingerprint(deployment)) is True
    relabelled = {**deployment, "metadata": {**deployment["metadata"], "labels": {"role": "stable"}}}
    assert wake.changed("Deployment", "MODIFIED", relabelled, deployment_fingerprint(relabelled)) is False
    ready = {**deployment, "status": {"readyReplicas": 2}}
    assert wake.changed("Deployment", "MODIFIED", ready, deployment_fingerprint(ready)) is True
    pod = {"metadata": {"name": "p", "namespace": "ml"}, "status": {"phase": "Pending"}}
    crashed = {"metadata": pod["metadata"], "status": {"phase": "Pending", "initContainerStatuses": [
        {"name": "fetch", "state": {"terminated": {"exitCode": 3}}, "restartCount": 0}]}}
    assert wake.changed("Pod", None, pod, pod_fingerprint(pod)) is True
    assert wake.changed("Pod", "MODIFIED", crashed, pod_fingerprint(crashed)) is True
    assert wake.changed("Pod", "MODIFIED", crashed, pod_fingerprint(crashed)) is False


def test_a_deleted_model_deployment_leaves_no_fingerprints() -> None:
    from modeldeploy.wakeups import WakeFilter, child_fingerprint

    wake = WakeFilter()
    labels = {"modeldeploy.dev/name": "resnet"}
    children = [{"kind": kind, "metadata": {"namespace": "ml", "name": name, "labels": labels}, "spec": {}}
                for kind, name in (("Service", "resnet"), ("HorizontalPodAutoscaler", "resnet"))]
    other = {"kind": "Service", "metadata": {"namespace": "ml", "name": "bert", "labels": {
        "modeldeploy.dev/name": "bert"}}, "spec": {}}
    for body in [*children, other]:
        assert wake.changed(str(body["kind"]), "ADDED", body, child_fingerprint(body))
    assert wake.changed("ModelDeployment", "ADDED", {"metadata": {"namespace": "ml", "name": "resnet"}}, (1,))
    assert len(wake) == 4
    wake.forget("ml", "resnet")
    assert len(wake) == 1  # only bert's Service


def test_a_child_relabelled_to_another_model_deployment_is_forgotten_with_its_new_owner() -> None:
    from modeldeploy.wakeups import WakeFilter, child_fingerprint

    wake = WakeFilter()
    service = {"kind": "Service", "metadata": {"namespace": "ml", "name": "shared",
                                               "labels": {"modeldeploy.dev/name": "resnet"}}, "spec": {}}
    assert wake.changed("Service", "ADDED", service, child_fingerprint(service))
    service["metadata"]["labels"] = {"modeldeploy.dev/name": "bert"}  # type: ignore[index]
    service["spec"] = {"ports": []}
    assert wake.changed("Service", "MODIFIED", service, child_fingerprint(service))
    wake.forget("ml", "resnet")
    assert len(wake) == 1  # bert's now
    wake.forget("ml", "bert")
    assert len(wake) == 0



def test_a_child_whose_owner_label_is_removed_is_no_longer_its_owners() -> None:
    from modeldeploy.wakeups import WakeFilter, child_fingerprint

    wake = WakeFilter()
    service = {"kind": "Service", "metadata": {"namespace": "ml", "name": "shared",
                                               "labels": {"modeldeploy.dev/name": "resnet"}}, "spec": {}}
    assert wake.changed("Service", "ADDED", service, child_fingerprint(service))
    service["metadata"]["labels"] = {}  # type: ignore[index]
    service["spec"] = {"ports": []}
    assert wake.changed("Service", "MODIFIED", service, child_fingerprint(service))
    wake.forget("ml", "resnet")
    assert len(wake) == 1  # not resnet's any more: only its own DELETED drops it
