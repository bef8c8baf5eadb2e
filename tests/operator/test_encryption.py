"""Issue 10 item 2 on the real control plane with the sandbox kubelet: encrypted models.

- an age-encrypted model is served: only the init container mounts the key, the model volume is a
  memory-backed emptyDir, and no plaintext byte of the model reaches a disk-backed path of the
  sandbox (the kubelet's pod directories, the artifact server) while it does reach the tmpfs one;
- a canary encrypted to another key is never served: DecryptionFailed in status and an Event, and
  the stable keeps 100% of the traffic;
- a corrupted (one flipped byte) or truncated ciphertext whose spec digest is of those very bytes passes
  the digest check and is caught by decryption: DecryptionFailed, never served, no plaintext installed.
"""

from __future__ import annotations

import base64
import functools
import json
import secrets
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime
import pyrage
from pyrage import x25519

from modeldeploy_sandbox.cluster import LocalCluster
from modeldeploy_sandbox.onnx_models import linear_model, sha256_digest
from modeldeploy_sandbox.pod_runner import TMPFS_ROOT
from modeldeploy_sandbox.sandbox import Sandbox, model_deployment
from modeldeploy_sandbox.waiting import wait_until

KEY = x25519.Identity.generate()
KEY_SECRET = "model-key"
AGE_CHUNK = 64 * 1024  # age's plaintext chunk: each is authenticated on its own
_no_proxy = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def marked_model(seed: int, padding: int = 0) -> tuple[bytes, bytes]:
    """A linear ONNX model whose doc_string is a random marker (+ `padding` filler bytes): (model, marker).
    The doc_string is serialized before the graph, so the marker is in the first age chunk (64 KiB)."""
    marker = f"PLAINTEXT-MARKER-{secrets.token_hex(16)}"
    model = onnx.load_from_string(linear_model(seed))
    model.doc_string = marker + "." * padding
    return model.SerializeToString(), marker.encode()


def add_encrypted(sandbox: Sandbox, path: str, plaintext: bytes, key: x25519.Identity) -> dict[str, Any]:
    """Serve `plaintext` age-encrypted to `key`; the spec.model of it (its digest covers the ciphertext)."""
    artifact = sandbox.artifacts.add(path, pyrage.encrypt(plaintext, [key.to_public()]))
    assert artifact.digest != sha256_digest(plaintext)
    return {"uri": artifact.url, "digest": artifact.digest, "maxSize": "64Mi",
            "encryption": {"keySecretRef": {"name": KEY_SECRET}}}


def create_key_secret(sandbox: Sandbox) -> None:
    identity_file = f"# public key: {KEY.to_public()}\n{KEY}\n"
    sandbox.kube.create({"apiVersion": "v1", "kind": "Secret",
                         "metadata": {"name": KEY_SECRET, "namespace": sandbox.namespace},
                         "data": {"identity": base64.b64encode(identity_file.encode()).decode()}})


def infer(address: str, model: str, rows: list[list[float]]) -> np.ndarray:
    body = {"inputs": [{"name": "input", "datatype": "FP32", "shape": [len(rows), 4], "data": rows}]}
    request = urllib.request.Request(f"http://{address}:8000/v2/models/{model}/infer", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    with _no_proxy.open(request, timeout=10) as response:
        (output,) = json.load(response)["outputs"]
    return np.array(output["data"], dtype=np.float32).reshape(output["shape"])


def files_holding(roots: list[Path], needle: bytes) -> list[Path]:
    found = []
    for root in roots:
        for path in root.rglob("*"):
            try:
                if path.is_file() and not path.is_symlink() and needle in path.read_bytes():
                    found.append(path)
            except OSError:
                continue  # removed meanwhile (another test's pod)
    return found


def test_an_encrypted_model_is_served_and_no_plaintext_reaches_disk(sandbox: Sandbox, cluster: LocalCluster) -> None:
    plaintext, marker = marked_model(seed=11)
    weights = onnx.numpy_helper.to_array(onnx.load_from_string(plaintext).graph.initializer[0]).tobytes()
    create_key_secret(sandbox)
    spec = model_deployment("sealed", sandbox.artifacts.linear(), strategy="immediate")
    spec["spec"]["model"] = add_encrypted(sandbox, "sealed/1/model.onnx.age", plaintext, KEY)
    sandbox.apply(spec)
    status = sandbox.wait_for_phase("sealed", "Healthy", 90)

    (pod,) = sandbox.pods("sealed", status["stableRevision"])
    (fetch,), (server,) = pod["spec"]["initContainers"], pod["spec"]["containers"]
    volumes = {volume["name"]: volume for volume in pod["spec"]["volumes"]}
    assert volumes["model-repository"]["emptyDir"] == {"medium": "Memory", "sizeLimit": "128Mi"}
    assert volumes["model-decryption-key"]["secret"]["secretName"] == KEY_SECRET
    assert "model-decryption-key" in {mount["name"] for mount in fetch["volumeMounts"]}
    assert {mount["name"] for mount in server["volumeMounts"]} == {"model-repository", "tmp"}

    # Served: the decrypted model answers as the plaintext model does.
    (running,) = sandbox.running_pods(ready=True)
    rows = [[1.0, 2.0, 3.0, 4.0], [0.5, -1.0, 0.0, 2.0]]
    expected = onnxruntime.InferenceSession(plaintext).run(None, {"input": np.array(rows, dtype=np.float32)})[0]
    np.testing.assert_allclose(infer(running.address, "sealed", rows), expected, rtol=1e-5)

    # The plaintext is on the pod's tmpfs volume (the scan below can see it) and on no disk-backed path.
    memory = list(TMPFS_ROOT.glob(f"modeldeploy-pod-{pod['metadata']['uid']}-*"))
    assert [path.name for path in files_holding(memory, marker)] == ["model.onnx"]
    disk = [cluster.kubelet.workdir, sandbox.artifacts.root]
    assert files_holding(disk, marker) == [] and files_holding(disk, weights) == []
    # ... although the disk-backed pod directory does hold the (verified) ciphertext and the logs.
    pod_dir = cluster.kubelet.workdir / pod["metadata"]["uid"]
    assert (pod_dir / "volumes" / "model-ciphertext" / "sealed" / "1" / "model.onnx").is_file()
    assert list((pod_dir / "logs").glob("server-*.log"))


def test_a_canary_encrypted_to_another_key_is_never_served(sandbox: Sandbox) -> None:
    create_key_secret(sandbox)
    rollout = {"strategy": "canary", "steps": [{"weight": 50, "pause": "2s"}], "progressDeadlineSeconds": 120}
    spec = model_deployment("rekeyed", sandbox.artifacts.linear(), strategy="canary", rollout=rollout)
    spec["spec"]["model"] = add_encrypted(sandbox, "rekeyed/1/model.onnx.age", linear_model(1), KEY)
    sandbox.apply(spec)
    stable = sandbox.wait_for_phase("rekeyed", "Healthy", 90)["stableRevision"]

    spec["spec"]["model"] = add_encrypted(sandbox, "rekeyed/2/model.onnx.age", linear_model(2),
                                          x25519.Identity.generate())
    sandbox.apply(spec)
    status = sandbox.wait_for("rekeyed", lambda s: s.get("rejectedRevisions"), 90, "the canary rejected")
    (rejected,) = status["rejectedRevisions"]
    assert rejected["reason"] == "DecryptionFailed", rejected
    assert "wrong key" in rejected["message"] and "spec.model.encryption.keySecretRef" in rejected["message"]
    assert status["stableRevision"] == stable and status.get("canaryRevision") is None
    wait_until(lambda: any(e.get("reason") == "DecryptionFailed" and e.get("type") == "Warning"
                           for e in sandbox.events("rekeyed")), 30, message="a DecryptionFailed Warning event")
    # Never served: no pod of the canary ever became ready, and the stable serves alone.
    canary_pods = sandbox.pods("rekeyed", rejected["revision"])
    assert all(not (c.get("ready")) for p in canary_pods for c in (p.get("status") or {}).get("containerStatuses", []))
    assert {p.revision for p in sandbox.running_pods(ready=True)} == {stable}


def _flip_last_chunk(ciphertext: bytes) -> bytes:
    """One bit flipped in the body's last chunk: the chunks before it authenticate and decrypt."""
    corrupted = bytearray(ciphertext)
    corrupted[-40] ^= 0x01
    return bytes(corrupted)


def _drop_last_chunk(ciphertext: bytes) -> bytes:
    """The age file without its last chunk: what is left is well-formed chunks, but not a whole stream."""
    header_end = ciphertext.index(b"\n", ciphertext.index(b"\n--- ") + 1) + 1
    body = header_end + 16  # after the payload nonce: chunks of 64 KiB + a 16-byte tag
    last = (len(ciphertext) - body) % (AGE_CHUNK + 16)
    assert last, "the plaintext filled its last chunk exactly"
    return ciphertext[:-last]


def test_a_corrupted_or_truncated_ciphertext_is_never_served(sandbox: Sandbox, cluster: LocalCluster) -> None:
    """The spec digests are of the damaged bytes: the digest check passes and decryption must catch it."""
    create_key_secret(sandbox)
    cases = {"flipped": (_flip_last_chunk, "the ciphertext is corrupted"),
             "truncated": (_drop_last_chunk, "the ciphertext is truncated")}
    markers = {}
    for name, (damage, _) in cases.items():
        # Three age chunks: the damage is in the last, so the first (with the marker) did decrypt.
        plaintext, markers[name] = marked_model(seed=21, padding=150_000)
        ciphertext = pyrage.encrypt(plaintext, [KEY.to_public()])
        artifact = sandbox.artifacts.add(f"{name}/1/model.onnx.age", damage(ciphertext))
        spec = model_deployment(name, artifact, strategy="immediate")
        spec["spec"]["model"] = {"uri": artifact.url, "digest": artifact.digest, "maxSize": "64Mi",
                                 "encryption": {"keySecretRef": {"name": KEY_SECRET}}}
        sandbox.apply(spec)

    def installed() -> list[Path]:
        """Plaintext model files of this namespace's pods, on any volume (checked until both are rejected)."""
        uids = [p["metadata"]["uid"] for name in cases for p in sandbox.pods(name)]
        roots = [path for uid in uids for path in TMPFS_ROOT.glob(f"modeldeploy-pod-{uid}-*")]
        roots += [cluster.kubelet.workdir / uid for uid in uids]
        return [path for root in roots for path in root.rglob("model.onnx")
                if "model-ciphertext" not in path.parts]

    seen: list[Path] = []

    def rejected_meanwhile_scanning(status: dict[str, Any]) -> Any:
        seen.extend(installed())
        return status.get("rejectedRevisions")

    def warned(name: str) -> bool:
        return any(e.get("reason") == "DecryptionFailed" and e.get("type") == "Warning" for e in sandbox.events(name))

    for name, (_, cause) in cases.items():
        status = sandbox.wait_for(name, rejected_meanwhile_scanning, 120, f"{name} rejected")
        (rejected,) = status["rejectedRevisions"]
        assert rejected["reason"] == "DecryptionFailed", rejected
        assert cause in rejected["message"] and "nothing was installed" in rejected["message"], rejected["message"]
        assert status["phase"] == "Failed" and status.get("stableRevision") is None
        stalled = next(c for c in status["conditions"] if c["type"] == "Stalled")
        assert stalled["reason"] == "DecryptionFailed"
        wait_until(functools.partial(warned, name), 30, message=f"a DecryptionFailed Warning of {name}")
    # No plaintext model file was ever installed, and no plaintext byte reached a disk-backed path.
    assert seen == []
    disk = [cluster.kubelet.workdir, sandbox.artifacts.root]
    assert all(files_holding(disk, marker) == [] for marker in markers.values())
    assert sandbox.running_pods(ready=True) == []
