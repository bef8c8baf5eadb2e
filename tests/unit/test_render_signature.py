"""spec.model.signature in the API and the pods: trust reaches the fetch init container only."""

from __future__ import annotations

from typing import Any

import kubernetes_validate
import pytest
from pydantic import ValidationError

from modeldeploy.api import ModelDeploymentSpec
from modeldeploy.render import Owner, RuntimeImages, spec_hash
from modeldeploy.rollout.failures import classify

from .conftest import DIGEST, SpecFactory
from .test_fetch_failures import fetch_failed
from .test_render_deployment import fetch, pod, render, server

URI = "https://models.example.com/resnet/3/model.onnx"
KEY = {"configMapKeyRef": {"name": "release-keys", "key": "release.pub"}}


def _signed(signature: dict[str, Any], **model: Any) -> dict[str, Any]:
    return {"model": {"uri": URI, "digest": DIGEST, "version": 3, "signature": signature, **model}}


def test_a_public_key_is_mounted_into_fetch_only(render_spec: SpecFactory, render_owner: Owner,
                                                 render_images: RuntimeImages) -> None:
    deployment = render(render_spec(_signed({"publicKey": KEY})), render_owner, render_images)
    args = fetch(deployment)["args"]
    assert args[args.index("--signature") + 1] == URI + ".sig"  # beside the model, where export writes it
    assert args[args.index("--signature-public-key") + 1] == "/var/run/modeldeploy/signature-trust/release.pub"
    assert {"name": "model-signature-trust", "mountPath": "/var/run/modeldeploy/signature-trust",
            "readOnly": True} in fetch(deployment)["volumeMounts"]
    assert all(m["name"] != "model-signature-trust" for m in server(deployment)["volumeMounts"])
    volumes = {v["name"]: v for v in pod(deployment)["volumes"]}
    assert volumes["model-signature-trust"] == {
        "name": "model-signature-trust",
        "configMap": {"name": "release-keys", "items": [{"key": "release.pub", "path": "release.pub"}],
                      "defaultMode": 0o440}}
    kubernetes_validate.validate(deployment, "1.30", strict=True)


def test_a_ca_chain_from_a_secret_and_a_signature_elsewhere(render_spec: SpecFactory, render_owner: Owner,
                                                            render_images: RuntimeImages) -> None:
    signature = {"uri": "https://sigs.example.com/resnet-3.sig",
                 "certificateChain": {"secretKeyRef": {"name": "release-ca", "key": "ca.pem"}}}
    deployment = render(render_spec(_signed(signature)), render_owner, render_images)
    args = fetch(deployment)["args"]
    assert args[args.index("--signature") + 1] == "https://sigs.example.com/resnet-3.sig"
    assert args[args.index("--signature-certificate-chain") + 1] == "/var/run/modeldeploy/signature-trust/ca.pem"
    volumes = {v["name"]: v for v in pod(deployment)["volumes"]}
    # Only the named key of the Secret is projected: its other keys (a shared Secret's) never reach the pod.
    assert volumes["model-signature-trust"]["secret"] == {
        "secretName": "release-ca", "items": [{"key": "ca.pem", "path": "ca.pem"}], "defaultMode": 0o440}
    kubernetes_validate.validate(deployment, "1.30", strict=True)


def test_keyless_needs_no_volume(render_spec: SpecFactory, render_owner: Owner, render_images: RuntimeImages) -> None:
    keyless = {"keyless": {"identity": "release@example.com", "oidcIssuer": "https://accounts.google.com"}}
    deployment = render(render_spec(_signed(keyless)), render_owner, render_images)
    args = fetch(deployment)["args"]
    assert args[args.index("--signature-identity") + 1] == "release@example.com"
    assert args[args.index("--signature-oidc-issuer") + 1] == "https://accounts.google.com"
    assert all(v["name"] != "model-signature-trust" for v in pod(deployment)["volumes"])
    # Sigstore's trust root is cached under XDG directories: on the writable /tmp, not the read-only root.
    assert fetch(deployment)["env"] == [{"name": "XDG_DATA_HOME", "value": "/tmp/.local/share"},
                                        {"name": "XDG_CACHE_HOME", "value": "/tmp/.cache"}]


def test_an_unsigned_model_gets_no_signature_arguments(render_spec: SpecFactory, render_owner: Owner,
                                                       render_images: RuntimeImages) -> None:
    args = fetch(render(render_spec(), render_owner, render_images))["args"]
    assert not [arg for arg in args if arg.startswith("--signature")]


@pytest.mark.parametrize("signature,problem", [
    ({}, "set exactly one of publicKey, certificateChain or keyless"),
    ({"publicKey": KEY, "keyless": {"identity": "a@b.c", "oidcIssuer": "https://issuer.example"}},
     "set exactly one of publicKey, certificateChain or keyless"),
    ({"publicKey": {}}, "set exactly one of secretKeyRef or configMapKeyRef"),
    ({"publicKey": {"configMapKeyRef": {"name": "k", "key": "../x"}}}, "should match pattern"),
    ({"publicKey": KEY, "uri": "oci://x"}, "should match pattern"),
    ({"publicKey": KEY, "uri": "file:///sigs/../etc/passwd"}, "'..' path segments"),
    ({"keyless": {"identity": "a@b.c", "oidcIssuer": "http://insecure.example"}}, "should match pattern"),
])
def test_bad_signature_specs_are_refused_naming_the_field(signature: dict[str, Any], problem: str) -> None:
    with pytest.raises(ValidationError, match="signature") as refused:
        ModelDeploymentSpec.model_validate(_signed(signature))
    assert problem in str(refused.value)


def test_a_pvc_signature_must_be_on_the_models_claim() -> None:
    doc = {"model": {"uri": "pvc://models/resnet/3/model.onnx", "digest": DIGEST,
                     "signature": {"publicKey": KEY, "uri": "pvc://other/resnet.sig"}}}
    with pytest.raises(ValidationError, match=r"signature\.uri: a pvc:// signature must be on the model's claim"):
        ModelDeploymentSpec.model_validate(doc)
    doc["model"]["signature"]["uri"] = "pvc://models/resnet/3/model.onnx.sig"
    ModelDeploymentSpec.model_validate(doc)


def test_allow_downgrade_is_not_part_of_the_revision() -> None:
    plain = ModelDeploymentSpec.model_validate(_signed({"publicKey": KEY}))
    allowed = ModelDeploymentSpec.model_validate(_signed({"publicKey": KEY}, allowDowngrade=True))
    assert spec_hash(plain) == spec_hash(allowed)
    # The signature is: it changes what the init container checks.
    unsigned = ModelDeploymentSpec.model_validate({"model": {"uri": URI, "digest": DIGEST, "version": 3}})
    assert spec_hash(unsigned) != spec_hash(plain)


def test_a_signature_failure_is_its_own_fatal_class() -> None:
    # The message names the digest it did check: the exit code decides, not the word "digest".
    failure = classify(fetch_failed(10, "SignatureInvalid: the artifact (digest ok) is not the one signed"))
    assert failure is not None and failure.reason == "SignatureInvalid" and failure.fatal
    assert "signature does not verify" in failure.message
    digest = classify(fetch_failed(3, "ArtifactIntegrity: digest mismatch"))
    assert digest is not None and digest.reason == "ArtifactIntegrity"
