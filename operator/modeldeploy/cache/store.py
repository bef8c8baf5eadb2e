"""An indexed, thread-safe store of the objects of one kind, as the API last showed them.

Objects are keyed by (namespace, name) and indexed by the ModelDeployment that owns them (the
`app.kubernetes.io/instance`-style name label every child carries), so `observe` reads one object's
children without a scan. A write's answer and a watch event may arrive in either order: an object
only replaces one with an older resourceVersion (they are etcd revisions, integers in practice;
anything else is taken as newer, as client-go does).
"""

from __future__ import annotations

import builtins
import sys
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any

Obj = dict[str, Any]
Key = tuple[str, str]


# Big fields no reconcile reads: managedFields (server-side apply bookkeeping, often the largest part
# of an object) and whole-object copies in annotations. Dropped from the cache, as client-go's
# informers' TransformFunc does, so a thousand objects fit in the operator's memory.
_DROPPED_ANNOTATIONS = ("kubectl.kubernetes.io/last-applied-configuration",
                        "modeldeploy.dev/last-handled-configuration")


def slim(obj: Obj) -> Obj:
    meta = obj.get("metadata")
    if not isinstance(meta, dict) or not ("managedFields" in meta or any(
            key in (meta.get("annotations") or {}) for key in _DROPPED_ANNOTATIONS)):
        return obj
    meta = {key: value for key, value in meta.items() if key != "managedFields"}
    if meta.get("annotations"):
        meta["annotations"] = {key: value for key, value in meta["annotations"].items()
                               if key not in _DROPPED_ANNOTATIONS}
    return {**obj, "metadata": meta}


def compact(value: Any) -> Any:
    """The same object with its keys and short strings interned: thousands of cached objects share one
    copy of "metadata", "app.kubernetes.io/managed-by", "TCP"... (halves the cache's memory)."""
    if isinstance(value, dict):
        return {sys.intern(key): compact(item) for key, item in value.items()}
    if isinstance(value, list):
        return [compact(item) for item in value]
    if isinstance(value, str) and len(value) <= 64:
        return sys.intern(value)
    return value


def slim_pod(obj: Obj) -> Obj:
    """A pod as the operator reads it: metadata, status, and which containers ask for what (GPUs).
    Its volumes, probes, env and the rest of its spec are the Deployment's, which is cached whole."""
    spec = obj.get("spec") or {}
    containers = [{"name": c.get("name"), "resources": c.get("resources") or {}} for c in spec.get("containers") or []]
    return {**slim(obj), "spec": {"nodeName": spec.get("nodeName"), "containers": containers}}


def object_key(obj: Mapping[str, Any]) -> Key:
    meta = obj.get("metadata") or {}
    return str(meta.get("namespace") or ""), str(meta.get("name") or "")


def resource_version(obj: Mapping[str, Any]) -> int | None:
    """An object's resourceVersion as a number (etcd's revision), None if it has none."""
    raw = (obj.get("metadata") or {}).get("resourceVersion")
    try:
        return int(raw) if raw is not None else None
    except (TypeError, ValueError):
        return None


def newer(candidate: Mapping[str, Any], current: Mapping[str, Any] | None) -> bool:
    if current is None:
        return True
    new, old = resource_version(candidate), resource_version(current)
    return new is None or old is None or new >= old


def matches(obj: Mapping[str, Any], selector: Mapping[str, str] | None) -> bool:
    labels = (obj.get("metadata") or {}).get("labels") or {}
    return all(labels.get(key) == value for key, value in (selector or {}).items())


class Store:
    def __init__(self, index_label: str | None = None, transform: Callable[[Obj], Obj] = slim) -> None:
        self._transform = transform  # what of an object is kept
        self._lock = threading.Lock()
        self._objects: dict[Key, Obj] = {}
        self._index_label = index_label
        self._by_owner: dict[tuple[str, str], set[str]] = {}  # (namespace, owner name) -> object names
        self._stale: set[Key] = set()  # a write was refused as stale: read it from the API once

    def __len__(self) -> int:
        with self._lock:
            return len(self._objects)

    def _owner(self, obj: Mapping[str, Any]) -> str | None:
        if self._index_label is None:
            return None
        value = ((obj.get("metadata") or {}).get("labels") or {}).get(self._index_label)
        return str(value) if value is not None else None

    def _put(self, key: Key, obj: Obj) -> None:
        old = self._objects.get(key)
        if old is not None:
            self._unindex(key, old)
        self._objects[key] = obj
        owner = self._owner(obj)
        if owner is not None:
            self._by_owner.setdefault((key[0], owner), set()).add(key[1])

    def _unindex(self, key: Key, obj: Obj) -> None:
        owner = self._owner(obj)
        if owner is not None:
            names = self._by_owner.get((key[0], owner))
            if names is not None:
                names.discard(key[1])
                if not names:
                    del self._by_owner[key[0], owner]

    def upsert(self, obj: Obj) -> bool:
        """Keep `obj` unless the store already has a newer one; True if it was kept."""
        key = object_key(obj)
        obj = compact(self._transform(obj))
        with self._lock:
            if not newer(obj, self._objects.get(key)):
                return False
            self._put(key, obj)
            self._stale.discard(key)
            return True

    def remove(self, namespace: str, name: str) -> Obj | None:
        key = (namespace, name)
        with self._lock:
            old = self._objects.pop(key, None)
            if old is not None:
                self._unindex(key, old)
            self._stale.discard(key)
            return old

    def invalidate(self, namespace: str, name: str) -> None:
        with self._lock:
            self._stale.add((namespace, name))

    def is_stale(self, namespace: str, name: str) -> bool:
        with self._lock:
            return (namespace, name) in self._stale

    def get(self, namespace: str, name: str) -> Obj | None:
        with self._lock:
            return self._objects.get((namespace, name))

    def list(self, namespace: str | None, selector: Mapping[str, str] | None = None) -> list[Obj]:
        with self._lock:
            if namespace is not None and self._index_label is not None and selector \
                    and self._index_label in selector:
                names = self._by_owner.get((namespace, selector[self._index_label]), set())
                candidates: Iterable[Obj] = [self._objects[namespace, name] for name in names]
            else:
                candidates = [obj for key, obj in self._objects.items() if namespace is None or key[0] == namespace]
            return sorted((obj for obj in candidates if matches(obj, selector)), key=object_key)

    def replace(self, objects: Iterable[Obj], namespace: str | None,
                list_version: str | None = None) -> tuple[builtins.list[Obj], builtins.list[Obj]]:
        """A relist: the store (of `namespace`, or all) becomes `objects`, listed at `list_version`.

        Returns (changed or new objects, objects gone meanwhile): a watch that missed events (410 Gone)
        learns of the deletions only here. What our own writes put in after the list was taken stays.
        """
        fresh = {object_key(obj): compact(self._transform(obj)) for obj in objects}
        listed = {"metadata": {"resourceVersion": list_version}}
        with self._lock:
            scope = [key for key in self._objects if namespace is None or key[0] == namespace]
            gone = [self._objects[key] for key in scope
                    if key not in fresh and not (list_version and resource_version(self._objects[key]) is not None
                                                 and not newer(listed, self._objects[key]))]
            for obj in gone:
                key = object_key(obj)
                self._unindex(key, obj)
                del self._objects[key]
            changed = []
            for key, obj in fresh.items():
                old = self._objects.get(key)
                if old is None or (newer(obj, old) and (old.get("metadata") or {}).get("resourceVersion")
                                   != (obj.get("metadata") or {}).get("resourceVersion")):
                    self._put(key, obj)
                    changed.append(obj)
                self._stale.discard(key)
            return changed, gone
