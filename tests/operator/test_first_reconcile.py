"""A new object's first reconcile waits for kopf's finalizer, on the real apiserver.

kopf patches its finalizer onto a new ModelDeployment in the cycle that starts serving it. A status
written from the object as read before that patch carries the older resourceVersion, and the
apiserver refuses it (409): a wasted write and a second reconcile for every new object. The
reconciler here runs in this process, with no operator, so the finalizer arrives when the test says.
"""

from __future__ import annotations

import pytest

from modeldeploy import reconciler as reconciler_module
from modeldeploy.kubeapi import KubeClient
from modeldeploy.reconciler import FINALIZER_WAIT_SECONDS, Context, Reconciler
from modeldeploy_sandbox.sandbox import API_VERSION, KIND, Sandbox, model_deployment

NAME = "resnet"
FINALIZER = "kopf.zalando.org/KopfFinalizerMarker"


def _deployments(admin: KubeClient, namespace: str) -> list[dict]:  # type: ignore[type-arg]
    return admin.list("apps/v1", "Deployment", namespace, {"modeldeploy.dev/name": NAME})


def test_the_first_reconcile_writes_once_the_finalizer_is_there(bare_sandbox: Sandbox, admin: KubeClient) -> None:
    sb = bare_sandbox
    sb.apply(model_deployment(NAME, sb.artifacts.linear()))
    reconciler = Reconciler(Context(kube=admin, finalizer=FINALIZER))

    waiting = reconciler.run_once(sb.namespace, NAME)
    assert waiting.result == "ok" and waiting.requeue_after is not None
    assert 0 < waiting.requeue_after <= FINALIZER_WAIT_SECONDS
    assert _deployments(admin, sb.namespace) == [] and not sb.status(NAME)  # nothing written yet

    admin.merge_patch(API_VERSION, KIND, sb.namespace, NAME, {"metadata": {"finalizers": [FINALIZER]}})
    first = reconciler.run_once(sb.namespace, NAME)
    assert first.result == "ok"  # not "conflict": the status write carried the current resourceVersion
    assert len(_deployments(admin, sb.namespace)) == 1
    assert sb.status(NAME)["observedGeneration"] == 1


def test_without_the_finalizer_the_first_reconcile_goes_on_after_the_wait(
        bare_sandbox: Sandbox, admin: KubeClient, monkeypatch: pytest.MonkeyPatch) -> None:
    sb = bare_sandbox
    sb.apply(model_deployment(NAME, sb.artifacts.linear()))
    monkeypatch.setattr(reconciler_module, "FINALIZER_WAIT_SECONDS", 0.0)
    outcome = Reconciler(Context(kube=admin, finalizer=FINALIZER)).run_once(sb.namespace, NAME)
    assert outcome.result == "ok"
    assert len(_deployments(admin, sb.namespace)) == 1 and sb.status(NAME)["observedGeneration"] == 1
