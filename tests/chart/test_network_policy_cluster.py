"""The chart's NetworkPolicies on the real API server of the session's control plane.

- Every values shape that changes the policies (defaults, an allowed Prometheus, watched namespaces,
  namespace and label shards, everything set) renders policies the API server accepts with strict
  field validation (a server-side dry-run apply by the real kubectl) and keeps field for field.
- Rendered by the real Helm engine against the cluster (helm_python's cluster-aware render, what
  `helm install` runs), `lookup` narrows the API server egress to the `kubernetes` EndpointSlice's
  addresses as /32 and its port -- what `kubectl get endpointslices -n default kubernetes` shows --
  and needs nothing but `get` on that one object. Offline (`helm template`) it is 0.0.0.0/0 and ::/0.
- A real Helm install (helm_python's `install`, the Helm v4 SDK) stores the narrowed policy.

The sandbox has no CNI: these tests prove what the API server stores, not that traffic is blocked.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import helm_python
import pytest
import yaml

from modeldeploy.kubeapi import KubeClient
from modeldeploy_sandbox import manifests
from modeldeploy_sandbox.cluster import LocalCluster
from modeldeploy_sandbox.controlplane import ADVERTISE_ADDRESS, ControlPlane

from ..controlplane.kubectl import kubectl
from .rendering import CHART

RELEASE = "modeldeploy"
PROMETHEUS = "http://prometheus-operated.monitoring:9090"
VALUES_PORTS = {443, 6443}  # networkPolicy.apiServer.ports by default
NP = "networking.k8s.io/v1"


class Namespaces:
    """This module's namespaces: the release's and three watched ones, unique to the session."""

    def __init__(self) -> None:
        suffix = format(time.time_ns() % 36**5, "x")
        self.release = f"chartnet-system-{suffix}"
        self.ml, self.risk, self.ads = (f"chartnet-{name}-{suffix}" for name in ("ml", "risk", "ads"))

    def all(self) -> list[str]:
        return [self.release, self.ml, self.risk, self.ads]


def cases(ns: Namespaces) -> dict[str, dict[str, Any]]:
    """Every values shape that renders the NetworkPolicies differently."""
    return {
        "defaults": {},
        "prometheus-allowed": {"prometheus": {"allowedAddresses": [PROMETHEUS]}},
        "watch-namespaces": {"watchNamespaces": [ns.ml, ns.risk]},
        "namespace-shards": {"shards": [{"name": "east", "namespaces": [ns.ml, ns.risk]},
                                        {"name": "west", "namespaces": [ns.ads]}]},
        "label-shards": {"shards": [{"name": "a", "label": "a", "default": True}, {"name": "b", "label": "b"}]},
        "everything": {
            "watchNamespaces": [ns.ml],
            "prometheus": {"allowedAddresses": [PROMETHEUS]},
            "networkPolicy": {
                "apiServer": {"cidrs": ["172.18.0.2/32", "fd00::2/128"], "ports": [6443]},
                "prometheus": {"namespaceSelector": {"matchLabels": {"team": "observability"}},
                               "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}},
                               "port": 9091},
                "modelPods": {"namespaces": [ns.risk, ns.ads],
                              "clientNamespaceSelector": {"matchLabels": {"inference-client": "true"}}},
                "extraEgress": [{"to": [{"ipBlock": {"cidr": "10.50.0.0/16", "except": ["10.50.1.0/24"]}}],
                                 "ports": [{"port": 4317, "protocol": "TCP"}]}],
            },
        },
    }


@pytest.fixture(scope="module")
def namespaces(cluster: LocalCluster) -> Iterator[Namespaces]:
    ns = Namespaces()
    for name in ns.all():
        cluster.create_namespace(name)
    yield ns
    for name in ns.all():
        cluster.delete_namespace(name, until_gone=False)


@pytest.fixture(scope="module")
def chart() -> Iterator[helm_python.Chart]:
    with helm_python.Chart.load(CHART) as loaded:
        yield loaded


@pytest.fixture(scope="module")
def helm(control_plane: ControlPlane, namespaces: Namespaces) -> Iterator[helm_python.Config]:
    """Helm's cluster access, as the admin: `lookup` answers from the control plane."""
    with helm_python.Config(kubeconfig_path=str(control_plane.kubeconfig), namespace=namespaces.release) as config:
        yield config


def policies(rendered: dict[str, str]) -> list[dict[str, Any]]:
    documents = [d for path, text in sorted(rendered.items()) if path.endswith(".yaml")
                 for d in yaml.safe_load_all(text) if d]
    return [d for d in documents if d["kind"] == "NetworkPolicy"]


def render_live(helm: helm_python.Config, chart: helm_python.Chart, values: dict[str, Any],
                namespace: str) -> list[dict[str, Any]]:
    return policies(helm.render(chart, values, name=RELEASE, namespace=namespace))


def operator_policy(found: list[dict[str, Any]]) -> dict[str, Any]:
    (policy,) = [p for p in found if not p["metadata"]["name"].endswith("-model-pods")]
    return policy


def api_server_rule(policy: dict[str, Any]) -> dict[str, Any]:
    """The operator's egress rule to the API server: the one of ipBlocks on the values' ports."""
    (rule,) = [r for r in policy["spec"]["egress"]
               if r.get("to") and all("ipBlock" in peer for peer in r["to"]) and 6443 in ports(r)]
    return rule


def ports(rule: dict[str, Any]) -> set[int]:
    return {p["port"] for p in rule.get("ports", [])}


def kubernetes_endpoint_slice(control_plane: ControlPlane) -> dict[str, Any]:
    shown = kubectl(control_plane, "get", "endpointslices", "-n", "default", "kubernetes", "-o", "json")
    assert shown.returncode == 0, shown.stderr
    slice_: dict[str, Any] = json.loads(shown.stdout)
    return slice_


def dry_run_apply(control_plane: ControlPlane, objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """`kubectl apply --server-side --dry-run=server --validate=strict`: what the API server would store."""
    applied = kubectl(control_plane, "apply", "--server-side", "--dry-run=server", "--validate=strict",
                      "--field-manager=helm", "-o", "json", "-f", "-", stdin=yaml.safe_dump_all(objects))
    assert applied.returncode == 0, f"the API server refused the chart's NetworkPolicies:\n{applied.stderr}"
    answer = json.loads(applied.stdout)
    stored: list[dict[str, Any]] = answer["items"] if answer["kind"] == "List" else [answer]
    return stored


CASE_NAMES = list(cases(Namespaces()))


@pytest.mark.compat
@pytest.mark.parametrize("offline", [False, True], ids=["helm-install-render", "helm-template"])
@pytest.mark.parametrize("case", CASE_NAMES)
def test_the_api_server_accepts_and_keeps_the_charts_network_policies(
        control_plane: ControlPlane, helm: helm_python.Config, chart: helm_python.Chart,
        namespaces: Namespaces, case: str, offline: bool) -> None:
    values = cases(namespaces)[case]
    rendered = (policies(chart.render(values, name=RELEASE, namespace=namespaces.release)) if offline
                else render_live(helm, chart, values, namespaces.release))
    stored = dry_run_apply(control_plane, rendered)

    assert [(s["metadata"]["namespace"], s["metadata"]["name"]) for s in stored] == [
        (r["metadata"]["namespace"], r["metadata"]["name"]) for r in rendered]
    for sent, kept in zip(rendered, stored, strict=True):
        assert kept["spec"] == sent["spec"], f"{sent['metadata']['name']}: the API server changed the spec"

    # What the values asked for is in what the API server keeps.
    egress = operator_policy(stored)["spec"]["egress"]
    prometheus_port = {"prometheus-allowed": 9090, "everything": 9091}.get(case)
    assert [ports(rule) for rule in egress if ports(rule) & {9090, 9091}] == (
        [{prometheus_port}] if prometheus_port else [])
    model_pod_namespaces = sorted(s["metadata"]["namespace"] for s in stored
                                  if s["metadata"]["name"].endswith("-model-pods"))
    assert model_pod_namespaces == sorted({
        "watch-namespaces": [namespaces.ml, namespaces.risk],
        "namespace-shards": [namespaces.ml, namespaces.risk, namespaces.ads],
        "everything": [namespaces.risk, namespaces.ads]}.get(case, []))
    api = api_server_rule(operator_policy(stored))
    if case == "everything":
        assert api["to"] == [{"ipBlock": {"cidr": "172.18.0.2/32"}}, {"ipBlock": {"cidr": "fd00::2/128"}}]
        assert egress[-1]["to"] == [{"ipBlock": {"cidr": "10.50.0.0/16", "except": ["10.50.1.0/24"]}}]
    elif offline:
        assert api["to"] == [{"ipBlock": {"cidr": "0.0.0.0/0"}}, {"ipBlock": {"cidr": "::/0"}}]
    else:
        assert api["to"] == [{"ipBlock": {"cidr": f"{ADVERTISE_ADDRESS}/32"}}]


@pytest.mark.compat
def test_install_time_lookup_narrows_the_api_server_egress_to_the_endpoint_slice(
        control_plane: ControlPlane, helm: helm_python.Config, chart: helm_python.Chart,
        namespaces: Namespaces) -> None:
    slice_ = kubernetes_endpoint_slice(control_plane)
    addresses = [address for endpoint in slice_["endpoints"] for address in endpoint["addresses"]]
    slice_ports = {port["port"] for port in slice_["ports"]}
    # The control plane's own endpoint: its advertise address and its (random) secure port.
    assert addresses == [ADVERTISE_ADDRESS]
    assert slice_ports == {urlparse(control_plane.server).port}

    api = api_server_rule(operator_policy(render_live(helm, chart, {}, namespaces.release)))
    assert api["to"] == [{"ipBlock": {"cidr": f"{address}/32"}} for address in addresses]
    # NetworkPolicy matches the endpoint behind the Service: its port must be allowed, beside the values'.
    assert ports(api) == VALUES_PORTS | slice_ports

    # CIDRs given in the values win over the lookup, and only the values' ports are allowed.
    given = {"networkPolicy": {"apiServer": {"cidrs": ["192.0.2.10/32"], "ports": [6443]}}}
    api = api_server_rule(operator_policy(render_live(helm, chart, given, namespaces.release)))
    assert (api["to"], ports(api)) == ([{"ipBlock": {"cidr": "192.0.2.10/32"}}], {6443})


@pytest.mark.compat
def test_the_lookup_needs_only_get_on_the_kubernetes_endpoint_slice(
        cluster: LocalCluster, admin: KubeClient, chart: helm_python.Chart, namespaces: Namespaces,
        tmp_path: Path) -> None:
    """An installer that may read the `kubernetes` EndpointSlice and nothing else (not the deprecated
    v1 Endpoints) still gets the narrowed policy: the lookup asks for that one object."""
    account = "chart-installer"
    manifests.apply_all(admin, [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": account, "namespace": namespaces.release}},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
         "metadata": {"name": f"{namespaces.release}-endpoint-slice", "namespace": "default"},
         "rules": [{"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"],
                    "resourceNames": ["kubernetes"], "verbs": ["get"]}]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
         "metadata": {"name": f"{namespaces.release}-endpoint-slice", "namespace": "default"},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                     "name": f"{namespaces.release}-endpoint-slice"},
         "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": namespaces.release}]},
    ])
    try:
        kubeconfig = cluster.service_account_kubeconfig(namespaces.release, account, tmp_path / "installer.kubeconfig")
        with helm_python.Config(kubeconfig_path=str(kubeconfig), namespace=namespaces.release) as installer:
            api = api_server_rule(operator_policy(render_live(installer, chart, {}, namespaces.release)))
        assert api["to"] == [{"ipBlock": {"cidr": f"{ADVERTISE_ADDRESS}/32"}}]
    finally:
        for kind in ("RoleBinding", "Role"):
            admin.delete("rbac.authorization.k8s.io/v1", kind, "default", f"{namespaces.release}-endpoint-slice")


@pytest.mark.compat
def test_a_helm_install_stores_the_narrowed_policy(
        cluster: LocalCluster, control_plane: ControlPlane, admin: KubeClient, chart: helm_python.Chart) -> None:
    """`helm install` (the Helm v4 SDK) into the control plane: the stored operator policy allows the API
    server's endpoint only. The operator pod matches no Node, so nothing runs."""
    release, namespace = "chartnet", f"chartnet-install-{format(time.time_ns() % 36**5, 'x')}"
    # kopf's peering CRDs as the sandbox installs them (the ModelDeployment CRD is in every sandbox), so
    # Helm skips both CRD files of crds/ (and, as ever, never deletes them).
    manifests.apply_all(admin, manifests.load_documents([CHART / "crds" / "kopf-peerings.yaml"]))
    values = {"peering": {"name": namespace}, "nodeSelector": {"chartnet.modeldeploy.dev/no-such-node": "true"}}
    slice_port = urlparse(control_plane.server).port
    with helm_python.Config(kubeconfig_path=str(control_plane.kubeconfig), namespace=namespace) as config:
        try:
            installed = config.install(chart, release, values, namespace=namespace, create_namespace=True,
                                       timeout=60)
            assert installed["status"] == "deployed", installed
            stored = admin.get(NP, "NetworkPolicy", namespace, f"{release}-modeldeploy")
            assert stored is not None, "helm install stored no operator NetworkPolicy"
            api = api_server_rule(stored)
            assert api["to"] == [{"ipBlock": {"cidr": f"{ADVERTISE_ADDRESS}/32"}}]
            assert ports(api) == VALUES_PORTS | {slice_port}
        finally:
            config.uninstall(release, ignore_not_found=True, timeout=60)
            cluster.delete_namespace(namespace, until_gone=False)
    assert admin.get(NP, "NetworkPolicy", namespace, f"{release}-modeldeploy") is None
