"""ServiceMonitor, PodMonitor and NetworkPolicies: structure and the labels/ports they rely on."""

from __future__ import annotations

from typing import Any

from modeldeploy.render.labels import MANAGED_BY, MANAGED_BY_LABEL
from modeldeploy.render.ports import PORTS

from .rendering import FULL_VALUES, by_kind, one, render


def test_service_monitor_scrapes_the_operator_metrics_service() -> None:
    objects = render(FULL_VALUES)
    monitor = one(objects, "ServiceMonitor")
    service = one(objects, "Service")
    assert monitor["metadata"]["labels"]["release"] == "prometheus"
    assert set(monitor["spec"]["selector"]["matchLabels"].items()) <= set(service["metadata"]["labels"].items())
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] == service["spec"]["ports"][0]["name"] == "metrics"
    assert endpoint["honorLabels"] is True  # keep the ModelDeployment's namespace/name labels


def test_pod_monitor_relabels_model_pods() -> None:
    monitor = one(render(FULL_VALUES), "PodMonitor")
    spec = monitor["spec"]
    assert spec["selector"]["matchLabels"] == {MANAGED_BY_LABEL: MANAGED_BY}
    assert spec["namespaceSelector"] == {"matchNames": ["ml", "risk"]}
    (endpoint,) = spec["podMetricsEndpoints"]
    assert endpoint["port"] == "metrics" and "metrics" in PORTS
    targets = {r["targetLabel"]: r["sourceLabels"] for r in endpoint["relabelings"]}
    assert targets["revision"] == ["__meta_kubernetes_pod_label_modeldeploy_dev_revision"]
    assert targets["modeldeploy_name"] == ["__meta_kubernetes_pod_label_modeldeploy_dev_name"]
    assert targets["namespace"] == ["__meta_kubernetes_namespace"]


def test_pod_monitor_without_watch_namespaces_covers_every_namespace() -> None:
    monitor = one(render({"podMonitor": {"enabled": True}}), "PodMonitor")
    assert monitor["spec"]["namespaceSelector"] == {"any": True}


def _ports(rule: dict[str, Any]) -> set[int]:
    return {port["port"] for port in rule["ports"]}


def test_network_policies() -> None:
    policies = {(p["metadata"]["namespace"], p["metadata"]["name"]): p
                for p in by_kind(render(FULL_VALUES), "NetworkPolicy")}
    operator = policies["modeldeploy-system", "modeldeploy"]["spec"]
    assert operator["policyTypes"] == ["Ingress", "Egress"]
    egress_ports = [_ports(rule) for rule in operator["egress"]]
    assert {53} in egress_ports and {6443} in egress_ports and {8000, 8002} in egress_ports
    api = next(rule for rule in operator["egress"] if _ports(rule) == {6443})
    assert api["to"] == [{"ipBlock": {"cidr": "172.18.0.0/16"}}]
    assert [_ports(rule) for rule in operator["ingress"]] == [{8080}]
    for namespace in ("ml", "risk"):
        models = policies[namespace, "modeldeploy-model-pods"]["spec"]
        assert models["policyTypes"] == ["Ingress"]  # model fetching (egress) stays open
        assert models["podSelector"]["matchLabels"] == {MANAGED_BY_LABEL: MANAGED_BY}
        ingress = [_ports(rule) for rule in models["ingress"]]
        assert ingress == [{8000, 8001}, {8000, 8002}, {8002}]
        from_operator = models["ingress"][1]["from"][0]
        assert from_operator["namespaceSelector"]["matchLabels"] == {
            "kubernetes.io/metadata.name": "modeldeploy-system"}


def test_network_policy_on_by_default() -> None:
    (policy,) = by_kind(render(), "NetworkPolicy")  # the operator's; model pods' need namespaces
    assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"]


def test_network_policy_cluster_wide_has_only_the_operators() -> None:
    (policy,) = by_kind(render({"networkPolicy": {"enabled": True}}), "NetworkPolicy")
    models = next(rule for rule in policy["spec"]["egress"] if _ports(rule) == {8000, 8002})
    assert models["to"] == [{"namespaceSelector": {}, "podSelector": {"matchLabels": {MANAGED_BY_LABEL: MANAGED_BY}}}]
