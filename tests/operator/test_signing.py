"""Issue 10 items 1 and 3 on the real control plane with the sandbox kubelet: signed models and the
downgrade guard.

- a model signed by `modeldeploy export`'s signing code is served; the trusted key (a ConfigMap or a
  Secret) is mounted into the fetch init container only;
- a tampered, unsigned, foreign-signed or swapped model, and an old signed model replayed under a newer
  version, are never served: the revision fails with SignatureInvalid in status and an Event;
- a tampered canary is rolled back while the stable keeps serving;
- a lower spec.model.version than the stable's is refused (DowngradeRefused): nothing of it is created;
  `allowDowngrade: true` lets the revert through;
- a model exported with `--encrypt-to` and `--sign-key` together is served from its own manifest, and
  its ciphertext swapped for another one encrypted to the same key is refused (SignatureInvalid).
"""

from __future__ import annotations

import base64
import json
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime
import pyrage
import pytest
import yaml
from pyrage import x25519

from modeldeploy.export.signing import SigningKey, sign_artifact
from modeldeploy.kubeapi import Invalid, KubeClient
from modeldeploy_sandbox.artifacts import Artifact
from modeldeploy_sandbox.onnx_models import linear_model
from modeldeploy_sandbox.sandbox import Sandbox, model_deployment
from modeldeploy_sandbox.waiting import wait_until

from ..export.helpers import export, model_path
from ..signing_material import KeyPair, key_pair

TRUST = {"publicKey": {"configMapKeyRef": {"name": "model-signing", "key": "release.pub"}}}


@pytest.fixture
def release_key(sandbox: Sandbox, tmp_path: Path) -> KeyPair:
    """The release key pair; its public half is in ConfigMap model-signing (key release.pub)."""
    keys = key_pair(tmp_path, "release")
    sandbox.kube.create({"apiVersion": "v1", "kind": "ConfigMap",
                         "metadata": {"name": "model-signing", "namespace": sandbox.namespace},
                         "data": {"release.pub": keys.public.read_text()}})
    return keys


def signed_model(sandbox: Sandbox, path: str, seed: int, version: int, key: Path) -> Artifact:
    """A model served at `path` with its signature beside it (`<path>.sig`), signed as `version`."""
    artifact = sandbox.artifacts.add(path, linear_model(seed))
    sign_artifact(sandbox.artifacts.root / artifact.path, version, SigningKey(key))
    return artifact


def signed_spec(name: str, artifact: Artifact, version: int, strategy: str = "immediate",
                **model: Any) -> dict[str, Any]:
    spec = model_deployment(name, artifact, strategy=strategy)
    spec["spec"]["model"].update({"version": version, "signature": TRUST, **model})
    return spec


def _pod_spec(sandbox: Sandbox, revision: str) -> dict[str, Any]:
    pods = sandbox.kube.list("v1", "Pod", sandbox.namespace, {"modeldeploy.dev/revision": revision})
    return dict(pods[0]["spec"])


def _warned(sandbox: Sandbox, name: str, reason: str) -> bool:
    """Waits for a Warning Event of `name` with `reason` (sent just after the status that records it)."""
    def found() -> bool:
        return any(e.get("type") == "Warning" and e.get("reason") == reason for e in sandbox.events(name))
    return bool(wait_until(found, 30, message=f"a Warning Event {reason} of {name}"))


def test_a_signed_model_is_served_and_its_trusted_key_reaches_fetch_only(sandbox: Sandbox, release_key: KeyPair,
                                                                         tmp_path: Path) -> None:
    artifact = signed_model(sandbox, "signed/1/model.onnx", seed=1, version=1, key=release_key.private)
    sandbox.apply(signed_spec("signed", artifact, 1))
    status = sandbox.wait_for_phase("signed", "Healthy", 90)
    assert [(r["name"], r.get("modelVersion")) for r in status["revisions"]] == [(status["stableRevision"], 1)]

    pod = _pod_spec(sandbox, status["stableRevision"])
    (fetch,), (server,) = pod["initContainers"], pod["containers"]
    mount = {"name": "model-signature-trust", "mountPath": "/var/run/modeldeploy/signature-trust", "readOnly": True}
    assert mount in fetch["volumeMounts"]
    assert all(m["name"] != "model-signature-trust" for m in server["volumeMounts"])
    assert fetch["args"][fetch["args"].index("--signature") + 1] == artifact.url + ".sig"
    assert "/var/run/modeldeploy/signature-trust/release.pub" in fetch["args"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["model-signature-trust"]["configMap"]["name"] == "model-signing"
    assert len(sandbox.running_pods(ready=True)) == 1

    # The same trust from a Secret works alike; only its named key is projected into the pod.
    sandbox.kube.create({"apiVersion": "v1", "kind": "Secret",
                         "metadata": {"name": "model-signing-secret", "namespace": sandbox.namespace},
                         "data": {"pub.pem": base64.b64encode(release_key.public.read_bytes()).decode(),
                                  "deploy-password": base64.b64encode(b"not for model pods").decode()}})
    second = signed_model(sandbox, "signed/2/model.onnx", seed=2, version=2, key=release_key.private)
    sandbox.apply(signed_spec("signed", second, 2, signature={
        "publicKey": {"secretKeyRef": {"name": "model-signing-secret", "key": "pub.pem"}}}))
    promoted = sandbox.wait_for("signed", lambda s: s.get("phase") == "Healthy"
                                and s.get("stableRevision") != status["stableRevision"], 120, "version 2 promoted")
    volumes = {v["name"]: v for v in _pod_spec(sandbox, promoted["stableRevision"])["volumes"]}
    assert volumes["model-signature-trust"]["secret"]["secretName"] == "model-signing-secret"
    assert volumes["model-signature-trust"]["secret"]["items"] == [{"key": "pub.pem", "path": "pub.pem"}]


def test_bad_signatures_are_never_served(sandbox: Sandbox, release_key: KeyPair, tmp_path: Path) -> None:
    """Five first deploys at once, each with one thing wrong; none of them may ever serve."""
    stranger = key_pair(tmp_path, "stranger")
    root = sandbox.artifacts.root

    tampered = signed_model(sandbox, "tampered/1/model.onnx", seed=3, version=1, key=release_key.private)
    weights = bytearray((root / tampered.path).read_bytes())
    weights[-1] ^= 0x01  # one bit of the last initializer
    tampered = sandbox.artifacts.add(tampered.path, bytes(weights))  # the digest in the spec is the new bytes'

    foreign = signed_model(sandbox, "foreign/1/model.onnx", seed=4, version=1, key=stranger.private)

    swapped = signed_model(sandbox, "swapped/1/model.onnx", seed=5, version=1, key=release_key.private)
    swapped = sandbox.artifacts.add(swapped.path, linear_model(6))  # another model, the old signature

    unsigned = sandbox.artifacts.add("unsigned/1/model.onnx", linear_model(7))

    # An old model, rightly signed as version 1, offered as version 4: the signature binds the version.
    replayed = signed_model(sandbox, "replayed/1/model.onnx", seed=8, version=1, key=release_key.private)

    cases = {"tampered": (tampered, 1, "tampered or swapped"),
             "foreign": (foreign, 1, "not signed by a trusted signer"),
             "swapped": (swapped, 1, "tampered or swapped"),
             "unsigned": (unsigned, 1, "no signature at"),
             "replayed": (replayed, 4, "another model version than 4")}
    for name, (artifact, version, _) in cases.items():
        sandbox.apply(signed_spec(name, artifact, version))
    for name, (_, _, words) in cases.items():
        status = sandbox.wait_for(name, lambda s: s.get("rejectedRevisions"), 120, f"{name} rejected")
        (rejected,) = status["rejectedRevisions"]
        assert rejected["reason"] == "SignatureInvalid", rejected
        assert words in rejected["message"], rejected["message"]
        assert status["phase"] == "Failed" and status.get("stableRevision") is None
        stalled = next(c for c in status["conditions"] if c["type"] == "Stalled")
        assert stalled["reason"] == "SignatureInvalid"
        assert _warned(sandbox, name, "SignatureInvalid")
    assert sandbox.running_pods(ready=True) == []


def test_a_tampered_canary_is_rolled_back_and_the_stable_keeps_serving(sandbox: Sandbox, release_key: KeyPair) -> None:
    good = signed_model(sandbox, "canary/1/model.onnx", seed=1, version=1, key=release_key.private)
    sandbox.apply(signed_spec("canary", good, 1, strategy="canary"))
    stable = sandbox.wait_for_phase("canary", "Healthy", 90)["stableRevision"]

    bad = signed_model(sandbox, "canary/2/model.onnx", seed=2, version=2, key=release_key.private)
    weights = bytearray((sandbox.artifacts.root / bad.path).read_bytes())
    weights[-1] ^= 0x01
    bad = sandbox.artifacts.add(bad.path, bytes(weights))
    sandbox.apply(signed_spec("canary", bad, 2, strategy="canary"))
    status = sandbox.wait_for("canary", lambda s: s.get("phase") == "RolledBack", 120, "canary rolled back")
    (rejected,) = status["rejectedRevisions"]
    assert rejected["reason"] == "SignatureInvalid" and "tampered or swapped" in rejected["message"]
    assert status["stableRevision"] == stable
    assert _warned(sandbox, "canary", "SignatureInvalid")
    serving = sandbox.running_pods(ready=True)
    assert [p.revision for p in serving] == [stable]


def test_a_downgrade_is_refused_unless_allowed(sandbox: Sandbox) -> None:
    v2 = sandbox.artifacts.linear("down/2/model.onnx", seed=2)
    spec = model_deployment("down", v2, strategy="immediate")
    spec["spec"]["model"]["version"] = 2
    sandbox.apply(spec)
    stable = sandbox.wait_for_phase("down", "Healthy", 90)["stableRevision"]

    v1 = sandbox.artifacts.linear("down/1/model.onnx", seed=1)
    older = model_deployment("down", v1, strategy="immediate")
    older["spec"]["model"]["version"] = 1
    sandbox.apply(older)
    status = sandbox.wait_for("down", lambda s: s.get("phase") == "Failed", 60, "downgrade refused")
    stalled = next(c for c in status["conditions"] if c["type"] == "Stalled")
    assert (stalled["status"], stalled["reason"]) == ("True", "DowngradeRefused")
    assert "spec.model.version 1 is lower than version 2" in status["message"]
    assert _warned(sandbox, "down", "DowngradeRefused")
    # Nothing of the refused revision exists; the stable still serves.
    assert [d["metadata"]["name"] for d in sandbox.deployments("down")] == [stable]
    assert status["stableRevision"] == stable and status.get("canaryRevision") is None
    assert [p.revision for p in sandbox.running_pods(ready=True)] == [stable]

    # The one explicit line of a GitOps revert.
    older["spec"]["model"]["allowDowngrade"] = True
    sandbox.apply(older)
    reverted = sandbox.wait_for("down", lambda s: s.get("phase") == "Healthy" and s.get("stableRevision") != stable,
                                90, "the revert promoted")
    entry = next(r for r in reverted["revisions"] if r["name"] == reverted["stableRevision"])
    assert entry["modelVersion"] == 1


@pytest.mark.parametrize("signature,message", [
    ({}, "set exactly one of publicKey, certificateChain or keyless"),
    ({"publicKey": {"configMapKeyRef": {"name": "k", "key": "p.pem"}, "secretKeyRef": {"name": "k", "key": "p"}}},
     "set exactly one of secretKeyRef or configMapKeyRef"),
    ({"publicKey": {"configMapKeyRef": {"name": "k", "key": "p.pem"}}, "uri": "https://h/a/../b.sig"},
     "'..' path segments are not allowed"),
])
def test_the_apiserver_refuses_bad_signature_specs(admin: KubeClient, bare_sandbox: Sandbox,
                                                   signature: dict[str, Any], message: str) -> None:
    body = model_deployment("sig", bare_sandbox.artifacts.linear())
    body["metadata"]["namespace"] = bare_sandbox.namespace
    body["spec"]["model"]["signature"] = signature
    with pytest.raises(Invalid) as refused:
        admin.create(body)
    assert message in refused.value.message and "spec.model.signature" in refused.value.message, \
        refused.value.message
    body["spec"]["model"].update(signature={"keyless": {"identity": "a@b.c", "oidcIssuer": "https://issuer.example"}},
                                 allowDowngrade=True)
    created = admin.create(body)
    assert created["spec"]["model"]["allowDowngrade"] is True


def _infer_features(address: str, model: str, rows: list[list[float]]) -> np.ndarray:
    body = {"inputs": [{"name": "features", "datatype": "FP32", "shape": [len(rows), 16], "data": rows}]}
    request = urllib.request.Request(f"http://{address}:8000/v2/models/{model}/infer", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(request, timeout=10) as response:
        (output,) = json.load(response)["outputs"]
    return np.array(output["data"], dtype=np.float32).reshape(output["shape"])


def test_a_signed_and_encrypted_export_is_served_and_a_swapped_ciphertext_is_not(sandbox: Sandbox,
                                                                                  tmp_path: Path) -> None:
    cluster_key, signer = x25519.Identity.generate(), key_pair(tmp_path, "release")
    out = tmp_path / "repo"
    result = export(model_path("TinyMLP"), "--input-shape", "1,16", "--out", str(out), "--version", "3",
                    "--uri-prefix", sandbox.artifacts.url, "--encrypt-to", str(cluster_key.to_public()),
                    "--sign-key", str(signer.private))
    assert result.code == 0, result.err
    exported = out / "tinymlp" / "3"
    for name in ("model.onnx.age", "model.onnx.age.sig"):
        sandbox.artifacts.add(f"tinymlp/3/{name}", (exported / name).read_bytes())
    # What the manifest refers to, made as export's hint says: the trusted key and the cluster's identity.
    sandbox.kube.create({"apiVersion": "v1", "kind": "ConfigMap",
                         "metadata": {"name": "tinymlp-model-signing", "namespace": sandbox.namespace},
                         "data": {"signing-public.pem": (exported / "signing-public.pem").read_text()}})
    sandbox.kube.create({"apiVersion": "v1", "kind": "Secret",
                         "metadata": {"name": "tinymlp-model-key", "namespace": sandbox.namespace},
                         "data": {"identity": base64.b64encode(f"{cluster_key}\n".encode()).decode()}})
    manifest = yaml.safe_load(result.out)
    assert {"signature", "encryption"} <= set(manifest["spec"]["model"])
    manifest["spec"]["model"]["maxSize"] = "64Mi"
    manifest["spec"] |= {"autoscaling": {"minReplicas": 1, "maxReplicas": 1}, "rollout": {"strategy": "immediate"}}

    # The same manifest, but the ciphertext swapped for another model's, encrypted to the same key (so it
    # would decrypt and load), with its own digest and the original signature beside it.
    other = sandbox.artifacts.add("swapped/3/model.onnx.age", pyrage.encrypt(linear_model(9),
                                                                              [cluster_key.to_public()]))
    sandbox.artifacts.add("swapped/3/model.onnx.age.sig", (exported / "model.onnx.age.sig").read_bytes())
    swapped = json.loads(json.dumps(manifest))
    swapped["metadata"]["name"] = "swapped"
    swapped["spec"]["model"] |= {"uri": other.url, "digest": other.digest}

    sandbox.apply(manifest)
    sandbox.apply(swapped)
    status = sandbox.wait_for_phase("tinymlp", "Healthy", 120)
    assert [(r["name"], r.get("modelVersion")) for r in status["revisions"]] == [(status["stableRevision"], 3)]
    (running,) = [p for p in sandbox.running_pods(ready=True) if p.revision == status["stableRevision"]]
    rows = np.random.default_rng(3).standard_normal((2, 16)).astype(np.float32)
    plaintext = pyrage.decrypt((exported / "model.onnx.age").read_bytes(), [cluster_key])
    expected = onnxruntime.InferenceSession(plaintext).run(None, {"features": rows})[0]
    np.testing.assert_allclose(_infer_features(running.address, "tinymlp", rows.tolist()), expected, rtol=1e-4,
                               atol=1e-5)

    refused = sandbox.wait_for("swapped", lambda s: s.get("rejectedRevisions"), 120, "swapped rejected")
    (rejected,) = refused["rejectedRevisions"]
    assert rejected["reason"] == "SignatureInvalid" and "tampered or swapped" in rejected["message"], rejected
    assert refused["phase"] == "Failed" and refused.get("stableRevision") is None
    assert _warned(sandbox, "swapped", "SignatureInvalid")
    assert {p.revision for p in sandbox.running_pods(ready=True)} == {status["stableRevision"]}
