"""The operator's engine: watch events and due timers put ModelDeployment keys on one work queue,
and a bounded pool of worker threads reconciles them.

kopf still runs one daemon per ModelDeployment, but only as its lease: while the daemon lives (this
replica is the active peer, the object is in this shard) the key is *served*; when kopf stops it
(peering, sharding) or the watch cache reports the object deleted (it has no finalizer: kopf would not
stop the daemon of a deleted object), the key is dropped and its reconciler is fenced (it writes
nothing more). The reconciles themselves never wait on kopf: a thousand objects share `workers`
threads fairly.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .api import KIND
from .cache.store import resource_version
from .reconciler import Context, Outcome, Reconciler
from .render.labels import NAME_LABEL
from .rollout.errors import backoff_seconds
from .wakeups import (
    WakeFilter,
    child_fingerprint,
    deployment_fingerprint,
    model_deployment_fingerprint,
    pod_fingerprint,
)
from .workqueue import ShutDown, WorkQueue

logger = logging.getLogger("modeldeploy")
Key = tuple[str, str]
# Deletions remembered by uid: kopf may start an object's daemon after the cache saw it deleted.
DELETIONS_KEPT = 10_000
FINGERPRINTS: dict[str, Callable[[dict[str, Any]], tuple[Any, ...]]] = {
    KIND: model_deployment_fingerprint, "Deployment": deployment_fingerprint, "Pod": pod_fingerprint}


@dataclass
class Lease:
    """A served key: the object it serves (uid), its reconciler (which keeps unsent Events between rounds)
    and whether one runs."""

    stopped: Callable[[], bool]  # kopf stops the daemon (peering, sharding, shutdown)
    uid: str = ""
    on_gone: Callable[[], None] = lambda: None  # tells the daemon its object was deleted
    version: int | None = None  # the object's resourceVersion when the daemon started
    gone: bool = False
    idle: threading.Event = field(default_factory=threading.Event)
    after: Callable[[], None] | None = None  # runs when the reconcile in flight ends (see release)
    reconciler: Reconciler = field(init=False)

    def __post_init__(self) -> None:
        self.idle.set()

    def ended(self) -> bool:
        return self.gone or self.stopped()


class Controller:
    def __init__(self, context: Context, *, workers: int, resync_seconds: float,
                 queue: WorkQueue | None = None) -> None:
        self.context, self.workers, self.resync_seconds = context, workers, resync_seconds
        self.queue = queue or WorkQueue()
        self.wake_filter = WakeFilter()
        self._leases: dict[Key, Lease] = {}
        self._deletions: OrderedDict[str, int | None] = OrderedDict()  # uid -> resourceVersion of its DELETED
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []

    # ----- leases: which keys this replica serves -----

    def serve(self, key: Key, stopped: Callable[[], bool],
              reconciler_factory: Callable[..., Reconciler] = Reconciler, *, uid: str = "",
              version: int | None = None, on_gone: Callable[[], None] = lambda: None) -> Lease:
        lease = Lease(stopped, uid, on_gone, version)
        lease.reconciler = reconciler_factory(self.context, stopped=lease.ended)
        with self._lock:
            previous = self._leases.get(key)
            self._leases[key] = lease
            # Its DELETED came first (a short-lived object, a slow kopf): it is gone already.
            lease.gone = uid in self._deletions and not _later(lease.version, self._deletions[uid])
            ended = [lease] if lease.gone else []
            if previous is not None and previous.uid != uid and not previous.gone:
                previous.gone = True  # an older object of this name, deleted: its DELETED may never come
                ended.append(previous)
        for gone in ended:
            _tell_gone(gone)
        self.queue.add(key, urgent=True)  # a new object (or one this replica just took over)
        return lease

    def release(self, key: Key, then: Callable[[], None] | None = None, lease: Lease | None = None) -> Lease | None:
        """Stop serving `key` (only if `lease` serves it, when given: a new object of the same name may have
        taken the key); `then` runs once no reconcile of it runs any more (now, or when the one in flight
        ends): what it cleans up (metric series) is not written again after it."""
        with self._lock:
            if lease is not None and self._leases.get(key) is not lease:
                return None
            lease = self._leases.pop(key, None)
            if lease is not None and then is not None and not lease.idle.is_set():
                lease.after = then
                then = None
        self.queue.cancel_timers(key)
        self.queue.forget(key)
        if then is not None:
            then()
        return lease

    def served(self) -> int:
        with self._lock:
            return len(self._leases)

    def lease(self, key: Key) -> Lease | None:
        with self._lock:
            return self._leases.get(key)

    # ----- wake-ups -----

    def on_event(self, kind: str, event_type: str, obj: dict[str, Any]) -> None:
        """A watch event of a ModelDeployment or of a child: wake its ModelDeployment if it matters."""
        meta = obj.get("metadata") or {}
        namespace = str(meta.get("namespace") or "")
        name = meta.get("name") if kind == KIND else (meta.get("labels") or {}).get(NAME_LABEL)
        if not name:
            return
        if kind == KIND and event_type == "DELETED":
            self._deleted((namespace, name), str(meta.get("uid") or ""), resource_version(obj))
        fingerprint = FINGERPRINTS.get(kind, child_fingerprint)(obj)
        if self.wake_filter.changed(kind, event_type, obj, fingerprint) and self.lease((namespace, name)):
            # A spec change or a user's intent is what a person waits for: before the children's news.
            self.queue.add((namespace, name), urgent=kind == KIND)

    def _deleted(self, key: Key, uid: str, version: int | None) -> None:
        """The served object itself left the watch (deleted, or relabelled out of this shard): fence and end
        it. Not an older object of the same name (uid), and not an object that came back (relabelled into
        the shard again) whose daemon started after this event (resourceVersion)."""
        with self._lock:
            self._deletions[uid] = version
            self._deletions.move_to_end(uid)
            while len(self._deletions) > DELETIONS_KEPT:
                self._deletions.popitem(last=False)
            lease = self._leases.get(key)
            if lease is None or lease.gone or lease.uid != uid or _later(lease.version, version):
                return
            lease.gone = True
        _tell_gone(lease)

    # ----- workers -----

    def start(self) -> None:
        for index in range(self.workers):
            thread = threading.Thread(target=self._work, daemon=True, name=f"reconcile-{index}")
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self.queue.shut_down()

    def _work(self) -> None:
        while True:
            try:
                key: Key = self.queue.get()  # type: ignore[assignment]  # only keys are ever added
            except ShutDown:
                return
            try:
                self.process(key)
            except Exception:  # never lose a worker: run_once reports its own errors
                logger.exception("worker failed on %s/%s", *key)
            finally:
                self.queue.done(key)

    def process(self, key: Key) -> Outcome | None:
        with self._lock:  # claimed atomically: a release after this waits for the reconcile (idle)
            lease = self._leases.get(key)
            if lease is None or lease.ended():
                return None  # not (or no longer) ours
            lease.idle.clear()
        try:
            outcome = lease.reconciler.run_once(*key)
        finally:
            with self._lock:
                lease.idle.set()
                after, lease.after = lease.after, None
            if after is not None:
                after()
        self._schedule(key, outcome)
        return outcome

    def _schedule(self, key: Key, outcome: Outcome) -> None:
        if self.lease(key) is None:
            return
        if outcome.error is not None:
            error = outcome.error
            delay = self.queue.add_rate_limited(key, lambda failures: backoff_seconds(failures, error))
            logger.info("reconcile %s/%s: retrying in %.0fs", *key, delay)
            return
        if outcome.result == "ok":
            self.queue.forget(key)
        self.queue.add_after(key, self.resync_seconds if outcome.requeue_after is None else outcome.requeue_after)


def _later(version: int | None, than: int | None) -> bool:
    return version is not None and than is not None and version > than


def _tell_gone(lease: Lease) -> None:
    try:
        lease.on_gone()
    except Exception:  # e.g. the daemon's loop is closed (shutting down): the watch thread must live on
        logger.exception("could not end the daemon of a deleted ModelDeployment")
