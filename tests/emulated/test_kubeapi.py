"""KubeClient against the emulator: CRUD, errors, idempotent apply (no write when nothing changed)."""

from __future__ import annotations

import concurrent.futures
import copy
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modeldeploy.kubeapi import (
    KINDS,
    AlreadyExists,
    Conflict,
    Invalid,
    KubeApiError,
    KubeClient,
    NotFound,
    format_label_selector,
    is_subset,
)
from modeldeploy.sandbox.emulator_server import EmulatorHandle

MDEP_API = "serving.modeldeploy.dev/v1alpha1"


def deployment(name: str = "d", replicas: int = 1, image: str = "img:1") -> dict[str, Any]:
    labels = {"app.kubernetes.io/managed-by": "modeldeploy", "modeldeploy.dev/name": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": "ns", "labels": labels},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "server", "image": image, "ports": [{"containerPort": 8000}]}]},
            },
        },
    }


def test_kinds_table_covers_the_operators_kinds() -> None:
    assert set(KINDS) == {
        ("apps/v1", "Deployment"),
        ("v1", "Service"),
        ("v1", "ConfigMap"),
        ("v1", "Pod"),
        ("v1", "Event"),
        ("autoscaling/v2", "HorizontalPodAutoscaler"),
        ("policy/v1", "PodDisruptionBudget"),
        ("gateway.networking.k8s.io/v1", "HTTPRoute"),
        (MDEP_API, "ModelDeployment"),
    }
    assert (
        KINDS["apps/v1", "Deployment"].path("ns", "d", "status") == "/apis/apps/v1/namespaces/ns/deployments/d/status"
    )
    assert KINDS["v1", "Pod"].path(None) == "/api/v1/pods"


def test_crud_roundtrip(kube: KubeClient) -> None:
    assert kube.get("apps/v1", "Deployment", "ns", "d") is None
    created = kube.create(deployment())
    assert created["metadata"]["uid"] and created["kind"] == "Deployment"
    fetched = kube.get("apps/v1", "Deployment", "ns", "d")
    assert fetched == created
    patched = kube.merge_patch("apps/v1", "Deployment", "ns", "d", {"spec": {"replicas": 3}})
    assert patched["spec"]["replicas"] == 3 and patched["metadata"]["generation"] == 2
    ops = [{"op": "replace", "path": "/spec/replicas", "value": 4}]
    assert kube.json_patch("apps/v1", "Deployment", "ns", "d", ops)["spec"]["replicas"] == 4
    replaced = kube.replace(
        {
            **patched,
            "spec": {**patched["spec"], "replicas": 5},
            "metadata": {**patched["metadata"], "resourceVersion": None},
        }
    )
    assert replaced["spec"]["replicas"] == 5
    status = kube.merge_patch(
        "apps/v1", "Deployment", "ns", "d", {"status": {"readyReplicas": 5}}, subresource="status"
    )
    assert status["status"] == {"readyReplicas": 5}
    assert kube.delete("apps/v1", "Deployment", "ns", "d") is True
    assert kube.delete("apps/v1", "Deployment", "ns", "d") is False
    assert kube.ensure_deleted("apps/v1", "Deployment", "ns", "d") is False


def test_list_with_selectors_fills_kind(kube: KubeClient) -> None:
    kube.create(deployment("a"))
    kube.create(deployment("b"))
    other = deployment("c")
    other["metadata"]["namespace"] = "other"
    kube.create(other)
    everything = kube.list("apps/v1", "Deployment")
    assert [d["metadata"]["name"] for d in everything] == ["a", "b", "c"]  # sorted by (namespace, name)
    assert all(d["kind"] == "Deployment" and d["apiVersion"] == "apps/v1" for d in everything)
    assert [d["metadata"]["name"] for d in kube.list("apps/v1", "Deployment", "ns", {"modeldeploy.dev/name": "b"})] == [
        "b"
    ]
    assert len(kube.list("apps/v1", "Deployment", None, "modeldeploy.dev/name in (a,c)")) == 2
    assert format_label_selector({"b": "2", "a": "1"}) == "a=1,b=2"


def test_errors_carry_the_server_status(kube: KubeClient) -> None:
    kube.create(deployment())
    with pytest.raises(AlreadyExists) as exists:
        kube.create(deployment())
    assert isinstance(exists.value, Conflict) and exists.value.status == 409
    assert exists.value.message == 'deployments.apps "d" already exists'
    with pytest.raises(Conflict) as conflict:
        kube.merge_patch("apps/v1", "Deployment", "ns", "d", {"metadata": {"resourceVersion": "0"}})
    assert conflict.value.reason == "Conflict" and "has been modified" in conflict.value.message
    with pytest.raises(Invalid) as invalid:
        kube.json_patch(
            "apps/v1", "Deployment", "ns", "d", [{"op": "test", "path": "/metadata/resourceVersion", "value": "0"}]
        )
    assert invalid.value.status == 422 and "test operation failed" in invalid.value.message
    with pytest.raises(NotFound) as missing:
        kube.merge_patch("apps/v1", "Deployment", "ns", "nope", {"spec": {}})
    assert missing.value.message == 'deployments.apps "nope" not found'
    with pytest.raises(KeyError, match="KINDS"):
        kube.get("apps/v1", "StatefulSet", "ns", "x")


def test_unreachable_server_is_an_api_error() -> None:
    client = KubeClient("http://127.0.0.1:9", timeout=1)
    with pytest.raises(KubeApiError) as error:
        client.get("v1", "ConfigMap", "ns", "x")
    assert error.value.status == 0


def test_patch_content_types_are_explicit(emulator: EmulatorHandle, kube: KubeClient) -> None:
    kube.create(deployment())
    kube.merge_patch("apps/v1", "Deployment", "ns", "d", {"metadata": {"labels": {"x": "1"}}})
    kube.json_patch("apps/v1", "Deployment", "ns", "d", [{"op": "add", "path": "/metadata/labels/y", "value": "2"}])
    patches = [r for r in emulator.emulator if r.method.value == "PATCH"]
    assert [r.headers["Content-Type"] for r in patches] == [
        "application/merge-patch+json",
        "application/json-patch+json",
    ]
    assert all(r.headers["User-Agent"] == "modeldeploy-operator" for r in patches)


def test_merge_patch_null_deletes(kube: KubeClient) -> None:
    kube.create({**deployment(), "metadata": {**deployment()["metadata"], "annotations": {"a": "1", "b": "2"}}})
    patched = kube.merge_patch("apps/v1", "Deployment", "ns", "d", {"metadata": {"annotations": {"a": None}}})
    assert patched["metadata"]["annotations"] == {"b": "2"}


# ----- apply -----


def test_apply_creates_then_writes_nothing(emulator: EmulatorHandle, kube: KubeClient) -> None:
    desired = deployment()
    created, changed = kube.apply(desired)
    assert changed and created["spec"]["replicas"] == 1
    emulator.reset_counts()
    live, changed = kube.apply(desired)
    assert not changed and live == kube.get("apps/v1", "Deployment", "ns", "d")
    assert emulator.writes() == 0  # a resync with nothing changed writes nothing


def test_apply_patches_only_when_different(emulator: EmulatorHandle, kube: KubeClient) -> None:
    kube.apply(deployment())
    # Server-side additions (status, defaulted fields inside list items) are not differences.
    live = kube.get("apps/v1", "Deployment", "ns", "d")
    assert live is not None
    live["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"] = "IfNotPresent"
    live["metadata"]["annotations"] = {"deployment.kubernetes.io/revision": "1"}
    kube.replace(live)
    kube.merge_patch("apps/v1", "Deployment", "ns", "d", {"status": {"replicas": 1}}, subresource="status")
    emulator.reset_counts()
    assert kube.apply(deployment())[1] is False
    assert emulator.writes() == 0

    updated, changed = kube.apply(deployment(image="img:2"))
    assert changed and updated["spec"]["template"]["spec"]["containers"][0]["image"] == "img:2"
    assert "imagePullPolicy" not in updated["spec"]["template"]["spec"]["containers"][0]  # lists replaced whole
    assert updated["metadata"]["annotations"] == {"deployment.kubernetes.io/revision": "1"}  # others kept
    assert emulator.counts()[("patch", "apps/v1/deployments")] == 1


def test_apply_ignores_status(emulator: EmulatorHandle, kube: KubeClient) -> None:
    desired = {
        "apiVersion": MDEP_API,
        "kind": "ModelDeployment",
        "metadata": {"name": "m", "namespace": "ns"},
        "spec": {"a": 1},
        "status": {"phase": "Healthy"},
    }
    kube.apply(desired)
    emulator.reset_counts()
    assert kube.apply(desired)[1] is False
    assert emulator.writes() == 0


def test_apply_survives_a_concurrent_create(emulator: EmulatorHandle, kube: KubeClient) -> None:
    emulator.fail_next("get", "apps/v1/deployments", status=404)  # looks absent, but exists
    kube.create(deployment())
    live, changed = kube.apply(deployment())
    assert not changed and live["metadata"]["name"] == "d"


def test_is_subset_rules() -> None:
    assert is_subset({"a": {"b": 1}}, {"a": {"b": 1, "c": 2}, "d": 3})
    assert not is_subset({"a": {"b": 1}}, {"a": {"b": 2}})
    assert is_subset([{"name": "x"}], [{"name": "x", "protocol": "TCP"}])
    assert not is_subset([{"name": "x"}], [{"name": "x"}, {"name": "y"}])
    assert is_subset({"gone": None}, {})
    assert not is_subset({"gone": None}, {"gone": 1})
    assert not is_subset({"flag": True}, {"flag": 1})
    assert not is_subset({"a": 1}, {})


json_scalars = st.one_of(st.booleans(), st.integers(-5, 5), st.text("abc", max_size=3))
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text("xyz", min_size=1, max_size=2), inner, max_size=3)
    ),
    max_leaves=8,
)


@given(
    data=st.dictionaries(st.text("kv", min_size=1, max_size=3), json_values, max_size=4),
    labels=st.dictionaries(st.sampled_from(["a", "b", "c"]), st.sampled_from(["1", "2"]), max_size=3),
)
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_apply_is_idempotent(
    emulator: EmulatorHandle, kube: KubeClient, data: dict[str, Any], labels: dict[str, str]
) -> None:
    desired = {
        "apiVersion": MDEP_API,
        "kind": "ModelDeployment",
        "metadata": {"name": "p", "namespace": "ns", "labels": labels},
        "spec": data,
    }
    kube.apply(copy.deepcopy(desired))
    emulator.reset_counts()
    live, changed = kube.apply(copy.deepcopy(desired))
    assert not changed and emulator.writes() == 0
    assert is_subset(desired, live)


def test_concurrent_use_from_threads(emulator: EmulatorHandle, kube: KubeClient) -> None:
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda i: kube.apply(deployment(f"d{i}"))[1], range(16)))
    assert all(results) and len(kube.list("apps/v1", "Deployment", "ns")) == 16


def test_create_event(emulator: EmulatorHandle, kube: KubeClient) -> None:
    owner = kube.create(
        {"apiVersion": MDEP_API, "kind": "ModelDeployment", "metadata": {"name": "m", "namespace": "ns"}, "spec": {}}
    )
    event = kube.create_event(owner, "RolledBack", "canary failed: successRate 0.9 < 0.99", type="Warning")
    stored = emulator.list("v1/events", "ns")
    assert [e["metadata"]["name"] for e in stored] == [event["metadata"]["name"]]
    assert event["involvedObject"] == {
        "apiVersion": MDEP_API,
        "kind": "ModelDeployment",
        "name": "m",
        "namespace": "ns",
        "uid": owner["metadata"]["uid"],
        "resourceVersion": owner["metadata"]["resourceVersion"],
    }
    assert (event["reason"], event["type"], event["count"]) == ("RolledBack", "Warning", 1)
    assert event["firstTimestamp"] == event["lastTimestamp"] and event["reportingComponent"] == "modeldeploy"
