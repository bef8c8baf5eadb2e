"""kopf glue. kopf serves each ModelDeployment with a daemon (its lease: peering and sharding stop
it, and so does the object's deletion, which the watch cache reports); the reconciles run in the
controller's worker pool, woken by the cache's watches.

The operator reads its objects from watch-fed stores (modeldeploy.cache), so a quiet object costs no
request; one work queue and `MODELDEPLOY_RECONCILE_WORKERS` threads serve every object fairly
(modeldeploy.controller). Deleting a ModelDeployment needs nothing of ours: the garbage collector
removes the children (their ownerReferences). So it carries no finalizer (see `_without_finalizer`).
Run with: `kopf run -m modeldeploy.handlers --all-namespaces` (the chart adds peering and liveness).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable, Mapping
from typing import Any

import kopf

from .api import API_VERSION, GROUP, KIND, PLURAL, VERSION
from .cache import Cache, CachedKubeClient, WatchedKind
from .cache.store import resource_version, slim_pod
from .controller import Controller, Key, Lease
from .kubeapi import KubeClient, NotFound
from .metrics import forget_baselines
from .ratelimit import RequestLimiter
from .reconciler import Context, Reconciler
from .render.labels import MANAGED_BY, MANAGED_BY_LABEL, NAME_LABEL
from .settings import OperatorSettings
from .sharding import shard_from_env
from .telemetry import OperatorMetrics

logger = logging.getLogger("modeldeploy")
SHARD = shard_from_env()
CACHE_SYNC_TIMEOUT_SECONDS = 120.0

_state: dict[str, Any] = {"context": None, "settings": None, "controller": None, "cache": None}


def watched_kinds(shard_selector: str | None) -> list[WatchedKind]:
    """The ModelDeployments (of this shard) and every kind of child, by the labels the operator puts on them."""
    owned = {MANAGED_BY_LABEL: MANAGED_BY}
    return [WatchedKind(API_VERSION, KIND, label_selector=shard_selector),
            WatchedKind("v1", "Pod", owned, NAME_LABEL, transform=slim_pod),
            *(WatchedKind(api_version, kind, owned, NAME_LABEL) for api_version, kind in (
                ("apps/v1", "Deployment"), ("v1", "Service"),
                ("autoscaling/v2", "HorizontalPodAutoscaler"), ("policy/v1", "PodDisruptionBudget"),
                ("gateway.networking.k8s.io/v1", "HTTPRoute"), ("networking.k8s.io/v1", "NetworkPolicy")))]


def use_context(context: Context | None, settings: OperatorSettings | None = None) -> None:
    """Inject the API client etc. (tests); None: build from the environment on startup."""
    if _state["controller"] is not None:
        _state["controller"].stop()
    _state.update(context=context, settings=settings, controller=None, cache=None)


def _context() -> Context:
    context = _state["context"]
    if context is None:
        raise RuntimeError("operator context not configured")
    assert isinstance(context, Context)
    return context


def _settings() -> OperatorSettings:
    settings = _state["settings"]
    return settings if isinstance(settings, OperatorSettings) else OperatorSettings()


def _controller() -> Controller:
    """The controller (started on first use when a test injected a context without kopf's startup)."""
    controller = _state["controller"]
    if controller is None:
        settings = _settings()
        controller = Controller(_context(), workers=settings.reconcile_workers, resync_seconds=settings.resync_seconds)
        controller.start()
        _state["controller"] = controller
    assert isinstance(controller, Controller)
    return controller


@kopf.on.startup()
async def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    # Our status schema is typed and has no `kopf` field: keep kopf's bookkeeping in annotations.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="modeldeploy.dev")
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix="modeldeploy.dev", key="last-handled-configuration")
    settings.posting.enabled = False  # we emit our own Events, one per transition
    settings.watching.server_timeout = 300
    # kopf watches only this shard's ModelDeployments (server-side), as the cache does: its daemons are
    # this shard's leases, and a relabelled object leaves one shard's watches for the other's.
    SHARD.configure_kopf(settings, GROUP, PLURAL)
    operator_settings = _state["settings"] or OperatorSettings.from_env()
    _state["settings"] = operator_settings
    if operator_settings.namespaced:
        # kopf would watch Namespace objects and stop serving one as soon as its deletion has
        # conditions, before those saying what remains appear (5 s later): an object that still has the
        # finalizer an older operator gave it would then keep the namespace Terminating forever.
        # Named namespaces need no scanning: no namespace or CRD watch, no cluster-scoped RBAC. The
        # resources are then discovered once, after this handler: wait until the CRD is served.
        settings.scanning.disabled = True
    if _state["context"] is None:
        if operator_settings.namespaced and not operator_settings.namespaces:
            raise kopf.PermanentError("MODELDEPLOY_NAMESPACED is set but MODELDEPLOY_WATCH_NAMESPACES is empty: "
                                      "name the namespaces of --namespace there too (the chart sets both)")
        metrics = OperatorMetrics()
        limiter = RequestLimiter(operator_settings.api_qps, operator_settings.api_burst)
        kube = KubeClient.from_environment().limited(limiter, metrics.api_requests_observer())
        if operator_settings.namespaced:
            await _wait_for_crd(kube)
        cache = Cache(kube, watched_kinds(SHARD.label_selector()),
                      operator_settings.namespaces or None, on_event=lambda *event: _on_event(*event))
        context = Context(kube=CachedKubeClient(kube, cache), images=operator_settings.images, metrics=metrics,
                          owns=SHARD.owns)
        _state.update(context=context, cache=cache)
        cache.start()
        if not await asyncio.to_thread(cache.wait_synced, CACHE_SYNC_TIMEOUT_SECONDS):
            raise kopf.PermanentError("the watch caches did not sync: see the log for the list/watch errors")
        controller = _controller()
        metrics.watch_engine(queue=controller.queue, cache=cache, served=controller.served,
                             throttled=lambda: limiter.waited_seconds)
        if operator_settings.metrics_port:
            metrics.serve(operator_settings.metrics_port)
    elif operator_settings.namespaced:
        await _wait_for_crd(_context().kube)


def _on_event(kind: str, event_type: str, obj: dict[str, Any]) -> None:
    controller = _state["controller"]
    if controller is not None:
        controller.on_event(kind, event_type, obj)


@kopf.on.cleanup()
async def shut_down(**_: Any) -> None:
    controller, cache = _state["controller"], _state["cache"]
    if controller is not None:
        controller.stop()
    if cache is not None:
        cache.stop()


async def _wait_for_crd(kube: KubeClient) -> None:
    try:
        await asyncio.to_thread(kube.request, "GET", f"/apis/{GROUP}/{VERSION}")
    except NotFound:
        raise kopf.TemporaryError(f"the ModelDeployment CRD ({GROUP}/{VERSION}) is not installed yet: "
                                  "install crds/ (the Helm chart does); waiting for it", delay=10) from None


async def _until_idle(lease: Lease) -> None:
    """A reconcile of a released key may still run in a worker: it writes nothing (the fence), and the
    daemon waits for it to end (so kopf's stop means no reconcile runs). Shielded: a cancelled daemon waits
    too."""
    waiting = asyncio.ensure_future(asyncio.to_thread(lease.idle.wait))
    try:
        await asyncio.shield(waiting)
    except asyncio.CancelledError:
        await asyncio.wait([waiting])
        raise


@kopf.daemon(GROUP, VERSION, PLURAL, cancellation_timeout=10.0, **SHARD.kopf_filters())
async def run_model_deployment(namespace: str | None, name: str, stopped: kopf.DaemonStopped, uid: str | None = None,
                               meta: Mapping[str, Any] | None = None, **_: Any) -> None:
    """The object's lease: served by the worker pool from now until kopf stops this daemon or the object
    is deleted."""
    assert namespace is not None  # ModelDeployments are namespaced
    key: Key = (namespace, name)
    controller = _controller()
    deleted = asyncio.Event()
    loop = asyncio.get_running_loop()

    def on_gone() -> None:  # called from the cache's watch thread
        loop.call_soon_threadsafe(deleted.set)

    lease = controller.serve(key, stopped.is_set, Reconciler, uid=uid or "", on_gone=on_gone,
                             version=resource_version({"metadata": meta or {}}))
    waits = [asyncio.ensure_future(stopped.wait()), asyncio.ensure_future(deleted.wait())]
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        # No await before the release: kopf may cancel a stopping daemon at any await.
        for waiting in waits:
            waiting.cancel()
        reason = stopped.reason
        gone = lease.gone or (reason is not None and bool(reason & kopf.DaemonStoppingReason.RESOURCE_DELETED))
        controller.release(key, then=(lambda: forget(controller, namespace, name)) if gone else None, lease=lease)
        await _until_idle(lease)


def _without_finalizer(daemon: Callable[..., Any]) -> None:
    """kopf gives every daemon a finalizer (`kopf.daemon` hard-codes requires_finalizer=True, kopf 1.45), to
    stop it before the object goes. Ours needs none: the garbage collector deletes the children, and the
    cache's DELETED event ends the daemon. Without it a new object costs one write less, a deletion is the
    apiserver's alone (no operator needed, none running included), and kopf itself removes the finalizer
    an older operator put on (its "no handler requires it" path). kopf has no public switch for this: the
    registered handler is replaced by the same one with requires_finalizer=False (kopf is pinned, 1.45.*,
    and tests/operator/test_children.py fails if a finalizer appears)."""
    spawning = kopf.get_default_registry()._spawning
    ours = [handler for handler in spawning._handlers if getattr(handler, "fn", None) is daemon]
    if len(ours) != 1 or not hasattr(ours[0], "requires_finalizer"):  # kopf changed inside: say so, loudly
        raise RuntimeError(f"cannot register the ModelDeployment daemon without a finalizer: {ours!r}")
    spawning._handlers = [dataclasses.replace(handler, requires_finalizer=False) if handler is ours[0] else handler
                          for handler in spawning._handlers]


_without_finalizer(run_model_deployment)


def forget(controller: Controller, namespace: str, name: str) -> None:
    """A deleted ModelDeployment leaves nothing in memory: metric series, wake fingerprints, baselines."""
    controller.context.metrics.forget(namespace, name)
    controller.wake_filter.forget(namespace, name)
    forget_baselines(namespace, name)
