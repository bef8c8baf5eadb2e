"""The per-object daemon's lifecycle: it stops when told, never leaves a writing thread behind, and a
stopped reconcile writes nothing (the fence). Against the real apiserver, without kopf's reactor."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
from kopf._cogs.aiokits.aioenums import FlagSetter  # the flag kopf hands every daemon as `stopped`

from modeldeploy import handlers
from modeldeploy.api import KIND
from modeldeploy.kubeapi import Fenced, KubeClient
from modeldeploy.reconciler import Context, Outcome
from modeldeploy.settings import OperatorSettings
from modeldeploy.telemetry import OperatorMetrics
from modeldeploy_sandbox.sandbox import Sandbox

from .test_kubeapi import deployment

pytestmark = pytest.mark.timeout(60)


def test_a_fenced_client_reads_but_sends_no_write(bare_sandbox: Sandbox) -> None:
    sb = bare_sandbox
    stopped = threading.Event()
    fenced = sb.kube.fenced(stopped.is_set)
    fenced.create(deployment("before", namespace=sb.namespace))
    stopped.set()
    assert fenced.get("apps/v1", "Deployment", sb.namespace, "before") is not None
    with pytest.raises(Fenced, match=r"POST \S+ not sent"):
        fenced.create(deployment("after", namespace=sb.namespace))
    with pytest.raises(Fenced):
        fenced.delete("apps/v1", "Deployment", sb.namespace, "before")
    assert sb.kube.get("apps/v1", "Deployment", sb.namespace, "after") is None
    assert sb.kube.get("apps/v1", "Deployment", sb.namespace, "before") is not None
    sb.kube.create(deployment("unfenced", namespace=sb.namespace))  # the shared client is not fenced


@pytest.fixture()
def daemon_context(admin: KubeClient) -> Any:
    handlers.use_context(Context(kube=admin, metrics=OperatorMetrics()), OperatorSettings(resync_seconds=300))
    yield
    handlers.use_context(None)


def test_the_daemon_serves_its_key_until_stopped(daemon_context: None) -> None:
    async def scenario() -> None:
        flag: FlagSetter[Any] = FlagSetter()
        # No such object: the reconcile ends at once and the key waits for its 300 s resync.
        task = asyncio.create_task(handlers.run_model_deployment(
            namespace="default", name="absent", stopped=flag.async_waiter))
        controller = handlers._controller()
        while controller.lease(("default", "absent")) is None:  # the daemon took its lease
            await asyncio.sleep(0.01)
        flag.set()
        await asyncio.wait_for(task, timeout=5)  # not 300 s, and not by cancellation
        assert controller.lease(("default", "absent")) is None
        assert controller.served() == 0

    asyncio.run(scenario())


def test_a_cancelled_daemon_waits_for_its_running_reconcile(daemon_context: None,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    entered, release, finished = threading.Event(), threading.Event(), threading.Event()

    class Blocking:
        def __init__(self, context: Context, stopped: Any = None) -> None:
            pass

        def run_once(self, namespace: str, name: str) -> Outcome:
            entered.set()
            release.wait(30)
            finished.set()
            return Outcome("ok", None)

    monkeypatch.setattr(handlers, "Reconciler", Blocking)

    async def scenario() -> None:
        flag: FlagSetter[Any] = FlagSetter()
        task = asyncio.create_task(handlers.run_model_deployment(
            namespace="default", name="busy", stopped=flag.async_waiter))
        await asyncio.to_thread(entered.wait, 10)
        task.cancel()  # kopf's cancellation_timeout ran out
        done, _ = await asyncio.wait([task], timeout=0.5)
        assert not done, "the daemon ended while its reconcile was still running"
        release.set()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert finished.is_set()  # the daemon ended only after the reconcile did

    asyncio.run(scenario())


def test_the_daemon_ends_when_the_watch_cache_reports_its_object_deleted(
        daemon_context: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """No finalizer holds a ModelDeployment, so kopf never stops the daemon of a deleted one: the cache's
    DELETED event (of that very object, by uid) ends it, and what it left in memory is forgotten."""
    forgotten: list[tuple[str, str]] = []
    monkeypatch.setattr(handlers, "forget", lambda controller, namespace, name: forgotten.append((namespace, name)))

    def deleted(uid: str) -> None:
        handlers._controller().on_event(KIND, "DELETED", {"metadata": {"namespace": "default", "name": "gone",
                                                                       "uid": uid}})

    async def scenario() -> None:
        flag: FlagSetter[Any] = FlagSetter()
        task = asyncio.create_task(handlers.run_model_deployment(
            namespace="default", name="gone", uid="uid-2", stopped=flag.async_waiter))
        controller = handlers._controller()
        while controller.lease(("default", "gone")) is None:
            await asyncio.sleep(0.01)
        lease = controller.lease(("default", "gone"))
        assert lease is not None
        deleted("uid-1")  # an older object of the same name: not this one
        assert not lease.gone and not task.done()
        deleted("uid-2")
        assert lease.gone and lease.ended()  # fenced at once: nothing more is written for it
        await asyncio.wait_for(task, timeout=5)  # without kopf stopping it
        assert controller.lease(("default", "gone")) is None and forgotten == [("default", "gone")]

    asyncio.run(scenario())
