"""The cache store: newer versions win, relists learn deletions, the owner index answers lists."""

from __future__ import annotations

from typing import Any

from modeldeploy.cache import Store
from modeldeploy.cache.store import slim_pod
from modeldeploy.render.labels import NAME_LABEL


def obj(name: str, version: int, owner: str = "m", namespace: str = "ns", **labels: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {
        "name": name, "namespace": namespace, "resourceVersion": str(version),
        "labels": {NAME_LABEL: owner, **labels}}}


def test_an_older_version_never_replaces_a_newer_one() -> None:
    store = Store(NAME_LABEL)
    assert store.upsert(obj("a", 5))
    assert not store.upsert(obj("a", 4))  # a late watch event after our write's answer
    assert store.get("ns", "a")["metadata"]["resourceVersion"] == "5"  # type: ignore[index]
    assert store.upsert(obj("a", 6))


def test_lists_by_owner_follow_relabels_and_removals() -> None:
    store = Store(NAME_LABEL)
    store.upsert(obj("a", 1, owner="m1"))
    store.upsert(obj("b", 2, owner="m1", role="canary"))
    store.upsert(obj("c", 3, owner="m2"))
    store.upsert(obj("d", 4, owner="m1", namespace="other"))
    assert [o["metadata"]["name"] for o in store.list("ns", {NAME_LABEL: "m1"})] == ["a", "b"]
    assert [o["metadata"]["name"] for o in store.list("ns", {NAME_LABEL: "m1", "role": "canary"})] == ["b"]
    store.upsert(obj("a", 5, owner="m2"))
    assert [o["metadata"]["name"] for o in store.list("ns", {NAME_LABEL: "m2"})] == ["a", "c"]
    store.remove("ns", "c")
    assert [o["metadata"]["name"] for o in store.list("ns", {NAME_LABEL: "m2"})] == ["a"]
    assert len(store.list(None)) == 3


def test_a_relist_reports_what_changed_and_what_was_deleted_meanwhile() -> None:
    store = Store(NAME_LABEL)
    for item in (obj("kept", 1), obj("changed", 2), obj("deleted", 3), obj("elsewhere", 4, namespace="x")):
        store.upsert(item)
    changed, gone = store.replace([obj("kept", 1), obj("changed", 7), obj("new", 8)], "ns", list_version="9")
    assert sorted(o["metadata"]["name"] for o in changed) == ["changed", "new"]
    assert [o["metadata"]["name"] for o in gone] == ["deleted"]
    assert store.get("x", "elsewhere") is not None  # another namespace's informer owns it


def test_a_relist_keeps_what_our_writes_put_in_after_the_list_was_taken() -> None:
    store = Store(NAME_LABEL)
    store.upsert(obj("written", 12))  # a create answered after the list's version 10
    _, gone = store.replace([], "ns", list_version="10")
    assert gone == [] and store.get("ns", "written") is not None


def test_a_stale_mark_lasts_until_a_fresh_copy_arrives() -> None:
    store = Store(NAME_LABEL)
    store.upsert(obj("a", 1))
    store.invalidate("ns", "a")
    assert store.is_stale("ns", "a")
    store.upsert(obj("a", 2))
    assert not store.is_stale("ns", "a")


def test_the_cache_keeps_of_a_pod_what_the_operator_reads() -> None:
    pod = {**obj("p", 1), "spec": {"nodeName": "n1", "volumes": [{"name": "model"}], "containers": [
        {"name": "server", "image": "img", "env": [{"name": "A", "value": "1"}],
         "resources": {"limits": {"nvidia.com/gpu": "1"}}}]}, "status": {"phase": "Running", "podIP": "10.0.0.1"}}
    pod["metadata"]["managedFields"] = [{"manager": "kube-controller-manager"}]
    store = Store(NAME_LABEL, slim_pod)
    store.upsert(pod)
    kept = store.get("ns", "p")
    assert kept is not None
    assert kept["spec"] == {"nodeName": "n1", "containers": [{"name": "server",
                                                              "resources": {"limits": {"nvidia.com/gpu": "1"}}}]}
    assert kept["status"] == pod["status"] and "managedFields" not in kept["metadata"]
    assert pod["metadata"]["managedFields"]  # the caller's object is left as it was
