"""kopf glue: one daemon per ModelDeployment runs the reconciler; watch events only wake it.

A single loop per object means a single writer per object (no handler races), and everything it
needs lives in the API (status), so a restarted or failed-over operator carries on where it was.
Deleting a ModelDeployment needs nothing of ours: the garbage collector removes the children (their
ownerReferences), and kopf only stops the daemon before it releases its finalizer.
Run with: `kopf run -m modeldeploy.handlers --all-namespaces` (the chart adds peering and liveness).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import kopf

from .api import GROUP, PLURAL, VERSION
from .kubeapi import KubeClient, NotFound
from .metrics import forget_baselines
from .reconciler import Context, Outcome, Reconciler
from .render.labels import MANAGED_BY, MANAGED_BY_LABEL, NAME_LABEL
from .rollout.errors import backoff_seconds
from .settings import OperatorSettings
from .telemetry import OperatorMetrics
from .wakeups import (
    WakeFilter,
    child_fingerprint,
    deployment_fingerprint,
    model_deployment_fingerprint,
    pod_fingerprint,
)

logger = logging.getLogger("modeldeploy")

_state: dict[str, Any] = {"context": None, "settings": None}
_wakers: dict[tuple[str, str], asyncio.Event] = {}
_wake_filter = WakeFilter()


def use_context(context: Context | None, settings: OperatorSettings | None = None) -> None:
    """Inject the API client etc. (tests and the sandbox); None: build from the environment on startup."""
    _state["context"] = context
    _state["settings"] = settings


def _context() -> Context:
    context = _state["context"]
    if context is None:
        raise RuntimeError("operator context not configured")
    assert isinstance(context, Context)
    return context


def _wake(namespace: str | None, name: str | None) -> None:
    if namespace and name and (namespace, name) in _wakers:
        _wakers[namespace, name].set()


@kopf.on.startup()
async def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    # Our status schema is typed and has no `kopf` field: keep kopf's bookkeeping in annotations.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="modeldeploy.dev")
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix="modeldeploy.dev", key="last-handled-configuration")
    settings.posting.enabled = False  # we emit our own Events, one per transition
    settings.watching.server_timeout = 300
    operator_settings = _state["settings"] or OperatorSettings.from_env()
    _state["settings"] = operator_settings
    # Reconciles run in threads of kopf's own bounded executor, not asyncio's default one.
    settings.execution.max_workers = operator_settings.reconcile_workers
    _state["executor"] = settings.execution.executor
    if _state["context"] is None:
        kube = KubeClient.from_environment()
        context = Context(kube=kube, images=operator_settings.images, metrics=OperatorMetrics())
        if operator_settings.metrics_port:
            context.metrics.serve(operator_settings.metrics_port)
        _state["context"] = context
    if operator_settings.namespaced:
        # kopf would watch Namespace objects and stop serving one as soon as its deletion has
        # conditions, before those saying what remains appear (5 s later): nobody would then remove
        # the finalizer of its ModelDeployments and the namespace would stay Terminating forever.
        # Named namespaces need no scanning: no namespace or CRD watch, no cluster-scoped RBAC. The
        # resources are then discovered once, after this handler: wait until the CRD is served.
        settings.scanning.disabled = True
        await _wait_for_crd(_context().kube)


async def _wait_for_crd(kube: KubeClient) -> None:
    try:
        await asyncio.to_thread(kube.request, "GET", f"/apis/{GROUP}/{VERSION}")
    except NotFound:
        raise kopf.TemporaryError(f"the ModelDeployment CRD ({GROUP}/{VERSION}) is not installed yet: "
                                  "install crds/ (the Helm chart does); waiting for it", delay=10) from None


async def _in_thread(reconciler: Reconciler, namespace: str, name: str) -> Outcome:
    """One reconcile in kopf's executor. Cancelled (kopf gave up waiting), the daemon still waits for
    the thread: it ends soon, since it writes nothing once the daemon is stopped (the fence)."""
    running = asyncio.get_running_loop().run_in_executor(_state.get("executor"), reconciler.run_once, namespace, name)
    try:
        return await asyncio.shield(running)
    except asyncio.CancelledError:
        await asyncio.wait([running])
        raise


async def _sleep(waker: asyncio.Event, stopped: kopf.DaemonStopped, timeout: float) -> None:
    """Until a watch event wakes the object, the daemon is stopped, or `timeout` passes."""
    woken = asyncio.ensure_future(waker.wait())
    stopping = asyncio.ensure_future(stopped.wait())
    try:
        await asyncio.wait({woken, stopping}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in (woken, stopping):
            waiter.cancel()


@kopf.daemon(GROUP, VERSION, PLURAL, cancellation_timeout=10.0)
async def run_model_deployment(namespace: str | None, name: str, stopped: kopf.DaemonStopped, **_: Any) -> None:
    assert namespace is not None  # ModelDeployments are namespaced
    waker = _wakers.setdefault((namespace, name), asyncio.Event())
    context = _context()
    reconciler = Reconciler(context, stopped=stopped.is_set)
    settings: OperatorSettings = _state["settings"] or OperatorSettings()
    failures = 0  # consecutive failed reconciles: the back-off grows with them
    try:
        while not stopped:
            waker.clear()  # before reading: a change during the reconcile wakes the next one
            outcome = await _in_thread(reconciler, namespace, name)
            requeue = outcome.requeue_after
            if outcome.error is not None:
                # Back off, never hot: a spec change still wakes the loop at once.
                requeue = backoff_seconds(failures, outcome.error)
                failures += 1
                logger.info("reconcile %s/%s: retrying in %.0fs", namespace, name, requeue)
            elif outcome.result == "ok":
                failures = 0
            await _sleep(waker, stopped, settings.resync_seconds if requeue is None else requeue)
    finally:
        _wakers.pop((namespace, name), None)
        reason = stopped.reason
        if reason is not None and reason & kopf.DaemonStoppingReason.RESOURCE_DELETED:
            forget(context, namespace, name)


def forget(context: Context, namespace: str, name: str) -> None:
    """A deleted ModelDeployment leaves nothing in memory: metric series, wake fingerprints, baselines."""
    context.metrics.forget(namespace, name)
    _wake_filter.forget(namespace, name)
    forget_baselines(namespace, name)


@kopf.on.event(GROUP, VERSION, PLURAL)
async def wake_on_change(type: str | None, body: kopf.Body, namespace: str | None, name: str | None,
                         **_: Any) -> None:
    if _wake_filter.changed("ModelDeployment", type, dict(body), model_deployment_fingerprint(dict(body))):
        _wake(namespace, name)


@kopf.on.event("apps", "v1", "deployments", labels={MANAGED_BY_LABEL: MANAGED_BY})
async def wake_on_deployment(type: str | None, body: kopf.Body, namespace: str | None, labels: kopf.Labels,
                             **_: Any) -> None:
    if _wake_filter.changed("Deployment", type, dict(body), deployment_fingerprint(dict(body))):
        _wake(namespace, labels.get(NAME_LABEL))


@kopf.on.event("", "v1", "pods", labels={MANAGED_BY_LABEL: MANAGED_BY})
async def wake_on_pod(type: str | None, body: kopf.Body, namespace: str | None, labels: kopf.Labels,
                      **_: Any) -> None:
    # Pod failures (a digest mismatch, a crash) show on pods before their Deployment changes.
    if _wake_filter.changed("Pod", type, dict(body), pod_fingerprint(dict(body))):
        _wake(namespace, labels.get(NAME_LABEL))


async def _wake_on_child(type: str | None, body: kopf.Body, namespace: str | None, labels: kopf.Labels,
                         **_: Any) -> None:
    kind = str(body.get("kind") or "")
    if _wake_filter.changed(kind, type, dict(body), child_fingerprint(dict(body))):
        _wake(namespace, labels.get(NAME_LABEL))


# Every other owned kind, so that a deleted or edited child is put back at once, not at the resync.
# (An HTTPRoute watch starts when the Gateway API CRDs are installed; until then kopf skips it.)
for _group, _version, _plural in (("", "v1", "services"), ("autoscaling", "v2", "horizontalpodautoscalers"),
                                  ("policy", "v1", "poddisruptionbudgets"),
                                  ("gateway.networking.k8s.io", "v1", "httproutes")):
    kopf.on.event(_group, _version, _plural, id=f"wake_on_{_plural}",
                  labels={MANAGED_BY_LABEL: MANAGED_BY})(_wake_on_child)
