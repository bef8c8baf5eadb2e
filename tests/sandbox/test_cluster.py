"""The Sandbox without the operator: apply goes to the real apiserver, which defaults and validates with
the CRD; the artifact server serves model files with their digests."""

from __future__ import annotations

import urllib.request

import pytest

from modeldeploy.kubeapi import Invalid
from modeldeploy_sandbox.artifacts import ArtifactServer
from modeldeploy_sandbox.onnx_models import linear_model, sha256_digest
from modeldeploy_sandbox.sandbox import Sandbox, model_deployment


def test_apply_defaults_validates_and_replaces_the_spec(bare_sandbox: Sandbox) -> None:
    sb = bare_sandbox
    model = sb.artifacts.linear()
    created = sb.apply(model_deployment("resnet", model))
    assert created["spec"]["rollout"]["strategy"] == "immediate"
    assert created["spec"]["runtime"]["kind"] == "onnx"  # a CRD default, filled in by the apiserver
    bad = model_deployment("resnet", model, autoscaling={"minReplicas": 5, "maxReplicas": 2})
    with pytest.raises(Invalid, match=r"spec\.autoscaling.*maxReplicas must be >= minReplicas"):
        sb.apply(bad)
    updated = sb.apply(model_deployment("resnet", model, autoscaling={"minReplicas": 2, "maxReplicas": 5}))
    assert updated["spec"]["autoscaling"]["maxReplicas"] == 5 and updated["metadata"]["generation"] == 2
    assert sb.running_pods() == [] and sb.deployments("resnet") == []  # no operator: nothing renders children


def test_the_artifact_server_serves_files_with_their_digests() -> None:
    with ArtifactServer() as artifacts:
        model = artifacts.linear("m/1/model.onnx", seed=4)
        assert model.url.startswith("http://127.0.0.1:") and model.digest == sha256_digest(linear_model(seed=4))
        with urllib.request.urlopen(model.url, timeout=5) as response:
            assert response.read() == linear_model(seed=4)
        assert artifacts.hits("m/1/model.onnx") == 1
        with pytest.raises(ValueError):
            artifacts.add("../escape", b"x")
        root = artifacts.root
    assert not root.exists()
