"""Labels, images and revision identity: what changes the pods changes the hash, nothing else does."""

from __future__ import annotations

import re
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from modeldeploy.api import ModelDeploymentSpec
from modeldeploy.render import (
    MANAGED_BY_LABEL,
    NAME_LABEL,
    REVISION_LABEL,
    ROLE_LABEL,
    Owner,
    RuntimeImages,
    child_labels,
    owner_reference,
    revision_name,
    selector,
    spec_hash,
)

HEX = "0123456789abcdef"
PINNED_HASH = "fdb2427c8507882b"
digests = st.text(HEX, min_size=64, max_size=64).map(lambda text: f"sha256:{text}")
uris = st.sampled_from(["https://h/m.onnx", "pvc://claim/m.onnx", "s3://bucket/m.onnx", "file:///m.onnx"])
quantities = st.sampled_from(["100m", "1", "2", "500m", "1Gi", "2Gi", "4Gi"])

pod_parts = st.fixed_dictionaries({
    "model": st.fixed_dictionaries({"uri": uris, "digest": digests}, optional={
        "version": st.integers(1, 50), "name": st.sampled_from(["a", "resnet", "bert_large"])}),
    "runtime": st.fixed_dictionaries({}, optional={
        "batching": st.fixed_dictionaries({"maxBatchSize": st.integers(1, 64)}),
        "env": st.lists(st.tuples(st.sampled_from(["A", "B"]), st.text(max_size=5)), max_size=2,
                        unique_by=lambda env: env[0]).map(
            lambda pairs: [{"name": name, "value": value} for name, value in pairs])}),
    "resources": st.fixed_dictionaries({"requests": st.fixed_dictionaries({"cpu": quantities})}, optional={
        "gpu": st.fixed_dictionaries({"count": st.integers(1, 4)})}),
})
scaling_and_rollout = st.fixed_dictionaries({}, optional={
    "autoscaling": st.integers(1, 20).flatmap(lambda low: st.fixed_dictionaries({
        "minReplicas": st.just(low), "maxReplicas": st.integers(low, 40),
        "metrics": st.lists(st.sampled_from([{"type": "cpu", "targetUtilization": 60},
                                             {"type": "queueTime", "targetAverageMicroseconds": 900}]),
                            max_size=1),
        "behavior": st.sampled_from([{}, {"scaleDown": {"stabilizationWindowSeconds": 300}}])})),
    "rollout": st.fixed_dictionaries({
        "strategy": st.sampled_from(["canary", "immediate"]),
        "steps": st.lists(st.integers(1, 100), min_size=1, max_size=4, unique=True).map(
            lambda weights: [{"weight": weight, "pause": "30s"} for weight in sorted(weights)]),
        "progressDeadlineSeconds": st.integers(30, 86400),
        "traffic": st.sampled_from([{"router": "service"},
                                    {"router": "gatewayAPI", "gateway": {"parentRefs": [{"name": "gw"}]}}]),
    }),
})


def spec_of(parts: dict[str, Any]) -> ModelDeploymentSpec:
    return ModelDeploymentSpec.model_validate(parts)


@settings(max_examples=150, deadline=None)
@given(pod_parts, scaling_and_rollout, scaling_and_rollout)
def test_hash_ignores_autoscaling_and_rollout(pods: dict[str, Any], first: dict[str, Any],
                                              second: dict[str, Any]) -> None:
    assert spec_hash(spec_of({**pods, **first})) == spec_hash(spec_of({**pods, **second}))


@settings(max_examples=100, deadline=None)
@given(pod_parts, uris, digests, quantities)
def test_hash_follows_model_and_resources(pods: dict[str, Any], uri: str, digest: str, cpu: str) -> None:
    base = spec_hash(spec_of(pods))
    for field, value in (("uri", uri), ("digest", digest)):
        changed = {**pods, "model": {**pods["model"], field: value}}
        assert (spec_hash(spec_of(changed)) == base) == (value == pods["model"][field])
    resources = {**pods["resources"], "requests": {"cpu": cpu}}
    same = cpu == pods["resources"]["requests"]["cpu"]
    assert (spec_hash(spec_of({**pods, "resources": resources})) == base) == same


@settings(max_examples=50, deadline=None)
@given(pod_parts)
def test_hash_is_deterministic_and_short(pods: dict[str, Any]) -> None:
    digest = spec_hash(spec_of(pods))
    assert re.fullmatch(r"[0-9a-f]{16}", digest)
    assert digest == spec_hash(spec_of(pods))
    # Round trip through the API form (what the reconciler reads back) keeps the hash.
    assert digest == spec_hash(spec_of(spec_of(pods).to_dict()))


def test_hash_changes_with_runtime_and_gpu() -> None:
    base = {"model": {"uri": "https://h/m.onnx", "digest": "sha256:" + "0" * 64}}
    extras: tuple[dict[str, Any], ...] = (
        {}, {"runtime": {"kind": "triton"}}, {"runtime": {"image": "x:1"}},
        {"runtime": {"env": [{"name": "A", "value": "1"}]}}, {"resources": {"gpu": {}}},
        {"resources": {"gpu": {"product": "NVIDIA-A100-SXM4-80GB"}}}, {"resources": {"runtimeClassName": "nvidia"}},
    )
    hashes = {spec_hash(spec_of({**base, **extra})) for extra in extras}
    assert len(hashes) == 7


def test_explicit_defaults_hash_like_implicit_ones() -> None:
    implicit = {"model": {"uri": "https://h/m.onnx", "digest": "sha256:" + "0" * 64}}
    explicit = {"model": {**implicit["model"], "format": "onnx", "version": 1},
                "runtime": {"kind": "onnx", "env": []}, "resources": {"requests": {}, "tolerations": []}}
    assert spec_hash(spec_of(implicit)) == spec_hash(spec_of(explicit))


def test_hash_is_pinned() -> None:
    # A changed hash function gives every ModelDeployment in every cluster a new revision (and a
    # canary rollout) on operator upgrade. Change this value only on purpose.
    spec = spec_of({"model": {"uri": "https://h/m.onnx", "digest": "sha256:" + "0" * 64},
                    "runtime": {"kind": "triton", "batching": {"maxBatchSize": 8}},
                    "resources": {"requests": {"cpu": "1"}, "gpu": {"count": 2}}})
    assert spec_hash(spec) == PINNED_HASH


def test_revision_name() -> None:
    assert revision_name("resnet", "7f9c2ab41d0e3c55") == "resnet-7f9c2"


def test_labels_and_selectors() -> None:
    assert child_labels("resnet", None, None) == {MANAGED_BY_LABEL: "modeldeploy", NAME_LABEL: "resnet"}
    assert child_labels("resnet", "resnet-7f9c2", "stable") == {
        MANAGED_BY_LABEL: "modeldeploy", NAME_LABEL: "resnet", REVISION_LABEL: "resnet-7f9c2",
        ROLE_LABEL: "stable"}
    assert selector("resnet") == {NAME_LABEL: "resnet"}
    assert selector("resnet", "resnet-7f9c2") == {NAME_LABEL: "resnet", REVISION_LABEL: "resnet-7f9c2"}


def test_owner_reference(render_owner: Owner) -> None:
    assert owner_reference(render_owner) == {
        "apiVersion": "serving.modeldeploy.dev/v1alpha1", "kind": "ModelDeployment", "name": "resnet",
        "uid": render_owner.uid, "controller": True, "blockOwnerDeletion": True}


def test_runtime_images_from_env() -> None:
    assert RuntimeImages.from_env({}) == RuntimeImages()
    images = RuntimeImages.from_env({"MODELDEPLOY_MODELSERVER_IMAGE": "r/ms:1",
                                     "MODELDEPLOY_MODELSERVER_GPU_IMAGE": "r/ms:1-gpu",
                                     "MODELDEPLOY_TRITON_IMAGE": "", "UNRELATED": "x"})
    assert images == RuntimeImages(modelserver="r/ms:1", modelserver_gpu="r/ms:1-gpu",
                                   triton="nvcr.io/nvidia/tritonserver:24.10-py3")
