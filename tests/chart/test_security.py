"""The chart's security defaults: narrow operator egress, the Prometheus allow-list, images by digest."""

from __future__ import annotations

from typing import Any

import pytest

from .rendering import by_kind, one, render

DIGEST = "sha256:" + "ab" * 32
PROMETHEUS = "http://prometheus-operated.monitoring:9090"


def _operator_policy(values: dict[str, Any] | None = None) -> dict[str, Any]:
    (policy,) = [p for p in by_kind(render(values), "NetworkPolicy") if p["metadata"]["name"] == "modeldeploy"]
    return policy["spec"]


def _ports(rule: dict[str, Any]) -> set[int]:
    return {port["port"] for port in rule.get("ports", [])}


def _env(values: dict[str, Any] | None = None) -> dict[str, str]:
    container = one(render(values), "Deployment")["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e.get("value", "") for e in container["env"]}


def test_default_egress_is_the_api_server_dns_and_model_pods_only() -> None:
    egress = _operator_policy()["egress"]
    assert [_ports(rule) for rule in egress] == [{53}, {443, 6443}, {8000, 8002}]
    # No cluster to look the API server up in (offline render): any address, but the API ports only.
    api = egress[1]
    assert api["to"] == [{"ipBlock": {"cidr": "0.0.0.0/0"}}, {"ipBlock": {"cidr": "::/0"}}]
    assert all("to" in rule for rule in egress[1:])  # every non-DNS rule names its destination


def test_api_server_cidrs_from_values_narrow_the_egress() -> None:
    egress = _operator_policy({"networkPolicy": {"apiServer": {"cidrs": ["10.0.0.1/32"]}}})["egress"]
    assert egress[1]["to"] == [{"ipBlock": {"cidr": "10.0.0.1/32"}}]


def test_prometheus_egress_only_with_an_allowed_address() -> None:
    assert not any(_ports(rule) == {9090} for rule in _operator_policy()["egress"])
    egress = _operator_policy({"prometheus": {"allowedAddresses": [PROMETHEUS]}})["egress"]
    (rule,) = [rule for rule in egress if _ports(rule) == {9090}]
    assert rule["to"][0]["namespaceSelector"] == {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}


def test_allowed_prometheus_addresses_reach_the_operator() -> None:
    assert _env()["MODELDEPLOY_PROMETHEUS_ADDRESSES"] == ""
    env = _env({"prometheus": {"allowedAddresses": [PROMETHEUS, "https://thanos.example:443/api"]}})
    assert env["MODELDEPLOY_PROMETHEUS_ADDRESSES"] == f"{PROMETHEUS},https://thanos.example:443/api"


def test_images_are_pinned_by_digest_when_one_is_given() -> None:
    env = _env({"runtimeImages": {"modelserver": "ghcr.io/modeldeploy/modelserver:0.1.0",
                                  "modelserverGpu": "ghcr.io/modeldeploy/modelserver:0.1.0-gpu",
                                  "triton": "nvcr.io/nvidia/tritonserver:24.10-py3",
                                  "digests": {"modelserver": DIGEST, "triton": DIGEST}},
                "image": {"repository": "ghcr.io/modeldeploy/operator", "tag": "0.1.0", "digest": DIGEST}})
    assert env["MODELDEPLOY_MODELSERVER_IMAGE"] == f"ghcr.io/modeldeploy/modelserver:0.1.0@{DIGEST}"
    assert env["MODELDEPLOY_MODELSERVER_GPU_IMAGE"] == "ghcr.io/modeldeploy/modelserver:0.1.0-gpu"  # none given
    assert env["MODELDEPLOY_TRITON_IMAGE"] == f"nvcr.io/nvidia/tritonserver:24.10-py3@{DIGEST}"
    container = one(render({"image": {"repository": "ghcr.io/modeldeploy/operator", "tag": "0.1.0",
                                      "digest": DIGEST}}), "Deployment")["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == f"ghcr.io/modeldeploy/operator:0.1.0@{DIGEST}"


@pytest.mark.parametrize("values,field", [
    ({"image": {"repository": "x", "digest": "sha256:short"}}, "digest"),
    ({"runtimeImages": {"modelserver": "a", "modelserverGpu": "b", "triton": "c",
                        "digests": {"triton": "latest"}}}, "triton"),
    ({"prometheus": {"allowedAddresses": ["prometheus:9090"]}}, "allowedAddresses"),
    ({"prometheus": {"allowedAddresses": ["http://user:pw@prometheus:9090"]}}, "allowedAddresses"),
])
def test_bad_security_values_are_refused_naming_the_field(values: dict[str, Any], field: str) -> None:
    with pytest.raises(Exception) as raised:
        render(values)
    assert field in str(raised.value)
