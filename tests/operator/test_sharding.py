"""Sharding past one replica: two operator processes, each started from the chart's `shards` (its own
Deployment's args and env, its own ServiceAccount and kopf peering name), serve one cluster, and every
ModelDeployment is reconciled by exactly one of them.

The proof is the apiserver's audit log: each shard runs as its own ServiceAccount, so every write is
attributed to one shard by the user that made it. Pods never run here (a nodeSelector no node has):
what is tested is who writes, and a reconcile writes its children and status without running pods.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from modeldeploy.sharding import SHARD_LABEL, shard_from_env
from modeldeploy_sandbox import chart, manifests
from modeldeploy_sandbox.artifacts import Artifact
from modeldeploy_sandbox.cluster import LocalCluster
from modeldeploy_sandbox.operator_process import OperatorProcess
from modeldeploy_sandbox.sandbox import API_VERSION, KIND, Sandbox, model_deployment

from .audit import Call, mark, operator_calls

RECONCILE_TIMEOUT = 90.0
# No node has this label: the children are made, no pod runs (the test is about who writes).
NOWHERE = {"nodeSelector": {"modeldeploy.test/no-such-node": "true"}}


@pytest.fixture(autouse=True)
def no_forbidden(cluster: LocalCluster) -> Iterator[None]:
    """Each shard's own ServiceAccount and RBAC suffice: no request of either shard is refused."""
    refused_before = len(cluster.forbidden())
    yield
    assert cluster.forbidden()[refused_before:] == []


def user(shard: str) -> str:
    """The audit log's user of shard ``shard``'s operator: its own ServiceAccount (named after the shard)."""
    values = {"shards": [{"name": shard, "label": shard}]}
    return f"system:serviceaccount:{chart.RELEASE_NAMESPACE}:{chart.service_account(values, shard)}"


def manifest(name: str, artifact: Artifact, shard_label: str | None, max_replicas: int = 2) -> dict[str, Any]:
    body = model_deployment(name, artifact, resources=NOWHERE,
                            autoscaling={"minReplicas": 1, "maxReplicas": max_replicas})
    if shard_label is not None:
        body["metadata"]["labels"] = {SHARD_LABEL: shard_label}
    return body


def belongs(call_name: str, name: str) -> bool:
    """An API object of ModelDeployment ``name``: itself, a child (``name-<hash>``) or an Event (``name.<id>``)."""
    return call_name == name or call_name.startswith((f"{name}-", f"{name}."))


def kopf_bookkeeping(call: Call) -> bool:
    """kopf's own writes (its finalizer), as opposed to a reconcile's (the operator's client)."""
    return call.user_agent.startswith("kopf/")


def writers(cluster: LocalCluster, namespace: str, names: list[str], since: int) -> dict[str, set[str]]:
    """ModelDeployment name -> the users that wrote it, its status or its children (Events too) after ``since``."""
    found: dict[str, set[str]] = {name: set() for name in names}
    for call in operator_calls(cluster, namespace, since):
        if not call.write or call.resource == "kopfpeerings":
            continue
        for name in names:
            if belongs(call.name, name):
                found[name].add(call.user)
    return found


def write_log(cluster: LocalCluster, namespace: str, since: int) -> list[str]:
    """Every write of the operators in ``namespace``: what a failed assertion shows."""
    return [f"{c.user.rsplit(':', 1)[-1]} {c.verb} {c.resource}{'/' + c.subresource if c.subresource else ''} "
            f"{c.name} {c.code} {c.user_agent}" for c in operator_calls(cluster, namespace, since) if c.write]


def reconciled(sb: Sandbox, name: str, generation: int) -> dict[str, Any]:
    return sb.wait_for(name, lambda s: s.get("observedGeneration") == generation, RECONCILE_TIMEOUT,
                       f"{name} generation {generation} reconciled")


def install_peerings(cluster: LocalCluster, values: Mapping[str, Any]) -> None:
    """kopf's peering CRDs and the per-shard peering objects the chart renders (kopf never creates them)."""
    manifests.apply_all(cluster.admin, manifests.load_documents([chart.CHART / "crds" / "kopf-peerings.yaml"]))
    for obj in chart.render(values):
        if obj["kind"] in ("KopfPeering", "ClusterKopfPeering"):
            manifests.server_side_apply(cluster.admin, obj)


@contextlib.contextmanager
def shards(cluster: LocalCluster, values: dict[str, Any], names: tuple[str, ...]) -> Iterator[list[OperatorProcess]]:
    """One operator process per shard, each with its Deployment's args/env, ServiceAccount and peering."""
    install_peerings(cluster, values)
    with contextlib.ExitStack() as stack:
        processes = []
        for name in names:
            env = {e["name"]: e.get("value") for e in chart.operator_container(values, name)["env"]}
            processes.append(stack.enter_context(
                cluster.operator(values=values, shard=name, peering=str(env["KOPF_PEERING"]))))
        yield processes


def test_each_label_shards_selector_lists_on_the_apiserver_exactly_what_it_owns(bare_sandbox: Sandbox) -> None:
    """The server-side selector (the operator's ModelDeployment watch) and `Shard.owns` (kopf's filter) agree,
    as the real apiserver evaluates the selector -- `notin` included, which matches unlabelled objects too."""
    sb = bare_sandbox
    values = {"shards": [{"name": "a", "label": "a", "default": True}, {"name": "b", "label": "b"},
                         {"name": "c", "label": "c"}]}
    artifact = sb.artifacts.linear("m/1/model.onnx")
    cases = {"unlabelled": None, "ma": "a", "mb": "b", "mc": "c", "mtypo": "typo"}
    for name, label in cases.items():
        body = manifest(name, artifact, label)
        body["metadata"]["namespace"] = sb.namespace
        sb.kube.create(body)
    owned: dict[str, set[str]] = {}
    for shard_name in ("a", "b", "c"):
        env = {e["name"]: str(e["value"]) for e in chart.operator_container(values, shard_name)["env"] if "value" in e}
        shard = shard_from_env(env)
        listed = {o["metadata"]["name"] for o in sb.kube.list(API_VERSION, KIND, sb.namespace, shard.label_selector())}
        assert listed == {n for n, label in cases.items() if shard.owns({} if label is None else {SHARD_LABEL: label})}
        owned[shard_name] = listed
    assert owned == {"a": {"unlabelled", "ma", "mtypo"}, "b": {"mb"}, "c": {"mc"}}


@pytest.mark.parametrize("cluster_wide", [False, True], ids=["in-watch-namespaces", "cluster-wide"])
def test_two_label_shards_each_reconcile_only_their_own_objects(
        bare_sandbox: Sandbox, cluster: LocalCluster, cluster_wide: bool) -> None:
    """Cluster-wide: a ClusterKopfPeering and a ClusterRoleBinding per shard (no default shard here: it
    would serve every unlabelled object of the test cluster). The label values are this test's own, so
    that a cluster-wide shard never meets objects other tests left in namespaces still terminating."""
    sb = bare_sandbox
    label = {"a": f"{sb.namespace}-a", "b": f"{sb.namespace}-b"}
    values: dict[str, Any] = {"shards": [{"name": "a", "label": label["a"]}, {"name": "b", "label": label["b"]}]}
    if not cluster_wide:
        values["watchNamespaces"] = [sb.namespace]
    artifact = sb.artifacts.linear("m/1/model.onnx")
    names = ["unlabelled", "ma", "mb", "mb2"]
    since = mark(cluster)
    with shards(cluster, values, ("a", "b")):
        # The unlabelled object first: both shards see its event before the others' (one watch stream).
        sb.apply(manifest("unlabelled", artifact, None))
        generations = {name: sb.apply(manifest(name, artifact, label[shard]))["metadata"]["generation"]
                       for name, shard in (("ma", "a"), ("mb", "b"), ("mb2", "b"))}
        for name, generation in generations.items():
            reconciled(sb, name, generation)
        before_relabel = mark(cluster)
        assert writers(cluster, sb.namespace, names, since) == {
            "unlabelled": set(), "ma": {user("a")}, "mb": {user("b")}, "mb2": {user("b")}}, \
            write_log(cluster, sb.namespace, since)
        # No default shard: nobody serves an object without the label. Labelling it is how it gets one.
        assert sb.status("unlabelled") == {}
        labelled = sb.kube.merge_patch(API_VERSION, KIND, sb.namespace, "unlabelled",
                                       {"metadata": {"labels": {SHARD_LABEL: label["a"]}}})
        reconciled(sb, "unlabelled", labelled["metadata"]["generation"])
        assert writers(cluster, sb.namespace, ["unlabelled"], before_relabel) == {"unlabelled": {user("a")}}

        # Moving an object: relabel it (here with a spec change, so that the new shard must write).
        before_move = mark(cluster)
        moved = sb.apply(manifest("ma", artifact, label["b"], max_replicas=3))
        reconciled(sb, "ma", moved["metadata"]["generation"])
        writes = [c for c in operator_calls(cluster, sb.namespace, since=before_move)
                  if c.write and belongs(c.name, "ma")]
        assert {c.user for c in writes if not kopf_bookkeeping(c)} == {user("b")}, write_log(
            cluster, sb.namespace, before_move)
        # The old shard only let go: no reconcile write, at most kopf's own patch of the object.
        assert {(c.verb, c.resource, c.subresource) for c in writes if c.user == user("a")} <= {
            ("patch", "modeldeployments", "")}, write_log(cluster, sb.namespace, before_move)


def test_the_default_label_shard_serves_objects_whose_label_names_no_other_shard(
        bare_sandbox: Sandbox, cluster: LocalCluster) -> None:
    sb = bare_sandbox
    values = {"watchNamespaces": [sb.namespace],
              "shards": [{"name": "a", "label": "a", "default": True}, {"name": "b", "label": "b"}]}
    artifact = sb.artifacts.linear("m/1/model.onnx")
    cases = {"unlabelled": None, "mc": "c", "ma": "a", "mb": "b"}  # "c" names no shard
    since = mark(cluster)
    with shards(cluster, values, ("a", "b")):
        generations = {name: sb.apply(manifest(name, artifact, label))["metadata"]["generation"]
                       for name, label in cases.items()}
        for name, generation in generations.items():
            reconciled(sb, name, generation)
    assert writers(cluster, sb.namespace, list(cases), since) == {
        "unlabelled": {user("a")}, "mc": {user("a")}, "ma": {user("a")}, "mb": {user("b")}}, \
        write_log(cluster, sb.namespace, since)


def test_two_namespace_shards_each_reconcile_only_their_namespace(
        bare_sandbox: Sandbox, cluster: LocalCluster) -> None:
    with Sandbox(cluster) as other:
        first, second = bare_sandbox, other
        values = {"shards": [{"name": "a", "namespaces": [first.namespace]},
                             {"name": "b", "namespaces": [second.namespace]}]}
        since = mark(cluster)
        with shards(cluster, values, ("a", "b")):
            for sb in (first, second):
                # A shard label means nothing to namespace shards: the namespace decides.
                body = manifest("m", sb.artifacts.linear("m/1/model.onnx"), "b")
                reconciled(sb, "m", sb.apply(body)["metadata"]["generation"])
        assert writers(cluster, first.namespace, ["m"], since) == {"m": {user("a")}}
        assert writers(cluster, second.namespace, ["m"], since) == {"m": {user("b")}}
        # Shard a never even read the other namespace (its RBAC would refuse it; it does not try).
        assert {c.user for c in operator_calls(cluster, second.namespace, since)} <= {user("b")}
        assert {c.user for c in operator_calls(cluster, first.namespace, since)} <= {user("a")}
