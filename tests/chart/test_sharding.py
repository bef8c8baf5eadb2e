"""The chart's `shards`: one operator Deployment, ServiceAccount, RBAC and kopf peering name per shard;
bad shard lists refused with a message naming the shard. Rendered by the real Helm engine."""

from __future__ import annotations

from typing import Any

import helm_python
import kubernetes_validate
import pytest

from modeldeploy.sharding import SHARD_LABEL, shard_from_env

from .rendering import CHART, NAMESPACE, RELEASE, by_kind, one, render, render_files

LABEL_SHARDS: dict[str, Any] = {
    "shards": [{"name": "a", "label": "a", "default": True}, {"name": "b", "label": "b", "replicas": 1}],
    "serviceMonitor": {"enabled": True}, "podMonitor": {"enabled": True},
}
NAMESPACE_SHARDS: dict[str, Any] = {
    "shards": [{"name": "east", "namespaces": ["ml", "risk"]}, {"name": "west", "namespaces": ["ads"]}],
    "podMonitor": {"enabled": True},
}
SHARD_POD_LABEL = "modeldeploy.dev/operator-shard"


def deployments(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["labels"][SHARD_POD_LABEL]: d for d in by_kind(objects, "Deployment")}


def container(deployment: dict[str, Any]) -> dict[str, Any]:
    containers: list[dict[str, Any]] = deployment["spec"]["template"]["spec"]["containers"]
    return containers[0]


def env(deployment: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in container(deployment)["env"] if "value" in e}


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def test_no_shards_renders_the_single_operator_of_before() -> None:
    no_shards: list[dict[str, Any] | None] = [None, {"shards": []}]
    for values in no_shards:
        objects = render(values)
        (deployment,) = by_kind(objects, "Deployment")
        assert deployment["metadata"]["name"] == RELEASE
        assert SHARD_POD_LABEL not in deployment["spec"]["selector"]["matchLabels"]
        assert env(deployment)["KOPF_PEERING"] == "modeldeploy"
        assert not {"MODELDEPLOY_SHARD", "MODELDEPLOY_SHARDS", "MODELDEPLOY_SHARD_DEFAULT"} & set(env(deployment))
        assert one(objects, "ClusterKopfPeering")["metadata"]["name"] == "modeldeploy"
        assert one(objects, "ServiceAccount")["metadata"]["name"] == RELEASE
    assert render({"shards": []}) == render()


@pytest.mark.parametrize("values", [LABEL_SHARDS, NAMESPACE_SHARDS], ids=["label", "namespace"])
def test_every_sharded_object_is_valid_and_the_chart_lints(values: dict[str, Any]) -> None:
    for obj in render(values):
        if obj["apiVersion"].startswith(("monitoring.coreos.com/", "kopf.dev/")):
            continue  # not core kinds; test_render checks their shape
        kubernetes_validate.validate(obj, "1.30", strict=True)
    report = helm_python.lint(CHART, values, strict=True, kube_version="v1.30.0")
    assert [m for m in report["messages"] if m["severity"] >= 2] == [] and report["errors"] == [], report


def test_label_shards_get_a_deployment_account_and_peering_each() -> None:
    objects = render(LABEL_SHARDS)
    by_shard = deployments(objects)
    assert sorted(by_shard) == ["a", "b"]
    a, b = by_shard["a"], by_shard["b"]
    assert (a["metadata"]["name"], b["metadata"]["name"]) == (f"{RELEASE}-a", f"{RELEASE}-b")
    assert (a["spec"]["replicas"], b["spec"]["replicas"]) == (2, 1)  # `replicas`, or the shard's own
    # The Deployments' selectors do not overlap: neither adopts the other's pods.
    pod_labels = {name: d["spec"]["template"]["metadata"]["labels"] for name, d in by_shard.items()}
    assert selects(a["spec"]["selector"]["matchLabels"], pod_labels["a"])
    assert not selects(a["spec"]["selector"]["matchLabels"], pod_labels["b"])
    assert not selects(b["spec"]["selector"]["matchLabels"], pod_labels["a"])
    # Replicas of one shard spread over nodes among themselves.
    term = a["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"][
        "preferredDuringSchedulingIgnoredDuringExecution"][0]["podAffinityTerm"]
    assert term["labelSelector"]["matchLabels"][SHARD_POD_LABEL] == "a"

    assert env(a).items() >= {"KOPF_PEERING": "modeldeploy-a", "MODELDEPLOY_SHARD": "a", "MODELDEPLOY_SHARDS": "a,b",
                              "MODELDEPLOY_SHARD_DEFAULT": "true"}.items()
    assert env(b).items() >= {"KOPF_PEERING": "modeldeploy-b", "MODELDEPLOY_SHARD": "b", "MODELDEPLOY_SHARDS": "a,b",
                              "MODELDEPLOY_SHARD_DEFAULT": "false"}.items()
    assert container(a)["args"][0] == container(b)["args"][0] == "--all-namespaces"
    assert "MODELDEPLOY_NAMESPACED" not in env(a)
    assert sorted(p["metadata"]["name"] for p in by_kind(objects, "ClusterKopfPeering")) == [
        "modeldeploy-a", "modeldeploy-b"]

    accounts = {d["spec"]["template"]["spec"]["serviceAccountName"] for d in by_shard.values()}
    assert accounts == {f"{RELEASE}-a", f"{RELEASE}-b"} == {s["metadata"]["name"] for s in
                                                             by_kind(objects, "ServiceAccount")}
    (role,) = by_kind(objects, "ClusterRole")
    bound = {(b["roleRef"]["name"], s["name"]) for b in by_kind(objects, "ClusterRoleBinding") for s in b["subjects"]}
    assert bound == {(role["metadata"]["name"], account) for account in accounts}


def test_label_shards_partition_every_label_value_through_the_operators_own_parsing() -> None:
    """The env the chart gives each shard, read by `shard_from_env`: every object has exactly one owner."""
    shard_objects = [shard_from_env(env(d)) for d in deployments(render(LABEL_SHARDS)).values()]
    for value in (None, "a", "b", "c", "A"):
        labels = {} if value is None else {SHARD_LABEL: value}
        assert sum(shard.owns(labels) for shard in shard_objects) == 1, value
    without_default = {"shards": [{"name": "a", "label": "a"}, {"name": "b", "label": "b"}]}
    shard_objects = [shard_from_env(env(d)) for d in deployments(render(without_default)).values()]
    owners = {value: sum(s.owns({} if value is None else {SHARD_LABEL: value}) for s in shard_objects)
              for value in (None, "a", "b", "c")}
    assert owners == {None: 0, "a": 1, "b": 1, "c": 0}  # no default shard: unlabelled objects have no owner


def test_the_metrics_service_and_monitor_cover_every_shard() -> None:
    objects = render(LABEL_SHARDS)
    service = one(objects, "Service")
    for deployment in deployments(objects).values():
        assert selects(service["spec"]["selector"], deployment["spec"]["template"]["metadata"]["labels"])
    monitor = one(objects, "ServiceMonitor")
    assert selects(monitor["spec"]["selector"]["matchLabels"], service["metadata"]["labels"])
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["relabelings"] == [{
        "sourceLabels": ["__meta_kubernetes_pod_label_modeldeploy_dev_operator_shard"],
        "targetLabel": "shard", "action": "replace"}]
    policy = next(p for p in by_kind(objects, "NetworkPolicy") if p["metadata"]["namespace"] == NAMESPACE)
    for deployment in deployments(objects).values():
        pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert selects(policy["spec"]["podSelector"]["matchLabels"], pod_labels)


def test_namespace_shards_watch_and_may_touch_only_their_own_namespaces() -> None:
    objects = render(NAMESPACE_SHARDS)
    by_shard = deployments(objects)
    assert container(by_shard["east"])["args"][:2] == ["--namespace=ml", "--namespace=risk"]
    assert container(by_shard["west"])["args"][0] == "--namespace=ads"
    assert "--all-namespaces" not in container(by_shard["east"])["args"] + container(by_shard["west"])["args"]
    for name, deployment in by_shard.items():
        assert env(deployment)["MODELDEPLOY_NAMESPACED"] == "true"
        assert env(deployment)["KOPF_PEERING"] == f"modeldeploy-{name}"
        assert "MODELDEPLOY_SHARD" not in env(deployment)
    assert sorted((p["metadata"]["namespace"], p["metadata"]["name"]) for p in by_kind(objects, "KopfPeering")) == [
        ("ads", "modeldeploy-west"), ("ml", "modeldeploy-east"), ("risk", "modeldeploy-east")]
    assert by_kind(objects, "ClusterKopfPeering") == []
    # Each shard's account is bound in its own namespaces only; no cluster-wide rules beyond the finalizer one.
    bindings = sorted((b["metadata"]["namespace"], s["name"]) for b in by_kind(objects, "RoleBinding")
                      if b["roleRef"]["name"] == RELEASE for s in b["subjects"])
    assert bindings == [("ads", f"{RELEASE}-west"), ("ml", f"{RELEASE}-east"), ("risk", f"{RELEASE}-east")]
    assert sorted(r["metadata"]["namespace"] for r in by_kind(objects, "Role") if r["metadata"]["name"] == RELEASE) == [
        "ads", "ml", "risk"]
    assert [r["metadata"]["name"] for r in by_kind(objects, "ClusterRole")] == [f"{RELEASE}-finalizers"]
    # Monitoring and the model pods' policies follow the shards' namespaces.
    assert sorted(one(objects, "PodMonitor")["spec"]["namespaceSelector"]["matchNames"]) == ["ads", "ml", "risk"]
    model_policies = [p for p in by_kind(objects, "NetworkPolicy") if p["metadata"]["name"].endswith("-model-pods")]
    assert sorted(p["metadata"]["namespace"] for p in model_policies) == ["ads", "ml", "risk"]


def test_label_shards_within_watch_namespaces_keep_a_peering_per_shard_in_each() -> None:
    objects = render({"watchNamespaces": ["ml", "risk"],
                      "shards": [{"name": "a", "label": "a"}, {"name": "b", "label": "b"}]})
    for deployment in deployments(objects).values():
        assert container(deployment)["args"][:2] == ["--namespace=ml", "--namespace=risk"]
    assert sorted((p["metadata"]["namespace"], p["metadata"]["name"]) for p in by_kind(objects, "KopfPeering")) == [
        ("ml", "modeldeploy-a"), ("ml", "modeldeploy-b"), ("risk", "modeldeploy-a"), ("risk", "modeldeploy-b")]
    # One Role per namespace, bound to both shards' accounts.
    assert sorted(r["metadata"]["namespace"] for r in by_kind(objects, "Role") if r["metadata"]["name"] == RELEASE) == [
        "ml", "risk"]
    bindings = sorted((b["metadata"]["namespace"], s["name"]) for b in by_kind(objects, "RoleBinding")
                      if b["roleRef"]["name"] == RELEASE for s in b["subjects"])
    assert bindings == [("ml", f"{RELEASE}-a"), ("ml", f"{RELEASE}-b"), ("risk", f"{RELEASE}-a"),
                        ("risk", f"{RELEASE}-b")]


def test_notes_say_which_shard_serves_what_and_warn_without_a_default() -> None:
    notes = render_files(LABEL_SHARDS)["modeldeploy/templates/NOTES.txt"]
    assert "modeldeploy-a: ModelDeployments labelled modeldeploy.dev/shard=a, and those whose label names no other" \
           in notes and "No shard is the default" not in notes
    notes = render_files({"shards": [{"name": "a", "label": "a"}]})["modeldeploy/templates/NOTES.txt"]
    assert "No shard is the default" in notes
    assert "modeldeploy-east: namespaces ml, risk" in render_files(NAMESPACE_SHARDS)["modeldeploy/templates/NOTES.txt"]


BAD_SHARDS = {
    "both kinds in one shard": ({"shards": [{"name": "a", "label": "a", "namespaces": ["x"]}]}, "/shards/0"),
    "neither kind": ({"shards": [{"name": "a"}]}, "/shards/0"),
    "a default namespace shard": ({"shards": [{"name": "a", "namespaces": ["x"], "default": True}]},
                                  "/shards/0"),
    "a bad name": ({"shards": [{"name": "Shard_A", "label": "a"}]}, "/shards/0/name"),
    "a bad label value": ({"shards": [{"name": "a", "label": "-a"}]}, "/shards/0/label"),
    "an unknown key": ({"shards": [{"name": "a", "label": "a", "selector": "x"}]}, "/shards/0"),
    "a duplicate name": ({"shards": [{"name": "a", "label": "a"}, {"name": "a", "label": "b"}]},
                         'shards[1] (a): the shard name "a" is used twice'),
    "a duplicate label": ({"shards": [{"name": "a", "label": "x"}, {"name": "b", "label": "x"}]},
                          'shards[1] (b): the label value "x" is already the shard a\'s'),
    "a namespace in two shards": ({"shards": [{"name": "a", "namespaces": ["x", "y"]},
                                              {"name": "b", "namespaces": ["y"]}]},
                                  'shards[1] (b): namespace "y" is already served by the shard a'),
    "two defaults": ({"shards": [{"name": "a", "label": "a", "default": True},
                                 {"name": "b", "label": "b", "default": True}]},
                     "shards: a, b are all marked default; at most one shard may be"),
    "mixed kinds": ({"shards": [{"name": "a", "label": "a"}, {"name": "b", "namespaces": ["x"]}]},
                    "shards: shards[0] (a) is a label shard and shards[1] (b) a namespace shard"),
    "namespace shards with watchNamespaces": ({"watchNamespaces": ["x"],
                                               "shards": [{"name": "a", "namespaces": ["y"]}]},
                                              "shards[0] (a): namespace shards list their own namespaces"),
}


@pytest.mark.parametrize(("values", "message"), BAD_SHARDS.values(), ids=BAD_SHARDS.keys())
def test_a_bad_shard_list_is_refused_naming_the_shard(values: dict[str, Any], message: str) -> None:
    with pytest.raises((helm_python.HelmValuesError, helm_python.HelmRenderError)) as refused:
        render(values)
    assert message in str(refused.value)
