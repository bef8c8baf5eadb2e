"""The watch-fed cache against the real apiserver: a 410 Gone relists and learns the deletions the
watch missed; a 409 on a stale cached object makes the next read a GET; reads cost no request."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

import pytest

from modeldeploy.cache import Cache, CachedKubeClient, Informer, Store, WatchedKind
from modeldeploy.kubeapi import Conflict, KubeClient
from modeldeploy.render.labels import MANAGED_BY, MANAGED_BY_LABEL, NAME_LABEL
from modeldeploy_sandbox.controlplane import ControlPlane
from modeldeploy_sandbox.sandbox import Sandbox
from modeldeploy_sandbox.waiting import wait_until

from .test_kubeapi import deployment

pytestmark = pytest.mark.timeout(90)
OWNED = {MANAGED_BY_LABEL: MANAGED_BY}
DEPLOYMENTS = WatchedKind("apps/v1", "Deployment", OWNED, NAME_LABEL)


def counting(kube: KubeClient) -> tuple[KubeClient, Counter[str]]:
    requests: Counter[str] = Counter()
    # Watches are the feed, not reads: counted apart.
    return kube.limited(None, lambda verb, code: requests.update([verb if verb != "WATCH" else "watch"])), requests


def configmap(name: str, namespace: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": namespace, "labels": {**OWNED, NAME_LABEL: "m"}}}


def test_an_expired_watch_relists_and_reports_what_was_deleted_meanwhile(
        bare_sandbox: Sandbox, admin: KubeClient, control_plane: ControlPlane) -> None:
    """A real 410: the sandbox watches ConfigMaps straight from etcd, and etcd's history is compacted."""
    sb = bare_sandbox
    for name in ("kept", "deleted"):
        sb.kube.create(configmap(name, sb.namespace))
    events: list[tuple[str, str]] = []
    store = Store(NAME_LABEL)
    informer = Informer(admin, "v1", "ConfigMap", store, namespace=sb.namespace,
                        label_selector=DEPLOYMENTS.selector, server_timeout=1,
                        on_event=lambda kind, event_type, obj: events.append((event_type, obj["metadata"]["name"])))
    informer.relist()
    assert {obj["metadata"]["name"] for obj in store.list(sb.namespace)} == {"kept", "deleted"}

    # While the informer is not watching: one object goes, the other changes, and history is compacted.
    sb.kube.delete("v1", "ConfigMap", sb.namespace, "deleted")
    sb.kube.merge_patch("v1", "ConfigMap", sb.namespace, "kept", {"data": {"edited": "yes"}})
    control_plane.compact_etcd()
    events.clear()
    stop = threading.Event()
    informer.step(stop)  # watches from the listed version: 410 Gone
    assert informer.expirations == 1 and informer.version is None
    informer.step(stop)  # relists, then watches for a second
    assert informer.relists == 2
    assert [obj["metadata"]["name"] for obj in store.list(sb.namespace)] == ["kept"]
    assert store.get(sb.namespace, "kept")["data"] == {"edited": "yes"}  # type: ignore[index]
    assert ("DELETED", "deleted") in events and ("ADDED", "kept") in events


def _synced_cache(kube: KubeClient, namespace: str, *, watching: bool) -> Cache:
    cache = Cache(kube, [DEPLOYMENTS], [namespace], server_timeout=5)
    if watching:
        cache.start()
        assert cache.wait_synced(30)
    else:  # lists only: the store stays as it was listed, as a watch that lags would leave it
        for informers in cache.informers.values():
            for informer in informers:
                informer.relist()
    return cache


def test_a_conflict_on_a_stale_cached_object_makes_the_next_read_fresh(bare_sandbox: Sandbox,
                                                                      admin: KubeClient) -> None:
    sb = bare_sandbox
    sb.kube.create(deployment("d", namespace=sb.namespace))
    kube, requests = counting(admin)
    cached = CachedKubeClient(kube, _synced_cache(kube, sb.namespace, watching=False))
    stale = cached.get("apps/v1", "Deployment", sb.namespace, "d")
    assert stale is not None
    sb.kube.merge_patch("apps/v1", "Deployment", sb.namespace, "d", {"metadata": {"labels": {"by": "someone"}}})

    requests.clear()
    assert cached.get("apps/v1", "Deployment", sb.namespace, "d") == stale  # from the store: no request
    assert sum(requests.values()) == 0
    edited: dict[str, Any] = {**stale, "metadata": {**stale["metadata"], "annotations": {"mine": "1"}}}
    with pytest.raises(Conflict):
        cached.replace(edited)  # carries the stale resourceVersion
    fresh = cached.get("apps/v1", "Deployment", sb.namespace, "d")
    assert fresh is not None and fresh["metadata"]["labels"]["by"] == "someone"
    assert requests["GET"] == 1
    requests.clear()
    assert cached.get("apps/v1", "Deployment", sb.namespace, "d") == fresh  # cached again
    assert sum(requests.values()) == 0


def test_reads_cost_no_request_and_writes_are_read_back_at_once(bare_sandbox: Sandbox, admin: KubeClient) -> None:
    sb = bare_sandbox
    kube, requests = counting(admin)
    cache = _synced_cache(kube, sb.namespace, watching=True)
    try:
        cached = CachedKubeClient(kube, cache)
        requests.clear()
        _, created = cached.apply(deployment("m", namespace=sb.namespace))
        requests.pop("watch", None)
        assert created and requests == Counter({"POST": 1})  # absent from the synced store: no GET first
        requests.clear()
        _, changed = cached.apply(deployment("m", namespace=sb.namespace))
        requests.pop("watch", None)
        assert not changed and sum(requests.values()) == 0  # compared with the cached object
        assert [d["metadata"]["name"] for d in cached.list("apps/v1", "Deployment", sb.namespace,
                                                            {**OWNED, NAME_LABEL: "m"})] == ["m"]
        assert not cached.delete("apps/v1", "Deployment", sb.namespace, "never-created")
        requests.pop("watch", None)
        assert sum(requests.values()) == 0
        # Someone else's edit arrives by the watch.
        sb.kube.merge_patch("apps/v1", "Deployment", sb.namespace, "m", {"metadata": {"labels": {"x": "1"}}})
        wait_until(lambda: (cached.get("apps/v1", "Deployment", sb.namespace, "m") or {})
                   .get("metadata", {}).get("labels", {}).get("x") == "1", timeout=20, message="the edit in the cache")
        assert requests["GET"] == 0
    finally:
        cache.stop()
