"""One kind's list+watch feeding a :class:`Store` (client-go's reflector, in a thread).

List, then watch from the list's resourceVersion with bookmarks; each event updates the store and is
handed to `on_event`. The server ends a watch after `server_timeout` seconds: the next one resumes
from the last version seen. A 410 Gone (the version was compacted away, as an ERROR event or an HTTP
status) relists: the store is replaced, and objects deleted while the watch was blind are reported
as DELETED then. A kind the API does not serve (the Gateway API not installed) is retried slowly.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable
from typing import Any

from ..kubeapi import KubeApiError, KubeClient, NotFound, kind_info
from .store import Obj, Store

logger = logging.getLogger("modeldeploy.cache")
EventHandler = Callable[[str, str, Obj], None]  # (kind, event type, object)
NOT_SERVED_RETRY_SECONDS = 30.0
ERROR_RETRY_SECONDS = (0.5, 10.0)  # first and largest wait after a failed list or watch


class Expired(Exception):
    """410 Gone: the resourceVersion is too old to watch from; relist."""


class Informer:
    def __init__(self, kube: KubeClient, api_version: str, kind: str, store: Store, *,
                 namespace: str | None = None, label_selector: str | None = None,
                 on_event: EventHandler | None = None, server_timeout: int = 300) -> None:
        self.kube, self.api_version, self.kind, self.store = kube, api_version, kind, store
        self.namespace, self.label_selector = namespace, label_selector
        self.on_event = on_event or (lambda kind, event_type, obj: None)
        self.server_timeout = server_timeout
        self.version: str | None = None  # where the next watch starts; None: list first
        self.synced = threading.Event()  # the first list is in the store
        self.served = True  # False while the API does not serve the kind
        self.relists = 0
        self.expirations = 0  # 410 Gone answers: each is followed by a relist
        self._errors = 0

    @property
    def path(self) -> str:
        return kind_info(self.api_version, self.kind).path(self.namespace)

    def _query(self) -> list[tuple[str, str]]:
        return [("labelSelector", self.label_selector)] if self.label_selector else []

    def relist(self) -> None:
        answer = self.kube.request("GET", self.path, query=self._query())
        items = [{"apiVersion": self.api_version, "kind": self.kind, **item} for item in answer.get("items") or []]
        version = str((answer.get("metadata") or {}).get("resourceVersion") or "") or None
        changed, gone = self.store.replace(items, self.namespace, version)
        self.version = version
        self.relists += 1
        self.served = True
        self.synced.set()
        for obj in gone:
            self.on_event(self.kind, "DELETED", obj)
        for obj in changed:
            self.on_event(self.kind, "ADDED", obj)

    def watch_once(self, stop: threading.Event) -> None:
        """One watch request from `version`, until the server ends it (or `stop`)."""
        query = [*self._query(), ("resourceVersion", self.version or ""), ("allowWatchBookmarks", "true")]
        try:
            events = self.kube.watch(self.path, query, self.server_timeout)
            for event in events:
                self._handle(event)
                self._errors = 0
                if stop.is_set():
                    return
        except KubeApiError as error:
            if error.status == 410:
                raise Expired(error.message) from error
            raise

    def _handle(self, event: dict[str, Any]) -> None:
        event_type, obj = str(event.get("type") or ""), dict(event.get("object") or {})
        if event_type == "ERROR":
            code = int(obj.get("code") or 0)
            if code == 410:
                raise Expired(str(obj.get("message") or "resourceVersion expired"))
            raise KubeApiError(code, str(obj.get("reason") or "WatchError"), str(obj.get("message") or ""), obj)
        version = (obj.get("metadata") or {}).get("resourceVersion")
        if version:
            self.version = str(version)
        if event_type == "BOOKMARK":
            return
        obj.setdefault("apiVersion", self.api_version)
        obj.setdefault("kind", self.kind)
        meta = obj.get("metadata") or {}
        if event_type == "DELETED":
            self.store.remove(str(meta.get("namespace") or ""), str(meta.get("name") or ""))
            self.on_event(self.kind, event_type, obj)
        elif self.store.upsert(obj):
            self.on_event(self.kind, event_type, obj)

    def step(self, stop: threading.Event) -> None:
        """One turn of the loop: list if needed, then watch; errors wait and come back here."""
        try:
            if self.version is None:
                self.relist()
            self.watch_once(stop)
        except Expired as expired:
            logger.info("%s watch expired (%s): relisting", self.kind, expired)
            self.expirations += 1
            self.version = None
        except NotFound as missing:
            if missing.kind_not_served:
                self.served, self.version = False, None
                stop.wait(NOT_SERVED_RETRY_SECONDS)
            else:
                self._failed(stop, missing)
        except KubeApiError as error:
            self._failed(stop, error)

    def _failed(self, stop: threading.Event, error: Exception) -> None:
        first, largest = ERROR_RETRY_SECONDS
        wait = min(largest, first * 2 ** self._errors) * random.uniform(0.8, 1.2)
        self._errors += 1
        logger.warning("%s list/watch failed (%s); again in %.1fs", self.kind, error, wait)
        stop.wait(wait)

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            self.step(stop)

    def start(self, stop: threading.Event) -> threading.Thread:
        thread = threading.Thread(target=self.run, args=(stop,), daemon=True,
                                  name=f"informer-{self.kind}-{self.namespace or 'all'}")
        thread.start()
        return thread
