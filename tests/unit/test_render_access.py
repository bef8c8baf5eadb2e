"""spec.access rendered: the NetworkPolicy of a ModelDeployment and the token check of its pods (pure)."""

from __future__ import annotations

from typing import Any

import kubernetes_validate
import pytest
from pydantic import ValidationError

from modeldeploy.api import ModelDeploymentSpec
from modeldeploy.render import Owner, RuntimeImages, spec_hash
from modeldeploy.render.access import AccessPeers, render_network_policy, token_audience
from modeldeploy.render.containers import template_identity
from modeldeploy.render.deployment import render_deployment
from modeldeploy.settings import access_peers_from_env

from .conftest import SpecFactory
from .test_render_deployment import fetch, pod, render, server

PEERS = AccessPeers(operator_namespace="ops", operator_pod_labels={"app.kubernetes.io/name": "md"},
                    operator_service_account="md-operator",
                    prometheus_namespace_selector={"matchLabels": {"kubernetes.io/metadata.name": "mon"}},
                    prometheus_pod_selector={"matchLabels": {"app": "prometheus"}})
ACCESS = {"namespaces": ["web", "apps"], "serviceAccounts": [{"namespace": "batch", "name": "scorer"},
                                                            {"namespace": "apps", "name": "api"}]}
TOKEN_ACCESS = {**ACCESS, "requireToken": True, "serviceAccountName": "resnet-server"}


def _policy(spec: ModelDeploymentSpec, owner: Owner) -> dict[str, Any] | None:
    return render_network_policy(spec, name="resnet", namespace="ml", owner=owner, peers=PEERS)


def _ns(name: str) -> dict[str, Any]:
    return {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": name}}}


def test_no_access_renders_no_policy(render_spec: SpecFactory, render_owner: Owner) -> None:
    assert _policy(render_spec(), render_owner) is None


def test_the_policy_admits_the_callers_the_operator_and_prometheus_only(render_spec: SpecFactory,
                                                                       render_owner: Owner) -> None:
    policy = _policy(render_spec({"access": ACCESS}), render_owner)
    assert policy is not None
    kubernetes_validate.validate(policy, "1.30", strict=True)
    assert policy["metadata"]["name"] == "resnet" and policy["metadata"]["ownerReferences"][0]["controller"]
    spec = policy["spec"]
    assert spec["podSelector"] == {"matchLabels": {"modeldeploy.dev/name": "resnet"}}  # every revision's pods
    assert spec["policyTypes"] == ["Ingress"]
    callers, operator, prometheus = spec["ingress"]
    # Listed namespaces and the ServiceAccounts' namespaces, sorted, once each; inference ports only.
    assert callers["from"] == [_ns("apps"), _ns("batch"), _ns("web")]
    assert callers["ports"] == [{"port": 8000, "protocol": "TCP"}, {"port": 8001, "protocol": "TCP"}]
    assert operator == {"from": [{**_ns("ops"), "podSelector": {"matchLabels": {"app.kubernetes.io/name": "md"}}}],
                        "ports": [{"port": 8000, "protocol": "TCP"}, {"port": 8002, "protocol": "TCP"}]}
    assert prometheus == {"from": [{"namespaceSelector": PEERS.prometheus_namespace_selector,
                                    "podSelector": {"matchLabels": {"app": "prometheus"}}}],
                          "ports": [{"port": 8002, "protocol": "TCP"}]}


def test_empty_access_admits_no_caller(render_spec: SpecFactory, render_owner: Owner) -> None:
    policy = _policy(render_spec({"access": {}}), render_owner)
    assert policy is not None and [rule["ports"][0]["port"] for rule in policy["spec"]["ingress"]] == [8000, 8002]
    assert all("ops" in str(rule) or "mon" in str(rule) for rule in policy["spec"]["ingress"])


def test_require_token_gives_the_server_alone_a_token_and_the_flags(render_spec: SpecFactory, render_owner: Owner,
                                                                   render_images: RuntimeImages) -> None:
    spec = render_spec({"access": TOKEN_ACCESS})
    digest = spec_hash(spec)
    deployment = render_deployment(spec, name="resnet", namespace="ml", revision=f"resnet-{digest[:5]}",
                                   spec_hash=digest, role="stable", replicas=1, owner=render_owner,
                                   images=render_images, peers=PEERS)
    kubernetes_validate.validate(deployment, "1.30", strict=True)
    pod_spec = pod(deployment)
    assert pod_spec["serviceAccountName"] == "resnet-server" and pod_spec["automountServiceAccountToken"] is False
    [volume] = [v for v in pod_spec["volumes"] if "projected" in v]
    sources = volume["projected"]["sources"]
    assert sources[0]["serviceAccountToken"]["path"] == "token"
    assert sources[1]["configMap"]["name"] == "kube-root-ca.crt"
    mounts = {m["name"]: m for m in server(deployment)["volumeMounts"]}
    assert mounts[volume["name"]] == {"name": volume["name"], "readOnly": True,
                                      "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"}
    assert volume["name"] not in {m["name"] for m in fetch(deployment)["volumeMounts"]}  # fetch never gets a token
    args = server(deployment)["args"]
    assert args[args.index("--auth-audience") + 1] == token_audience("ml", "resnet") == "modeldeploy.dev/ml/resnet"
    pairs = [(flag, args[i + 1]) for i, flag in enumerate(args) if flag.startswith("--auth-allow")]
    assert pairs == [("--auth-allow-namespace", "apps"), ("--auth-allow-namespace", "web"),
                     ("--auth-allow-service-account", "apps/api"), ("--auth-allow-service-account", "batch/scorer"),
                     ("--auth-allow-service-account", "ops/md-operator")]  # the operator's gates call the model
    assert "--auth-token-review" in args


def test_without_require_token_the_pods_and_the_revision_do_not_change(render_spec: SpecFactory,
                                                                      render_owner: Owner,
                                                                      render_images: RuntimeImages) -> None:
    plain, network_only = render_spec(), render_spec({"access": ACCESS})
    assert render(plain, render_owner, render_images)["spec"]["template"] == \
        render(network_only, render_owner, render_images)["spec"]["template"]
    assert template_identity(plain, render_images) == template_identity(network_only, render_images, PEERS)
    # requireToken changes the pods, so it is a new revision (rolled out as a canary), and so do its callers.
    with_token = template_identity(render_spec({"access": TOKEN_ACCESS}), render_images, PEERS)
    other_callers = template_identity(render_spec({"access": {**TOKEN_ACCESS, "namespaces": ["web"]}}),
                                      render_images, PEERS)
    assert len({template_identity(plain, render_images), with_token, other_callers}) == 3


@pytest.mark.parametrize("access,runtime,message", [
    ({"requireToken": True}, {}, "requireToken needs the pods' ServiceAccount"),
    ({"requireToken": True, "serviceAccountName": "s"}, {"kind": "triton"}, "requireToken needs runtime.kind onnx"),
    ({"namespaces": ["Not_A_Namespace"]}, {}, "should match pattern"),
    ({"namespaces": [f"n{i}" for i in range(33)]}, {}, "at most 32 items"),
])
def test_bad_access_is_refused_naming_the_field(render_spec: SpecFactory, access: dict[str, Any],
                                                runtime: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message) as refused:
        render_spec({"access": access, "runtime": runtime})
    assert "access" in str(refused.value)


def test_one_service_account_for_the_pods() -> None:
    with pytest.raises(ValidationError, match="must be equal"):
        ModelDeploymentSpec.model_validate({"model": {"uri": "s3://b/m.onnx", "allowUnverified": True,
                                                      "credentials": {"serviceAccountName": "a"}},
                                            "access": {"requireToken": True, "serviceAccountName": "b"}})


def test_peers_come_from_the_charts_environment() -> None:
    peers = access_peers_from_env({
        "MODELDEPLOY_OPERATOR_NAMESPACE": "ops", "MODELDEPLOY_OPERATOR_SERVICE_ACCOUNT": "md-operator",
        "MODELDEPLOY_OPERATOR_POD_LABELS": '{"app.kubernetes.io/name": "md"}',
        "MODELDEPLOY_PROMETHEUS_NAMESPACE_SELECTOR": '{"matchLabels": {"kubernetes.io/metadata.name": "mon"}}',
        "MODELDEPLOY_PROMETHEUS_POD_SELECTOR": '{"matchLabels": {"app": "prometheus"}}'})
    assert peers == PEERS
    with pytest.raises(ValueError, match="MODELDEPLOY_OPERATOR_POD_LABELS must be a JSON object"):
        access_peers_from_env({"MODELDEPLOY_OPERATOR_POD_LABELS": "[]"})
