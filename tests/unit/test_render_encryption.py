"""Pods of an encrypted model: the key reaches the init container only, the plaintext lives in memory."""

from __future__ import annotations

import kubernetes_validate
import pytest
from pydantic import ValidationError

from modeldeploy.api import ModelDeploymentSpec
from modeldeploy.render import Owner, RuntimeImages
from modeldeploy.render.revision import spec_hash
from modeldeploy.rollout.failures import classify

from .conftest import DIGEST, SpecFactory
from .test_fetch_failures import fetch_failed
from .test_render_deployment import fetch, pod, render, server

ENCRYPTED = {"model": {"maxSize": "1Gi", "encryption": {"keySecretRef": {"name": "resnet-key"}}}}


def test_the_key_secret_is_mounted_into_the_init_container_only(render_spec: SpecFactory, render_owner: Owner,
                                                                render_images: RuntimeImages) -> None:
    deployment = render(render_spec(ENCRYPTED), render_owner, render_images)
    volumes = {volume["name"]: volume for volume in pod(deployment)["volumes"]}
    assert volumes["model-decryption-key"]["secret"] == {
        "secretName": "resnet-key", "defaultMode": 0o440, "items": [{"key": "identity", "path": "identity"}]}
    init = fetch(deployment)
    assert {"name": "model-decryption-key", "mountPath": "/var/run/modeldeploy/decryption", "readOnly": True} \
        in init["volumeMounts"]
    args = init["args"]
    assert args[args.index("--decryption-key") + 1] == "/var/run/modeldeploy/decryption/identity"
    assert args[args.index("--ciphertext-dir") + 1] == "/var/run/modeldeploy/ciphertext"
    assert [mount["name"] for mount in server(deployment)["volumeMounts"]] == ["model-repository", "tmp"]
    kubernetes_validate.validate(deployment, "1.30", strict=True)


def test_the_plaintext_volume_is_memory_and_the_ciphertext_volume_disk(render_spec: SpecFactory,
                                                                      render_owner: Owner,
                                                                      render_images: RuntimeImages) -> None:
    deployment = render(render_spec(ENCRYPTED), render_owner, render_images)
    volumes = {volume["name"]: volume for volume in pod(deployment)["volumes"]}
    assert volumes["model-repository"]["emptyDir"] == {"medium": "Memory", "sizeLimit": "1088Mi"}
    assert volumes["model-ciphertext"]["emptyDir"] == {"sizeLimit": "1088Mi"}
    # The memory volume left the disk and the ciphertext took its place: the same disk request.
    assert server(deployment)["resources"]["requests"]["ephemeral-storage"] == "2112Mi"
    assert {"name": "model-ciphertext", "mountPath": "/var/run/modeldeploy/ciphertext"} in fetch(deployment)[
        "volumeMounts"]


def test_an_unencrypted_model_keeps_its_disk_volume(render_spec: SpecFactory, render_owner: Owner,
                                                    render_images: RuntimeImages) -> None:
    deployment = render(render_spec(), render_owner, render_images)
    volumes = {volume["name"]: volume for volume in pod(deployment)["volumes"]}
    assert "medium" not in volumes["model-repository"]["emptyDir"] and "model-ciphertext" not in volumes
    assert "--decryption-key" not in fetch(deployment)["args"]


def test_another_key_secret_is_another_revision(render_spec: SpecFactory) -> None:
    rotated = {"model": {**ENCRYPTED["model"], "encryption": {"keySecretRef": {"name": "resnet-key-2"}}}}
    assert len({spec_hash(render_spec()), spec_hash(render_spec(ENCRYPTED)), spec_hash(render_spec(rotated))}) == 3


@pytest.mark.parametrize("ref,field", [({}, "name"), ({"name": "Bad_Name"}, "name"),
                                       ({"name": "k", "key": "a/b"}, "key")])
def test_a_bad_key_secret_ref_is_named(ref: dict[str, str], field: str) -> None:
    with pytest.raises(ValidationError) as invalid:
        ModelDeploymentSpec.model_validate({"model": {"uri": "https://m.example/m.onnx.age", "digest": DIGEST,
                                                      "encryption": {"keySecretRef": ref}}})
    assert f"model.encryption.keySecretRef.{field}" in str(invalid.value)


def test_a_decryption_failure_is_its_own_fatal_class() -> None:
    failure = classify(fetch_failed(11, "DecryptionFailed: cannot decrypt the artifact of https://m/x: wrong key"))
    assert failure is not None and failure.reason == "DecryptionFailed" and failure.fatal
    assert "wrong key" in failure.message
    # A digest mismatch of the ciphertext stays ArtifactIntegrity.
    integrity = classify(fetch_failed(3, "ArtifactIntegrity: digest mismatch for https://m/x"))
    assert integrity is not None and integrity.reason == "ArtifactIntegrity"
