"""The emulator behaves like the real API server where an operator can tell the difference."""

from __future__ import annotations

import asyncio
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import kopf
import pytest

from modeldeploy.kubeapi import Conflict, Invalid, KubeClient
from modeldeploy.sandbox.emulator_server import EmulatorHandle, running_emulator, wait_until
from modeldeploy.sandbox.operator_runner import running_operator

CM = "v1/configmaps"
DEPLOY = "apps/v1/deployments"
MDEP = "serving.modeldeploy.dev/v1alpha1/modeldeployments"


def configmap(name: str = "cm", namespace: str = "ns", **extra: Any) -> dict[str, Any]:
    meta = {"name": name, "namespace": namespace, **extra.pop("metadata", {})}
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": {"a": "1"}, **extra}


def mdep(name: str = "m", namespace: str = "ns", **extra: Any) -> dict[str, Any]:
    return {
        "apiVersion": "serving.modeldeploy.dev/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"model": {"uri": "a"}},
        **extra,
    }


def rv(obj: dict[str, Any]) -> int:
    return int(obj["metadata"]["resourceVersion"])


# ----- metadata & versions -----


def test_create_sets_system_metadata(emulator: EmulatorHandle) -> None:
    obj = emulator.create(configmap(metadata={"uid": "forged", "resourceVersion": "999"}))
    meta = obj["metadata"]
    assert meta["uid"] != "forged" and len(meta["uid"]) == 36
    assert meta["creationTimestamp"].endswith("Z")
    assert meta["generation"] == 1
    assert meta["resourceVersion"] == "1"


def test_resource_version_is_global_and_monotonic(emulator: EmulatorHandle) -> None:
    a = emulator.create(configmap("a"))
    b = emulator.create(mdep())
    a2 = emulator.patch(CM, "ns", "a", {"data": {"b": "2"}})
    assert rv(a) < rv(b) < rv(a2)
    status, listing = emulator.request("GET", "/api/v1/namespaces/ns/configmaps")
    assert status == 200 and listing["metadata"]["resourceVersion"] == str(rv(a2))
    assert listing["kind"] == "ConfigMapList" and "kind" not in listing["items"][0]


def test_generation_bumps_only_outside_metadata_and_status(emulator: EmulatorHandle) -> None:
    emulator.create(mdep())
    labelled = emulator.patch(MDEP, "ns", "m", {"metadata": {"labels": {"a": "b"}}})
    assert labelled["metadata"]["generation"] == 1
    with_status = emulator.patch(MDEP, "ns", "m", {"status": {"phase": "Healthy"}}, subresource="status")
    assert with_status["metadata"]["generation"] == 1
    changed = emulator.patch(MDEP, "ns", "m", {"spec": {"model": {"uri": "b"}}})
    assert changed["metadata"]["generation"] == 2


def test_noop_write_bumps_nothing(emulator: EmulatorHandle) -> None:
    created = emulator.create(configmap())
    same = emulator.patch(CM, "ns", "cm", {"data": {"a": "1"}})
    assert same["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]


def test_noop_detection_is_json_strict(emulator: EmulatorHandle) -> None:
    emulator.create(mdep())
    zero = emulator.patch(MDEP, "ns", "m", {"spec": {"x": [0]}})
    false = emulator.patch(MDEP, "ns", "m", {"spec": {"x": [False]}})  # Python: 0 == False; JSON: not
    assert false["spec"]["x"] == [False] and rv(false) > rv(zero)


def test_generate_name(emulator: EmulatorHandle) -> None:
    first = emulator.create(configmap(name="", metadata={"generateName": "cm-"}))
    second = emulator.create(configmap(name="", metadata={"generateName": "cm-"}))
    assert first["metadata"]["name"].startswith("cm-") and len(first["metadata"]["name"]) == 8
    assert first["metadata"]["name"] != second["metadata"]["name"]
    status, body = emulator.request("POST", "/api/v1/namespaces/ns/configmaps", {"metadata": {}})
    assert status == 422 and body["reason"] == "Invalid"


# ----- concurrency & errors -----


def test_create_existing_is_already_exists(emulator: EmulatorHandle) -> None:
    emulator.create(configmap())
    status, body = emulator.request("POST", "/api/v1/namespaces/ns/configmaps", configmap())
    assert status == 409
    assert body["kind"] == "Status" and body["reason"] == "AlreadyExists" and body["code"] == 409
    assert body["message"] == 'configmaps "cm" already exists'


@pytest.mark.parametrize("method", ["PATCH", "PUT"])
def test_stale_resource_version_is_conflict(emulator: EmulatorHandle, method: str) -> None:
    stale = emulator.create(configmap())
    emulator.patch(CM, "ns", "cm", {"data": {"a": "2"}})
    body = {**stale, "data": {"a": "3"}}
    status, answer = emulator.request(
        method, "/api/v1/namespaces/ns/configmaps/cm", body, content_type="application/merge-patch+json"
    )
    assert status == 409 and answer["reason"] == "Conflict"
    assert "the object has been modified" in answer["message"]
    assert emulator.get(CM, "ns", "cm")["data"] == {"a": "2"}  # type: ignore[index]


def test_matching_resource_version_is_accepted(emulator: EmulatorHandle) -> None:
    fresh = emulator.create(configmap())
    patched = emulator.patch(
        CM, "ns", "cm", {"metadata": {"resourceVersion": fresh["metadata"]["resourceVersion"]}, "data": {"a": "2"}}
    )
    assert patched["data"] == {"a": "2"}


def test_missing_objects_and_resources_are_404(emulator: EmulatorHandle) -> None:
    status, body = emulator.request("GET", "/apis/apps/v1/namespaces/ns/deployments/nope")
    assert status == 404 and body["reason"] == "NotFound" and body["message"] == 'deployments.apps "nope" not found'
    assert emulator.request("GET", "/apis/apps/v1/namespaces/ns/statefulsets")[0] == 404
    assert (
        emulator.request(
            "PATCH", "/api/v1/namespaces/ns/configmaps/nope", {}, content_type="application/merge-patch+json"
        )[0]
        == 404
    )


# ----- patch types & PUT -----


@pytest.mark.parametrize("content_type", ["application/merge-patch+json", "application/strategic-merge-patch+json"])
def test_merge_patch_semantics(emulator: EmulatorHandle, content_type: str) -> None:
    emulator.create(configmap(metadata={"labels": {"keep": "1", "drop": "1"}, "finalizers": ["a", "b"]}))
    patched = emulator.patch(
        CM, "ns", "cm", {"metadata": {"labels": {"drop": None}, "finalizers": ["c"]}}, content_type=content_type
    )
    assert patched["metadata"]["labels"] == {"keep": "1"}
    assert patched["metadata"]["finalizers"] == ["c"]  # lists are replaced, not merged


def test_json_patch_and_failed_test(emulator: EmulatorHandle) -> None:
    created = emulator.create(configmap())
    ops = [
        {"op": "test", "path": "/metadata/resourceVersion", "value": created["metadata"]["resourceVersion"]},
        {"op": "add", "path": "/data/b", "value": "2"},
    ]
    patched = emulator.patch(CM, "ns", "cm", ops, content_type="application/json-patch+json")
    assert patched["data"] == {"a": "1", "b": "2"}
    status, body = emulator.request(
        "PATCH", "/api/v1/namespaces/ns/configmaps/cm", ops, content_type="application/json-patch+json"
    )  # the same rv: now stale
    assert status == 422 and body["reason"] == "Invalid" and body["kind"] == "Status"
    assert (
        emulator.request(
            "PATCH", "/api/v1/namespaces/ns/configmaps/cm", {"a": 1}, content_type="application/apply-patch+yaml"
        )[0]
        == 415
    )


def test_put_replaces_but_keeps_identity(emulator: EmulatorHandle) -> None:
    created = emulator.create(configmap(metadata={"labels": {"a": "b"}}))
    replaced = emulator.replace(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm", "namespace": "ns"}, "data": {"z": "9"}}
    )
    assert replaced["data"] == {"z": "9"} and "labels" not in replaced["metadata"]
    for key in ("uid", "creationTimestamp"):
        assert replaced["metadata"][key] == created["metadata"][key]


# ----- status subresource -----


def test_status_subresource_splits_writes(emulator: EmulatorHandle) -> None:
    status, created = emulator.request(
        "POST",
        "/apis/serving.modeldeploy.dev/v1alpha1/namespaces/ns/modeldeployments",
        mdep(status={"phase": "Forged"}),
    )
    assert status == 201 and "status" not in created  # status is ignored on create
    emulator.patch(MDEP, "ns", "m", {"status": {"phase": "Pending"}}, subresource="status")
    main = emulator.patch(MDEP, "ns", "m", {"spec": {"x": 1}, "status": {"phase": "Hacked"}})
    assert main["status"] == {"phase": "Pending"} and main["spec"]["x"] == 1
    via_status = emulator.patch(
        MDEP, "ns", "m", {"spec": {"x": 2}, "status": {"phase": "Healthy"}}, subresource="status"
    )
    assert via_status["status"] == {"phase": "Healthy"} and via_status["spec"]["x"] == 1
    assert via_status["metadata"]["generation"] == main["metadata"]["generation"]
    put = emulator.replace({**via_status, "status": {"phase": "Failed"}}, subresource="status")
    assert put["status"] == {"phase": "Failed"}
    assert emulator.request("PATCH", "/api/v1/namespaces/ns/configmaps/cm/status", {})[0] == 404


def test_handle_create_seeds_status(emulator: EmulatorHandle) -> None:
    created = emulator.create(mdep(status={"phase": "Healthy"}))
    assert created["status"] == {"phase": "Healthy"}


def test_scale_subresource(emulator: EmulatorHandle) -> None:
    emulator.create(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "d", "namespace": "ns"},
            "spec": {"replicas": 2},
        }
    )
    scale = emulator.patch(DEPLOY, "ns", "d", {"spec": {"replicas": 5}}, subresource="scale")
    assert scale["kind"] == "Scale" and scale["spec"]["replicas"] == 5
    assert emulator.get(DEPLOY, "ns", "d")["spec"]["replicas"] == 5  # type: ignore[index]


# ----- selectors & paging -----


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("app=a", ["a1", "a2"]),
        ("app==a,tier=web", ["a1"]),
        ("app!=a", ["b", "none"]),
        ("app in (a, b)", ["a1", "a2", "b"]),
        ("app notin (a),tier", ["b"]),
        ("tier", ["a1", "b"]),
        ("!tier", ["a2", "none"]),
    ],
)
def test_label_selectors(emulator: EmulatorHandle, selector: str, expected: list[str]) -> None:
    labels = {"a1": {"app": "a", "tier": "web"}, "a2": {"app": "a"}, "b": {"app": "b", "tier": "db"}, "none": {}}
    for name, lbls in labels.items():
        emulator.create(configmap(name, metadata={"labels": lbls}))
    assert sorted(o["metadata"]["name"] for o in emulator.list(CM, "ns", label_selector=selector)) == expected


def test_field_selectors_and_namespaces(emulator: EmulatorHandle) -> None:
    emulator.create(configmap("x", "ns1"))
    emulator.create(configmap("x", "ns2"))
    emulator.create(configmap("y", "ns1"))
    assert len(emulator.list(CM)) == 3
    assert len(emulator.list(CM, "ns1")) == 2
    assert [
        o["metadata"]["namespace"] for o in emulator.list(CM, field_selector="metadata.name=x,metadata.namespace!=ns1")
    ] == ["ns2"]
    assert emulator.request("GET", "/api/v1/configmaps", params={"labelSelector": "a in b"})[0] == 400


def test_list_paging(emulator: EmulatorHandle) -> None:
    for i in range(5):
        emulator.create(configmap(f"c{i}"))
    _, page = emulator.request("GET", "/api/v1/configmaps", params={"limit": "2"})
    names = [o["metadata"]["name"] for o in page["items"]]
    while page["metadata"].get("continue"):
        _, page = emulator.request(
            "GET", "/api/v1/configmaps", params={"limit": "2", "continue": page["metadata"]["continue"]}
        )
        names += [o["metadata"]["name"] for o in page["items"]]
    assert names == [f"c{i}" for i in range(5)]


# ----- watches -----


def watch(emulator: EmulatorHandle, path: str, **params: str) -> list[dict[str, Any]]:
    status, events = emulator.request("GET", path, params={"watch": "true", "timeoutSeconds": "0.3", **params})
    assert status == 200
    return [events] if isinstance(events, dict) else events or []  # one event parses as one document


def test_watch_resumes_after_resource_version(emulator: EmulatorHandle) -> None:
    first = emulator.create(configmap("a"))
    emulator.patch(CM, "ns", "a", {"data": {"b": "2"}})
    emulator.create(configmap("b", metadata={"labels": {"x": "1"}}))
    emulator.delete(CM, "ns", "a")
    events = watch(emulator, "/api/v1/namespaces/ns/configmaps", resourceVersion=first["metadata"]["resourceVersion"])
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [
        ("MODIFIED", "a"),
        ("ADDED", "b"),
        ("DELETED", "a"),
    ]
    selected = watch(emulator, "/api/v1/configmaps", resourceVersion="0", labelSelector="x=1")
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in selected] == [("ADDED", "b")]
    initial = watch(emulator, "/api/v1/configmaps", sendInitialEvents="true", resourceVersionMatch="NotOlderThan")
    assert initial[-1]["type"] == "BOOKMARK"
    assert initial[-1]["object"]["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}


def test_watch_streams_live_events(emulator: EmulatorHandle) -> None:
    emulator.create(configmap("a"))
    result: list[dict[str, Any]] = []
    thread = threading.Thread(
        target=lambda: result.extend(
            watch(emulator, "/api/v1/namespaces/ns/configmaps", resourceVersion="1", timeoutSeconds="1")
        )
    )
    thread.start()
    time.sleep(0.2)
    emulator.patch(CM, "ns", "a", {"data": {"b": "2"}})
    emulator.create(configmap("a", "other-ns"))  # filtered out by the namespace
    thread.join(5)
    assert [(e["type"], e["object"]["metadata"]["resourceVersion"]) for e in result] == [("MODIFIED", "2")]


def test_watch_from_compacted_version_is_gone() -> None:
    with running_emulator(watch_history=2) as emulator:
        for i in range(4):
            emulator.create(configmap(f"c{i}"))
        events = watch(emulator, "/api/v1/configmaps", resourceVersion="1")
    assert events[0]["type"] == "ERROR" and events[0]["object"]["code"] == 410


# ----- deletion, finalizers, garbage collection -----


def test_finalizers_hold_deletion(emulator: EmulatorHandle) -> None:
    emulator.create(configmap(metadata={"finalizers": ["x/y"]}))
    assert emulator.delete(CM, "ns", "cm")
    held = emulator.get(CM, "ns", "cm")
    assert held is not None and held["metadata"]["deletionTimestamp"]
    status, body = emulator.request(
        "PATCH",
        "/api/v1/namespaces/ns/configmaps/cm",
        {"metadata": {"finalizers": ["x/y", "new"]}},
        content_type="application/merge-patch+json",
    )
    assert status == 422 and "no new finalizers" in body["message"]
    emulator.patch(CM, "ns", "cm", {"metadata": {"finalizers": None}})
    assert emulator.get(CM, "ns", "cm") is None
    assert not emulator.delete(CM, "ns", "cm")


def owned(name: str, owner: dict[str, Any], **extra: Any) -> dict[str, Any]:
    ref = {
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"],
        "controller": True,
    }
    return configmap(name, metadata={"ownerReferences": [ref], **extra})


def test_garbage_collection_is_recursive(emulator: EmulatorHandle) -> None:
    owner = emulator.create(mdep())
    child = emulator.create(owned("child", owner))
    emulator.create(owned("grandchild", child))
    emulator.create(configmap("unrelated"))
    emulator.delete(MDEP, "ns", "m")
    wait_until(lambda: [o["metadata"]["name"] for o in emulator.list(CM)] == ["unrelated"], timeout=5)


def test_garbage_collection_waits_for_finalizers_and_can_be_off() -> None:
    with running_emulator(gc=False) as emulator:
        owner = emulator.create(mdep())
        emulator.create(owned("child", owner))
        emulator.delete(MDEP, "ns", "m")
        time.sleep(0.1)
        assert emulator.get(CM, "ns", "child") is not None
        assert emulator.collect_garbage() == 1  # an explicit sweep still works
        assert emulator.get(CM, "ns", "child") is None


def test_orphan_and_foreground_propagation(emulator: EmulatorHandle) -> None:
    owner = emulator.create(mdep("orphaner"))
    emulator.create(owned("kept", owner))
    emulator.delete(MDEP, "ns", "orphaner", propagation="Orphan")
    kept = emulator.get(CM, "ns", "kept")
    assert kept is not None and "ownerReferences" not in kept["metadata"]

    owner = emulator.create(mdep("fg"))
    emulator.create(owned("blocker", owner, finalizers=["x/y"]))
    emulator.delete(MDEP, "ns", "fg", propagation="Foreground")
    time.sleep(0.1)
    held = emulator.get(MDEP, "ns", "fg")
    assert held is not None and "foregroundDeletion" in held["metadata"]["finalizers"]
    emulator.patch(CM, "ns", "blocker", {"metadata": {"finalizers": None}})
    wait_until(lambda: emulator.get(MDEP, "ns", "fg") is None, timeout=5)


# ----- fault injection & accounting -----


def test_fail_next_rejects_without_applying(emulator: EmulatorHandle, kube: KubeClient) -> None:
    emulator.create(configmap())
    emulator.fail_next("patch", CM, status=409, count=2)
    for _ in range(2):
        with pytest.raises(Conflict):
            kube.merge_patch("v1", "ConfigMap", "ns", "cm", {"data": {"a": "2"}})
    assert emulator.get(CM, "ns", "cm")["data"] == {"a": "1"}  # type: ignore[index]
    kube.merge_patch("v1", "ConfigMap", "ns", "cm", {"data": {"a": "2"}})
    emulator.fail_next("create", "apps/v1/deployments", status=500)
    kube.create(configmap("other"))  # another resource: unaffected
    emulator.fail_next("patch", MDEP + "/status", status=422)
    emulator.create(mdep())
    with pytest.raises(Invalid, match="injected"):
        kube.merge_patch(
            *("serving.modeldeploy.dev/v1alpha1", "ModelDeployment", "ns", "m"), {"status": {}}, subresource="status"
        )


def test_request_accounting(emulator: EmulatorHandle, kube: KubeClient) -> None:
    emulator.create(configmap())  # sandbox "user" requests are not counted
    assert emulator.counts() == {}
    kube.get("v1", "ConfigMap", "ns", "cm")
    kube.merge_patch("v1", "ConfigMap", "ns", "cm", {"data": {"b": "2"}})
    kube.create(mdep())
    kube.merge_patch(
        "serving.modeldeploy.dev/v1alpha1", "ModelDeployment", "ns", "m", {"status": {"a": 1}}, subresource="status"
    )
    assert emulator.counts() == {("get", CM): 1, ("patch", CM): 1, ("create", MDEP): 1, ("patch", MDEP + "/status"): 1}
    assert emulator.writes() == 3 and emulator.writes(MDEP) == 2 and emulator.writes(CM) == 1
    emulator.reset_counts()
    assert emulator.writes() == 0


def test_discovery_declares_resources(emulator: EmulatorHandle) -> None:
    _, core = emulator.request("GET", "/api/v1")
    namespaces = next(r for r in core["resources"] if r["name"] == "namespaces")
    assert namespaces["namespaced"] is False and namespaces["kind"] == "Namespace"
    _, crd = emulator.request("GET", "/apis/serving.modeldeploy.dev/v1alpha1")
    names = {r["name"]: r for r in crd["resources"]}
    assert set(names) == {"modeldeployments", "modeldeployments/status"}
    assert names["modeldeployments"]["shortNames"] == ["mdep"] and names["modeldeployments"]["namespaced"]
    _, groups = emulator.request("GET", "/apis")
    assert {
        "apps",
        "autoscaling",
        "policy",
        "gateway.networking.k8s.io",
        "events.k8s.io",
        "serving.modeldeploy.dev",
    } <= {g["name"] for g in groups["groups"]}


# ----- kopf against the emulator -----

HANDLER_MODULE = '''
"""A test-only operator: a ConfigMap per ModelDeployment, a status, a finalizer-driven delete."""
import asyncio
import kopf

@kopf.on.create("serving.modeldeploy.dev", "v1alpha1", "modeldeployments")
async def create_fn(body, name, namespace, memo, patch, **_):
    child = {"apiVersion": "v1", "kind": "ConfigMap",
             "metadata": {"name": f"{name}-config", "namespace": namespace},
             "data": {"uri": body["spec"]["model"]["uri"]}}
    kopf.adopt(child, owner=body)
    await asyncio.to_thread(memo.kube.apply, child)
    patch.status["phase"] = "Pending"

@kopf.on.delete("serving.modeldeploy.dev", "v1alpha1", "modeldeployments")
def delete_fn(name, memo, **_):
    memo.deleted.append(name)
'''


def test_kopf_operator_runs_against_emulator(
    emulator: EmulatorHandle, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "emulated_test_handlers.py").write_text(textwrap.dedent(HANDLER_MODULE))
    monkeypatch.syspath_prepend(str(tmp_path))
    memo = kopf.Memo(kube=KubeClient(emulator.url), deleted=[])
    with running_operator(emulator.url, module="emulated_test_handlers", memo=memo):
        emulator.create(mdep())
        child = wait_until(lambda: emulator.get(CM, "ns", "m-config"), timeout=10, message="the ConfigMap")
        assert child is not None and child["data"] == {"uri": "a"}
        assert child["metadata"]["ownerReferences"][0]["kind"] == "ModelDeployment"
        parent = wait_until(
            lambda: (emulator.get(MDEP, "ns", "m") or {}).get("status", {}).get("phase"),
            timeout=10,
            message="the status",
        )
        assert parent == "Pending"
        stored = emulator.get(MDEP, "ns", "m")
        assert stored is not None and "kopf" not in stored["status"]  # annotation storages in use
        assert stored["metadata"]["finalizers"] == ["kopf.zalando.org/KopfFinalizerMarker"]

        emulator.delete(MDEP, "ns", "m")
        wait_until(lambda: emulator.get(MDEP, "ns", "m") is None, timeout=10, message="the deletion")
        wait_until(lambda: emulator.get(CM, "ns", "m-config") is None, timeout=5, message="the GC")
        assert memo.deleted == ["m"]
    sys.modules.pop("emulated_test_handlers", None)


def test_kopf_retries_after_injected_conflict(emulator: EmulatorHandle) -> None:
    calls: list[str] = []

    def handlers(registry: kopf.OperatorRegistry) -> None:
        @kopf.on.create("serving.modeldeploy.dev", "v1alpha1", "modeldeployments", registry=registry)
        def create_fn(name: str, patch: kopf.Patch, **_: Any) -> None:
            calls.append(name)
            patch.status["phase"] = "Progressing"

    settings = None  # the defaults of running_operator (sandbox_settings)
    with running_operator(emulator.url, handlers=handlers, settings=settings):
        emulator.fail_next("patch", MDEP + "/status", status=500)
        emulator.create(mdep())
        wait_until(lambda: (emulator.get(MDEP, "ns", "m") or {}).get("status", {}).get("phase"), timeout=10)
    assert calls and emulator.counts()[("patch", MDEP + "/status")] >= 2


def test_emulator_handle_call_runs_in_loop(emulator: EmulatorHandle) -> None:
    async def current_rv() -> int:
        await asyncio.sleep(0)
        return emulator.emulator.resource_version

    emulator.create(configmap())
    assert emulator.call(current_rv) == 1
