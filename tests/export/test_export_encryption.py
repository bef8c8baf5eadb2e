"""`modeldeploy export --encrypt-to`: the repository holds only the age ciphertext, its digest is the
ciphertext's, and the manifest names the key Secret; the cluster's identity decrypts it to the model."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import onnxruntime
import pyrage
import pytest
import yaml
from pyrage import x25519

from modeldeploy.api.semantics import spec_problems

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
