"""``modeldeploy.kubeapi.KubeClient`` against the real apiserver: CRUD, selectors, errors, patches, apply.

The client under test authenticates as a namespace user and goes through the fault proxy, which
here only counts requests (``writes``), except where a test injects a fault on purpose.
"""

from __future__ import annotations

import concurrent.futures
import copy
import os
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modeldeploy.api import ModelDeploymentSpec
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
from modeldeploy.render import (
    Owner,
    RuntimeImages,
    render_deployment,
    render_hpa,
    render_main_service,
    render_pdb,
    render_revision_service,
    revision_name,
    selector,
    spec_hash,
)
from modeldeploy.traffic import RouterTarget
from modeldeploy.traffic.gateway import render_httproute
from modeldeploy_sandbox.cluster import LocalCluster
from modeldeploy_sandbox.faults import FaultProxy, Refuse, Seen

from .users import namespace_user_token, token_client

NAMESPACE = f"kubeapi-{os.getpid()}"
OTHER = f"kubeapi-other-{os.getpid()}"
MDEP_API = "serving.modeldeploy.dev/v1alpha1"
WRITES = ("POST", "PUT", "PATCH", "DELETE")


@pytest.fixture(scope="module")
def proxy(cluster: LocalCluster) -> Iterator[FaultProxy]:
    with FaultProxy(cluster.control_plane.server, cluster.control_plane.ca_path) as running:
        yield running


@pytest.fixture(scope="module")
def kube(cluster: LocalCluster, proxy: FaultProxy) -> Iterator[KubeClient]:
    for namespace in (NAMESPACE, OTHER):
        cluster.create_namespace(namespace)
    client = token_client(proxy.url, namespace_user_token(cluster.admin, NAMESPACE))
    yield client
    client.close()
    for namespace in (NAMESPACE, OTHER):
        cluster.delete_namespace(namespace)


@pytest.fixture(autouse=True)
def no_rules_left(proxy: FaultProxy) -> Iterator[None]:
    yield
    proxy.clear()


def writes_after(proxy: FaultProxy, mark: int) -> list[Seen]:
    return [seen for seen in proxy.requests()[mark:] if seen.method in WRITES]


def deployment(name: str = "d", image: str = "img:1", namespace: str = NAMESPACE) -> dict[str, Any]:
    """No replicas: the real controllers make a ReplicaSet, but no pod."""
    labels = {"app.kubernetes.io/managed-by": "modeldeploy", "modeldeploy.dev/name": name}
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {"replicas": 0, "selector": {"matchLabels": labels},
                 "template": {"metadata": {"labels": labels},
                              "spec": {"containers": [{"name": "server", "image": image,
                                                       "ports": [{"containerPort": 8000}]}]}}},
    }


def configmap(name: str, **fields: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": NAMESPACE}, **fields}


def test_the_kinds_table_matches_the_apiservers_discovery(admin: KubeClient) -> None:
    assert set(KINDS) == {
        ("apps/v1", "Deployment"), ("v1", "Service"), ("v1", "ConfigMap"), ("v1", "Pod"), ("v1", "Event"),
        ("autoscaling/v2", "HorizontalPodAutoscaler"), ("policy/v1", "PodDisruptionBudget"),
        ("gateway.networking.k8s.io/v1", "HTTPRoute"), ("networking.k8s.io/v1", "NetworkPolicy"),
        (MDEP_API, "ModelDeployment"),
    }
    for (api_version, kind), info in KINDS.items():
        path = f"/apis/{api_version}" if "/" in api_version else f"/api/{api_version}"
        served = {r["kind"]: r for r in admin.request("GET", path)["resources"] if "/" not in r["name"]}
        assert (served[kind]["name"], served[kind]["namespaced"]) == (info.plural, info.namespaced), kind
    status_path = KINDS["apps/v1", "Deployment"].path("ns", "d", "status")
    assert status_path == "/apis/apps/v1/namespaces/ns/deployments/d/status"
    assert KINDS["v1", "Pod"].path(None) == "/api/v1/pods"


def test_crud_roundtrip(kube: KubeClient) -> None:
    assert kube.get("apps/v1", "Deployment", NAMESPACE, "crud") is None
    created = kube.create(deployment("crud"))
    assert created["metadata"]["uid"] and created["metadata"]["generation"] == 1
    assert kube.get("apps/v1", "Deployment", NAMESPACE, "crud")["metadata"]["uid"] == created["metadata"]["uid"]  # type: ignore[index]
    patched = kube.merge_patch("apps/v1", "Deployment", NAMESPACE, "crud", {"spec": {"minReadySeconds": 3}})
    assert patched["spec"]["minReadySeconds"] == 3 and patched["metadata"]["generation"] == 2
    live = kube.get("apps/v1", "Deployment", NAMESPACE, "crud")
    assert live is not None
    # Without a resourceVersion: unconditional (the deployment controller writes meanwhile).
    replaced = kube.replace({**live, "metadata": {**live["metadata"], "resourceVersion": None},
                             "spec": {**live["spec"], "minReadySeconds": 5}})
    assert replaced["spec"]["minReadySeconds"] == 5 and replaced["metadata"]["generation"] == 3
    status = kube.merge_patch("apps/v1", "Deployment", NAMESPACE, "crud", {"status": {"observedGeneration": 3}},
                              subresource="status")
    assert status["status"]["observedGeneration"] == 3 and status["metadata"]["generation"] == 3
    assert kube.delete("apps/v1", "Deployment", NAMESPACE, "crud") is True
    assert kube.delete("apps/v1", "Deployment", NAMESPACE, "crud") is False


def test_list_with_label_selectors_fills_kind(kube: KubeClient, admin: KubeClient) -> None:
    for name in ("sel-a", "sel-b"):
        kube.create(deployment(name))
    admin.create(deployment("sel-c", namespace=OTHER))
    names = lambda items: sorted(d["metadata"]["name"] for d in items)  # noqa: E731
    everywhere = admin.list("apps/v1", "Deployment", None, "modeldeploy.dev/name in (sel-a,sel-c)")
    assert names(everywhere) == ["sel-a", "sel-c"]
    assert all(d["kind"] == "Deployment" and d["apiVersion"] == "apps/v1" for d in everywhere)
    assert names(kube.list("apps/v1", "Deployment", NAMESPACE, {"modeldeploy.dev/name": "sel-b"})) == ["sel-b"]
    assert names(kube.list("apps/v1", "Deployment", NAMESPACE, "modeldeploy.dev/name notin (sel-a)")) == ["sel-b"]
    assert format_label_selector({"b": "2", "a": "1"}) == "a=1,b=2"


def test_errors_carry_the_server_status(kube: KubeClient) -> None:
    kube.create(deployment("err"))
    with pytest.raises(AlreadyExists) as exists:
        kube.create(deployment("err"))
    assert isinstance(exists.value, Conflict) and exists.value.status == 409
    assert exists.value.message == 'deployments.apps "err" already exists'
    with pytest.raises(Conflict) as stale:
        kube.merge_patch("apps/v1", "Deployment", NAMESPACE, "err", {"metadata": {"resourceVersion": "1"}})
    assert stale.value.reason == "Conflict" and "the object has been modified" in stale.value.message
    with pytest.raises(Invalid) as invalid:
        kube.create(deployment("Not_A_Name"))
    assert invalid.value.reason == "Invalid" and "metadata.name: Invalid value" in invalid.value.message
    assert invalid.value.body["details"]["causes"][0]["field"] == "metadata.name"
    with pytest.raises(NotFound) as missing:
        kube.merge_patch("apps/v1", "Deployment", NAMESPACE, "nope", {"spec": {}})
    assert missing.value.message == 'deployments.apps "nope" not found'
    with pytest.raises(KubeApiError) as forbidden:
        kube.list("apps/v1", "Deployment", OTHER)  # the user's rights end at its namespace
    assert forbidden.value.status == 403 and forbidden.value.reason == "Forbidden"
    with pytest.raises(KeyError, match="KINDS"):
        kube.get("apps/v1", "StatefulSet", NAMESPACE, "x")


def test_an_unreachable_server_is_an_api_error() -> None:
    client = KubeClient("http://127.0.0.1:9", timeout=1)
    with pytest.raises(KubeApiError) as error:
        client.get("v1", "ConfigMap", NAMESPACE, "x")
    assert error.value.status == 0


def test_merge_patch_nulls_delete_and_lists_are_replaced_whole(kube: KubeClient) -> None:
    two = deployment("merge")
    two["metadata"]["annotations"] = {"a": "1", "b": "2"}
    containers = two["spec"]["template"]["spec"]["containers"]
    containers.append({**containers[0], "name": "sidecar", "ports": [{"containerPort": 9000}]})
    kube.create(two)
    patched = kube.merge_patch("apps/v1", "Deployment", NAMESPACE, "merge", {"metadata": {"annotations": {"a": None}}})
    assert "a" not in patched["metadata"]["annotations"] and patched["metadata"]["annotations"]["b"] == "2"
    # A strategic merge patch would merge containers by name and keep the sidecar: this is a merge patch.
    patch = {"spec": {"template": {"spec": {"containers": [{"name": "server", "image": "img:2"}]}}}}
    patched = kube.merge_patch("apps/v1", "Deployment", NAMESPACE, "merge", patch)
    assert [c["name"] for c in patched["spec"]["template"]["spec"]["containers"]] == ["server"]


# ----- apply -----


def test_apply_creates_then_writes_nothing(kube: KubeClient, proxy: FaultProxy) -> None:
    created, changed = kube.apply(deployment("applied"))
    assert changed and created["spec"]["replicas"] == 0
    mark = len(proxy.requests())
    live, changed = kube.apply(deployment("applied"))
    assert not changed and live["metadata"]["uid"] == created["metadata"]["uid"]
    assert writes_after(proxy, mark) == []  # a resync with nothing changed writes nothing


def test_apply_patches_only_what_differs(kube: KubeClient, proxy: FaultProxy, admin: KubeClient) -> None:
    kube.apply(deployment("differs"))
    # The deployment controller's annotation and status, the apiserver's defaults: not differences.
    live = admin.get("apps/v1", "Deployment", NAMESPACE, "differs")
    assert live is not None and live["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"]
    admin.merge_patch("apps/v1", "Deployment", NAMESPACE, "differs", {"metadata": {"annotations": {"team": "ml"}}})
    mark = len(proxy.requests())
    assert kube.apply(deployment("differs"))[1] is False
    assert writes_after(proxy, mark) == []

    mark = len(proxy.requests())
    updated, changed = kube.apply(deployment("differs", image="img:2"))
    assert changed and updated["spec"]["template"]["spec"]["containers"][0]["image"] == "img:2"
    assert updated["metadata"]["annotations"]["team"] == "ml"  # fields it does not set are left alone
    assert [(s.method, s.status) for s in writes_after(proxy, mark)] == [("PATCH", 200)]


def test_apply_leaves_status_alone(kube: KubeClient, proxy: FaultProxy) -> None:
    desired = {"apiVersion": MDEP_API, "kind": "ModelDeployment", "metadata": {"name": "m", "namespace": NAMESPACE},
               "spec": {"model": {"uri": "https://models.example/m/1/model.onnx", "allowUnverified": True}},
               "status": {"phase": "Healthy"}}
    created, _ = kube.apply(desired)
    assert "phase" not in (created.get("status") or {})  # status is a subresource: a create ignores it
    mark = len(proxy.requests())
    assert kube.apply(desired)[1] is False
    assert writes_after(proxy, mark) == []


def test_apply_survives_a_concurrent_create(kube: KubeClient, proxy: FaultProxy) -> None:
    kube.create(deployment("raced"))
    # The GET says absent (as if it ran just before another writer's create): apply must not fail.
    absent = proxy.add(Refuse(404, "NotFound", 'deployments.apps "raced" not found'), method="GET",
                       path=r"/deployments/raced$")
    mark = len(proxy.requests())
    live, changed = kube.apply(deployment("raced"))
    assert not changed and live["metadata"]["name"] == "raced" and absent.hits == 1
    assert [(s.method, s.status) for s in writes_after(proxy, mark)] == [("POST", 409)]


def test_apply_from_many_threads_creates_once(kube: KubeClient, admin: KubeClient) -> None:
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        changed = list(pool.map(lambda _: kube.apply(configmap("shared", data={"k": "v"}))[1], range(8)))
        created = list(pool.map(lambda i: kube.apply(configmap(f"many-{i}", data={"i": str(i)}))[1], range(16)))
    assert changed.count(True) == 1  # one create; the others found it, equal, and wrote nothing
    assert all(created) and len([c for c in admin.list("v1", "ConfigMap", NAMESPACE)
                                 if c["metadata"]["name"].startswith("many-")]) == 16


def test_is_subset_rules() -> None:
    assert is_subset({"a": {"b": 1}}, {"a": {"b": 1, "c": 2}, "d": 3})
    assert not is_subset({"a": {"b": 1}}, {"a": {"b": 2}})
    assert is_subset([{"name": "x"}], [{"name": "x", "protocol": "TCP"}])
    assert not is_subset([{"name": "x"}], [{"name": "x"}, {"name": "y"}])
    assert is_subset({"gone": None}, {})
    assert not is_subset({"gone": None}, {"gone": 1})
    assert not is_subset({"flag": True}, {"flag": 1})
    assert not is_subset({"a": 1}, {})


_keys = st.text("abc-.", min_size=1, max_size=4).filter(lambda k: k[0].isalpha() and k[-1].isalpha())


@given(data=st.dictionaries(_keys, st.text(max_size=4), min_size=1, max_size=3),
       labels=st.dictionaries(st.sampled_from(["a", "b", "c"]), st.sampled_from(["", "1", "x-y"]), min_size=1,
                              max_size=3),
       annotations=st.dictionaries(_keys, st.text(max_size=4), min_size=1, max_size=2))
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_apply_is_idempotent_on_what_the_apiserver_stores(
        kube: KubeClient, proxy: FaultProxy, data: dict[str, str], labels: dict[str, str],
        annotations: dict[str, str]) -> None:
    desired = configmap("idempotent", data=data)
    desired["metadata"].update(labels=labels, annotations=annotations)
    kube.apply(copy.deepcopy(desired))
    mark = len(proxy.requests())
    live, changed = kube.apply(copy.deepcopy(desired))
    assert (changed, writes_after(proxy, mark)) == (False, [])
    assert is_subset(desired, live)


def test_apply_of_empty_maps_writes_nothing_the_second_time(kube: KubeClient, proxy: FaultProxy) -> None:
    """The apiserver does not store an empty map (``labels: {}``, ``data: {}``): that is no difference."""
    desired = configmap("empty-maps", data={})
    desired["metadata"]["labels"] = {}
    kube.apply(copy.deepcopy(desired))
    mark = len(proxy.requests())
    _, changed = kube.apply(copy.deepcopy(desired))
    assert (changed, [s.method for s in writes_after(proxy, mark)]) == (False, [])


def test_create_event(kube: KubeClient, admin: KubeClient) -> None:
    owner = kube.create({"apiVersion": MDEP_API, "kind": "ModelDeployment",
                         "metadata": {"name": "evented", "namespace": NAMESPACE},
                         "spec": {"model": {"uri": "https://models.example/e/1/model.onnx", "allowUnverified": True}}})
    event = kube.create_event(owner, "RolledBack", "canary failed: successRate 0.9 < 0.99", type="Warning")
    stored = [e for e in admin.list("v1", "Event", NAMESPACE) if e["involvedObject"].get("name") == "evented"]
    assert [e["metadata"]["name"] for e in stored] == [event["metadata"]["name"]]
    assert stored[0]["involvedObject"] == {
        "apiVersion": MDEP_API, "kind": "ModelDeployment", "name": "evented", "namespace": NAMESPACE,
        "uid": owner["metadata"]["uid"], "resourceVersion": owner["metadata"]["resourceVersion"],
    }
    assert (stored[0]["reason"], stored[0]["type"], stored[0]["count"]) == ("RolledBack", "Warning", 1)
    assert stored[0]["message"] == "canary failed: successRate 0.9 < 0.99"
    assert stored[0]["reportingComponent"] == "modeldeploy" and stored[0]["source"] == {"component": "modeldeploy"}


# ----- the operator's own children -----


def differences(desired: Any, live: Any, path: str = "") -> list[str]:
    """Where ``desired`` is not contained in ``live`` (what makes apply write), as paths."""
    if isinstance(desired, dict) and isinstance(live, dict):
        return [p for key, value in desired.items()
                for p in (differences(value, live.get(key), f"{path}.{key}") if value is not None or key in live
                          else [])]
    if isinstance(desired, list) and isinstance(live, list) and len(desired) == len(live):
        pairs = enumerate(zip(desired, live, strict=True))
        return [p for i, (d, v) in pairs for p in differences(d, v, f"{path}[{i}]")]
    return [] if is_subset(desired, live) else [f"{path}: {desired!r} -> {live!r}"]


def test_applying_each_rendered_child_again_writes_nothing(kube: KubeClient, proxy: FaultProxy) -> None:
    """What the apiserver stores is canonical (quantities) and defaulted: a resync must still be a no-op."""
    spec = ModelDeploymentSpec.model_validate({
        "model": {"uri": "https://models.example/resnet/1/model.onnx", "digest": "sha256:" + "ab" * 32},
        "resources": {"requests": {"cpu": "0.5", "memory": "1024Mi"}, "limits": {"memory": "2Gi"},
                      "gpu": {"count": 1, "product": "NVIDIA-A100-SXM4-80GB"}},
        "autoscaling": {"minReplicas": 1, "maxReplicas": 3, "metrics": [{"type": "cpu", "targetUtilization": 70}]},
        "rollout": {"traffic": {"router": "gatewayAPI", "gateway": {"parentRefs": [{"name": "public"}]}}},
    })
    md = kube.create({"apiVersion": MDEP_API, "kind": "ModelDeployment",
                      "metadata": {"name": "rendered", "namespace": NAMESPACE}, "spec": spec.to_dict()})
    owner = Owner(MDEP_API, "ModelDeployment", "rendered", NAMESPACE, md["metadata"]["uid"])
    revision = revision_name("rendered", spec_hash(spec))
    children = [
        render_deployment(spec, name="rendered", namespace=NAMESPACE, revision=revision, spec_hash=spec_hash(spec),
                          role="stable", replicas=0, owner=owner, images=RuntimeImages()),
        render_revision_service(name="rendered", namespace=NAMESPACE, revision=revision, role="stable", owner=owner),
        render_main_service(name="rendered", namespace=NAMESPACE, owner=owner, selector=selector("rendered")),
        render_hpa(spec, name="rendered", namespace=NAMESPACE, target_deployment=revision, owner=owner),
        render_pdb(name="rendered", namespace=NAMESPACE, owner=owner),
        render_httproute(RouterTarget(kube, owner, spec), {revision: 100}),
    ]
    for child in children:
        assert kube.apply(copy.deepcopy(child))[1] is True
    rewritten: dict[str, list[str]] = {}
    for child in children:
        mark = len(proxy.requests())
        live, changed = kube.apply(copy.deepcopy(child))
        if changed or writes_after(proxy, mark):
            rewritten[child["kind"]] = differences(child, live)
    assert rewritten == {}, f"apply writes on every resync: {rewritten}"
