"""`modeldeploy export --encrypt-to`: the repository holds only the age ciphertext, its digest is the
ciphertext's, and the manifest names the key Secret; the cluster's identity decrypts it to the model.
With `--sign-key` too, the signature covers the ciphertext (and the version), and `modelserver fetch`
checks it before it decrypts anything."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import numpy as np
import onnxruntime
import pyrage
import pytest
import yaml
from pyrage import x25519

from modeldeploy.api.semantics import spec_problems
from modelserver import fetch
from modelserver.decrypt import EXIT_DECRYPTION_FAILED

from ..signing_material import key_pair
from .helpers import Result, export, model_path

KEY = x25519.Identity.generate()


@pytest.fixture(scope="module")
def sealed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Result]:
    out = tmp_path_factory.mktemp("repo")
    recipients = out.parent / "recipients.txt"
    recipients.write_text(f"# the cluster's key\n{x25519.Identity.generate().to_public()}\n")
    result = export(model_path("TinyMLP"), "--input-shape", "1,16", "--out", str(out),
                    "--uri-prefix", "s3://bucket/models", "--encrypt-to", str(KEY.to_public()),
                    "--encrypt-to", str(recipients))
    assert result.code == 0, result.err
    return out, result


def test_the_repository_holds_the_ciphertext_only(sealed: tuple[Path, Result]) -> None:
    out, result = sealed
    files = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert files == ["tinymlp/1/model.onnx.age", "tinymlp/config.pbtxt"]
    ciphertext = (out / "tinymlp/1/model.onnx.age").read_bytes()
    assert ciphertext.startswith(b"age-encryption.org/v1\n")
    assert "age-encrypted to 2 recipient(s)" in result.err
    # The cluster's identity turns it back into the verified model.
    plaintext = pyrage.decrypt(ciphertext, [KEY])
    session = onnxruntime.InferenceSession(plaintext)
    assert session.run(None, {"features": np.zeros((2, 16), dtype=np.float32)})[0].shape == (2, 10)


def test_digest_covers_the_ciphertext_and_the_manifest_names_the_key(sealed: tuple[Path, Result]) -> None:
    out, result = sealed
    digest = "sha256:" + hashlib.sha256((out / "tinymlp/1/model.onnx.age").read_bytes()).hexdigest()
    assert f"digest: {digest}" in result.err
    model = yaml.safe_load(result.out)["spec"]["model"]
    assert model["uri"] == "s3://bucket/models/tinymlp/1/model.onnx.age" and model["digest"] == digest
    assert model["encryption"] == {"keySecretRef": {"name": "tinymlp-model-key", "key": "identity"}}
    spec, problems = spec_problems("tinymlp", yaml.safe_load(result.out)["spec"])
    assert spec is not None and problems == [] and spec.model.encryption is not None
    # The one command that makes the Secret the manifest names, under the key it reads.
    assert ("decrypt it in the cluster with: kubectl create secret generic tinymlp-model-key -n NAMESPACE "
            "--from-file=identity=") in result.err


@pytest.mark.parametrize("argv,message", [
    (["--encrypt-to", "age1notakey"], "not an age X25519 recipient"),
    (["--encrypt-to", "no-such-file"], "neither an age recipient (age1...) nor a recipients file"),
    (["--key-secret", "keys"], "--key-secret needs --encrypt-to"),
    (["--encrypt-to", str(KEY.to_public()), "--key-secret", "Bad_Name"], "bad --key-secret"),
])
def test_bad_encryption_arguments_are_named_before_any_work(tmp_path: Path, argv: list[str], message: str) -> None:
    result = export(model_path("TinyMLP"), "--input-shape", "1,16", "--out", str(tmp_path / "repo"), *argv)
    assert result.code == 1 and message in result.err, result.err
    assert "[1/5]" not in result.err and not (tmp_path / "repo").exists()


def test_a_secret_key_given_as_recipient_is_refused(tmp_path: Path) -> None:
    identity = tmp_path / "key.txt"
    identity.write_text(f"{KEY}\n")
    result = export(model_path("TinyMLP"), "--input-shape", "1,16", "--out", str(tmp_path / "repo"),
                    "--encrypt-to", str(identity))
    assert result.code == 1 and "holds a secret key" in result.err and str(KEY) not in result.err


def _signed_resources(bundle: Path) -> dict[str, str]:
    """name -> sha256 of each file of the signed payload, read from the bundle's in-toto statement."""
    envelope = json.loads(bundle.read_text())["dsseEnvelope"]
    statement = json.loads(base64.b64decode(envelope["payload"]))
    return {resource["name"]: resource["digest"] for resource in statement["predicate"]["resources"]}


def _fetch_sealed(model: Path, digest: str, tmp_path: Path, run: str, public: Path) -> tuple[int, Path]:
    """`modelserver fetch` as the init container runs it for an encrypted, signed model: (exit code, repo)."""
    identity = tmp_path / "identity"
    identity.write_text(f"{KEY}\n")
    repo = tmp_path / run / "repo"
    code = fetch.main([str(model), "--digest", digest, "--into", str(repo), "--model", "tinymlp", "--version", "3",
                       "--decryption-key", str(identity), "--ciphertext-dir", str(tmp_path / run / "ciphertext"),
                       "--signature", str(model) + ".sig", "--signature-public-key", str(public),
                       "--termination-log", "", "--quiet", "--retries", "0"])
    return code, repo


def test_a_signed_and_encrypted_export_signs_the_ciphertext(tmp_path: Path) -> None:
    keys = key_pair(tmp_path, "release")
    out = tmp_path / "out"
    result = export(model_path("TinyMLP"), "--input-shape", "1,16", "--out", str(out), "--version", "3",
                    "--uri-prefix", "https://models.example/", "--encrypt-to", str(KEY.to_public()),
                    "--sign-key", str(keys.private))
    assert result.code == 0, result.err
    model = out / "tinymlp/3/model.onnx.age"
    files = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert files == ["tinymlp/3/model.onnx.age", "tinymlp/3/model.onnx.age.sig", "tinymlp/3/signing-public.pem",
                     "tinymlp/config.pbtxt"]

    # The manifest names both: the key Secret and the trusted key; its digest is the ciphertext's.
    ciphertext = model.read_bytes()
    digest = "sha256:" + hashlib.sha256(ciphertext).hexdigest()
    doc = yaml.safe_load(result.out)
    assert doc["spec"]["model"] == {
        "name": "tinymlp", "uri": "https://models.example/tinymlp/3/model.onnx.age", "digest": digest,
        "format": "onnx", "version": 3,
        "encryption": {"keySecretRef": {"name": "tinymlp-model-key", "key": "identity"}},
        "signature": {"publicKey": {"configMapKeyRef": {"name": "tinymlp-model-signing",
                                                        "key": "signing-public.pem"}}}}
    spec, problems = spec_problems("tinymlp", doc["spec"])
    assert spec is not None and problems == []

    # The signed payload is the ciphertext's bytes and the version, never the plaintext's.
    signed = _signed_resources(model.with_name("model.onnx.age.sig"))
    plaintext = pyrage.decrypt(ciphertext, [KEY])
    assert signed == {"artifact": hashlib.sha256(ciphertext).hexdigest(),
                      "version": hashlib.sha256(b"3\n").hexdigest()}
    assert hashlib.sha256(plaintext).hexdigest() not in signed.values()

    # The init container's order: digest and signature over the ciphertext, then decryption.
    public = model.with_name("signing-public.pem")
    code, repo = _fetch_sealed(model, digest, tmp_path, "ok", public)
    assert code == 0 and (repo / "tinymlp/3/model.onnx").read_bytes() == plaintext

    # Another ciphertext for the same key, with its own digest, under the old signature: refused by the
    # signature check (exit 10) before decryption (which would succeed: exit 11 is never reached).
    swapped = tmp_path / "swapped" / "model.onnx.age"
    swapped.parent.mkdir()
    swapped.write_bytes(pyrage.encrypt(plaintext[:-1] + bytes([plaintext[-1] ^ 1]), [KEY.to_public()]))
    swapped.with_name("model.onnx.age.sig").write_bytes(model.with_name("model.onnx.age.sig").read_bytes())
    code, repo = _fetch_sealed(swapped, "sha256:" + hashlib.sha256(swapped.read_bytes()).hexdigest(), tmp_path,
                               "swapped", public)
    assert code == fetch.EXIT_SIGNATURE and code != EXIT_DECRYPTION_FAILED
    assert not (repo / "tinymlp").exists()
