"""The operator's reads from watch-fed stores; its writes to the API, and their answers into the stores.

:class:`Cache` runs one :class:`Informer` per watched kind (per namespace when the operator serves
named namespaces) over a shared :class:`Store` per kind. :class:`CachedKubeClient` is a
:class:`KubeClient` whose `get`/`list` of a watched kind read that store once it is synced, so
`observe` and `apply` cost no request; everything else goes to the API. Each write's answer goes into
the store at once (a reconcile reads its own writes); a 409 marks the object stale, so the next read
of it is a GET; a 404 on a write drops it.
"""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..kubeapi import Conflict, KubeClient, NotFound
from .informer import EventHandler, Informer
from .store import Obj, Store, matches, slim


@dataclass(frozen=True)
class WatchedKind:
    api_version: str
    kind: str
    labels: Mapping[str, str] | None = None  # only objects with these labels are watched
    index_label: str | None = None  # the label naming an object's owner, indexed for list
    label_selector: str | None = None  # a server-side selector instead of `labels` (e.g. a shard's)
    transform: Callable[[Obj], Obj] = slim  # what of each object the cache keeps

    @property
    def selector(self) -> str | None:
        return self.label_selector or ",".join(f"{k}={v}" for k, v in sorted((self.labels or {}).items())) or None


class Cache:
    def __init__(self, kube: KubeClient, kinds: Iterable[WatchedKind], namespaces: Sequence[str] | None = None,
                 on_event: EventHandler | None = None, server_timeout: int = 300) -> None:
        self.kinds = {(kind.api_version, kind.kind): kind for kind in kinds}
        self.namespaces = tuple(namespaces) if namespaces else None
        self.stores = {key: Store(kind.index_label, kind.transform) for key, kind in self.kinds.items()}
        self.informers: dict[tuple[str, str], list[Informer]] = {
            key: [Informer(kube, kind.api_version, kind.kind, self.stores[key], namespace=namespace,
                           label_selector=kind.selector, on_event=on_event, server_timeout=server_timeout)
                  for namespace in (self.namespaces or (None,))]
            for key, kind in self.kinds.items()}
        self._stop = threading.Event()

    def start(self) -> None:
        for informers in self.informers.values():
            for informer in informers:
                informer.start(self._stop)

    def stop(self) -> None:
        self._stop.set()

    def wait_synced(self, timeout: float) -> bool:
        """Until every served kind has its first list (kinds the API does not serve do not count)."""
        deadline = time.monotonic() + timeout
        for informers in self.informers.values():
            for informer in informers:
                while not informer.synced.wait(0.05):
                    if not informer.served:
                        break
                    if time.monotonic() > deadline:
                        return False
        return True

    def store_for(self, api_version: str, kind: str, namespace: str | None) -> tuple[Store, WatchedKind] | None:
        """The store that answers for `kind` in `namespace`, if it has everything there."""
        key = (api_version, kind)
        informers = self.informers.get(key)
        if informers is None or not all(informer.synced.is_set() and informer.served for informer in informers):
            return None
        if self.namespaces is not None and namespace not in self.namespaces:
            return None
        return self.stores[key], self.kinds[key]

    def relists(self) -> int:
        return sum(informer.relists for informers in self.informers.values() for informer in informers)


class CachedKubeClient(KubeClient):
    """A KubeClient (sharing the given one's connections, fence and limits) that reads from `cache`."""

    def __init__(self, base: KubeClient, cache: Cache) -> None:  # a view of `base`: no super().__init__
        self.__dict__.update(base.__dict__)
        self.cache = cache

    def get(self, api_version: str, kind: str, namespace: str | None, name: str) -> Obj | None:
        found = self.cache.store_for(api_version, kind, namespace)
        if found is None:
            return self.get_live(api_version, kind, namespace, name)
        store, watched = found
        if store.is_stale(namespace or "", name):
            live = self.get_live(api_version, kind, namespace, name)
            self._remember(store, watched, namespace or "", name, live)
            return watched.transform(live) if live is not None else None
        cached = store.get(namespace or "", name)
        return copy.deepcopy(cached) if cached is not None else None  # the store's copy stays as the API said

    def list(self, api_version: str, kind: str, namespace: str | None = None,
             label_selector: str | Mapping[str, str] | None = None) -> list[Obj]:
        found = self.cache.store_for(api_version, kind, namespace)
        if found is not None and (label_selector is None or isinstance(label_selector, Mapping)):
            store, watched = found
            selector = dict(label_selector or {})
            # The store has only the watched labels' objects: it answers only selections within them.
            if all(selector.get(key) == value for key, value in (watched.labels or {}).items()):
                return copy.deepcopy(store.list(namespace, selector))
        return super().list(api_version, kind, namespace, label_selector)

    def _remember(self, store: Store, watched: WatchedKind, namespace: str, name: str, obj: Obj | None) -> None:
        if obj is not None and matches(obj, watched.labels):
            store.upsert(obj)
        else:
            store.remove(namespace, name)

    def _written(self, api_version: str, kind: str, namespace: str | None, name: str, call: Any) -> Obj:
        found = self.cache.store_for(api_version, kind, namespace)
        try:
            result: Obj = call()
        except Conflict:
            if found is not None:
                found[0].invalidate(namespace or "", name)
            raise
        except NotFound as missing:
            if found is not None and not missing.kind_not_served:
                found[0].remove(namespace or "", name)
            raise
        if found is not None and result.get("kind") == kind:  # a status or scale answer is the object too
            self._remember(found[0], found[1], namespace or "", name, result)
        return result

    def create(self, obj: Mapping[str, Any]) -> Obj:
        meta = obj.get("metadata") or {}
        return self._written(obj["apiVersion"], obj["kind"], meta.get("namespace"), meta.get("name", ""),
                             lambda: KubeClient.create(self, obj))

    def replace(self, obj: Mapping[str, Any], subresource: str | None = None) -> Obj:
        meta = obj["metadata"]
        return self._written(obj["apiVersion"], obj["kind"], meta.get("namespace"), meta["name"],
                             lambda: KubeClient.replace(self, obj, subresource))

    def merge_patch(self, api_version: str, kind: str, namespace: str | None, name: str,
                    patch: Mapping[str, Any], subresource: str | None = None) -> Obj:
        return self._written(api_version, kind, namespace, name,
                             lambda: KubeClient.merge_patch(self, api_version, kind, namespace, name, patch,
                                                            subresource))

    def delete(self, api_version: str, kind: str, namespace: str | None, name: str,
               propagation: str = "Background") -> bool:
        found = self.cache.store_for(api_version, kind, namespace)
        if found is not None and found[0].get(namespace or "", name) is None \
                and not found[0].is_stale(namespace or "", name):
            return False  # none of ours is there (the store has every one): nothing to send
        deleted = KubeClient.delete(self, api_version, kind, namespace, name, propagation)
        # Deleted, or being deleted (finalizers): either way not a child to compare with any more.
        if found is not None:
            found[0].remove(namespace or "", name)
        return deleted
