"""Pods of a ModelDeployment, security side: the digest, source credentials, model-sized disks."""

from __future__ import annotations

from typing import Any

import kubernetes_validate
import pytest
from pydantic import ValidationError

from modeldeploy.api import ModelDeploymentSpec
from modeldeploy.api.semantics import spec_problems
from modeldeploy.render import Owner, RuntimeImages

from .conftest import DIGEST, SpecFactory
from .test_render_deployment import fetch, pod, render, server


def _spec(model: dict[str, Any]) -> dict[str, Any]:
    return {"model": {"uri": "https://models.example.com/m.onnx", "digest": DIGEST, **model}}


def test_allow_unverified_is_the_only_way_to_skip_the_digest(render_spec: SpecFactory, render_owner: Owner,
                                                             render_images: RuntimeImages) -> None:
    with pytest.raises(ValidationError, match="digest is required unless allowUnverified is true"):
        ModelDeploymentSpec.model_validate({"model": {"uri": "https://models.example.com/m.onnx"}})
    verified = fetch(render(render_spec(), render_owner, render_images))["args"]
    assert "--allow-unverified" not in verified and verified[verified.index("--digest") + 1] == DIGEST
    # A digest wins even when allowUnverified is also set: it is always checked.
    both = fetch(render(render_spec({"model": {"allowUnverified": True}}), render_owner, render_images))["args"]
    assert "--allow-unverified" not in both and "--digest" in both


@pytest.mark.parametrize("uri,problem", [
    ("oci://registry.example/m@sha256:" + "a" * 64, "should match pattern"),
    ("pvc://../outside/m.onnx", "PersistentVolumeClaim name"),
    ("pvc://Models/m.onnx", "PersistentVolumeClaim name"),
    ("pvc://models/a/../../m.onnx", "'..' path segments"),
    ("file:///models/../etc/passwd", "'..' path segments"),
])
def test_unsafe_sources_are_invalid_specs(uri: str, problem: str) -> None:
    _, problems = spec_problems("resnet", _spec({"uri": uri}))
    assert problems and problem in problems[0] and problems[0].startswith("spec.model"), problems


def test_credentials_secret_is_mounted_into_the_init_container_only(render_spec: SpecFactory,
                                                                    render_owner: Owner,
                                                                    render_images: RuntimeImages) -> None:
    deployment = render(render_spec({"model": {"credentials": {"secretRef": {"name": "s3-reader"}}}}),
                        render_owner, render_images)
    volumes = {volume["name"]: volume for volume in pod(deployment)["volumes"]}
    assert volumes["model-credentials"] == {"name": "model-credentials",
                                            "secret": {"secretName": "s3-reader", "defaultMode": 0o440}}
    init = fetch(deployment)
    assert {"name": "model-credentials", "mountPath": "/var/run/modeldeploy/credentials", "readOnly": True} \
        in init["volumeMounts"]
    assert init["args"][-2:] == ["--credentials-dir", "/var/run/modeldeploy/credentials"]
    assert all(mount["name"] != "model-credentials" for mount in server(deployment)["volumeMounts"])
    assert "serviceAccountName" not in pod(deployment)
    kubernetes_validate.validate(deployment, "1.30", strict=True)


def test_credentials_service_account_keeps_its_token_unmounted(render_spec: SpecFactory, render_owner: Owner,
                                                               render_images: RuntimeImages) -> None:
    deployment = render(render_spec({"model": {"credentials": {"serviceAccountName": "model-reader"}}}),
                        render_owner, render_images)
    spec = pod(deployment)
    assert spec["serviceAccountName"] == "model-reader" and spec["automountServiceAccountToken"] is False
    assert [volume["name"] for volume in spec["volumes"]] == ["model-repository", "tmp"]


def test_credentials_need_a_secret_or_a_service_account() -> None:
    with pytest.raises(ValidationError, match="secretRef"):
        ModelDeploymentSpec.model_validate(_spec({"credentials": {"secretRef": {"name": "Not_A_Name"}}}))


@pytest.mark.parametrize("max_size,limit,storage_request,max_bytes", [
    ("3Gi", "3136Mi", f"{3 * 1024 + 64 + 1024}Mi", 3 * 2**30),
    ("500M", "541Mi", f"{477 + 64 + 1024}Mi", 500_000_000),  # 500 MB is 476.8 MiB: rounded up
    ("960Mi", "1Gi", "2Gi", 960 * 2**20),  # whole GiB as the API server stores them: no drift
])
def test_model_volume_and_ephemeral_storage_are_sized_from_max_size(
        render_spec: SpecFactory, render_owner: Owner, render_images: RuntimeImages,
        max_size: str, limit: str, storage_request: str, max_bytes: int) -> None:
    deployment = render(render_spec({"model": {"maxSize": max_size}}), render_owner, render_images)
    volumes = {volume["name"]: volume for volume in pod(deployment)["volumes"]}
    assert volumes["model-repository"]["emptyDir"] == {"sizeLimit": limit}
    assert volumes["tmp"]["emptyDir"] == {"sizeLimit": "1Gi"}
    assert server(deployment)["resources"]["requests"]["ephemeral-storage"] == storage_request
    args = fetch(deployment)["args"]
    assert args[args.index("--max-bytes") + 1] == str(max_bytes)


def test_a_user_ephemeral_storage_request_wins(render_spec: SpecFactory, render_owner: Owner,
                                               render_images: RuntimeImages) -> None:
    spec = render_spec({"resources": {"requests": {"ephemeral-storage": "50Gi"}}})
    assert server(render(spec, render_owner, render_images))["resources"]["requests"]["ephemeral-storage"] == "50Gi"


@pytest.mark.parametrize("query,ok", [
    ('sum(rate(x{namespace="{{namespace}}",revision="{{revision}}"}[{{interval}}]))', True),
    ('sum(rate(x{namespace="{{namespace}}"}[{{interval}}])) / sum(rate(y{namespace="{{namespace}}"}[1m]))', True),
    ("scalar(vector(3))", True),
    ('sum(rate(x{revision="{{revision}}"}[{{interval}}]))', False),
    ('sum(rate(x{namespace=~".+"}[{{interval}}]))', False),
    ('sum(rate(x{namespace="kube-system"}[1m]))', False),
    ('x{namespace="{{namespace}}"} + on() group_left y', False),
    ('{__name__=~".+",namespace!="{{namespace}}"}', False),
    ("sum(rate(", False),
])
def test_custom_queries_are_pinned_to_the_own_namespace(query: str, ok: bool) -> None:
    spec = {**_spec({}), "rollout": {"analysis": {"provider": {"type": "prometheus", "address": "http://p:9090"},
                                                  "checks": [{"name": "q", "query": query, "max": 1}]}}}
    _, problems = spec_problems("resnet", spec)
    where = [p for p in problems if p.startswith("spec.rollout.analysis.checks[0].query")]
    assert (where == []) is ok, problems
