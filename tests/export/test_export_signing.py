"""`modeldeploy export --sign-key`: the signature beside the model verifies in `modelserver fetch`."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import yaml

from modeldeploy.api.semantics import spec_problems
from modelserver import fetch

from ..signing_material import certificate_authority, key_pair
from .helpers import export, model_path

pytestmark = pytest.mark.timeout(180)


def _fetch(model: Path, version: int, repo: Path, *trust: str) -> int:
    digest = "sha256:" + hashlib.sha256(model.read_bytes()).hexdigest()
    return fetch.main([str(model), "--digest", digest, "--into", str(repo), "--model", "m", "--version", str(version),
                       "--termination-log", "", "--quiet", *trust])


def test_export_signs_the_model_and_its_version(tmp_path: Path) -> None:
    keys = key_pair(tmp_path, "release")
    out = tmp_path / "repo"
    result = export(model_path("TinyMLP"), "--input-shape", "1,16", "--out", str(out), "--version", "4",
                    "--uri-prefix", "https://models.example/", "--sign-key", str(keys.private))
    assert result.code == 0, result.err
    model = out / "tinymlp/4/model.onnx"
    signature = model.with_name("model.onnx.sig")
    public = model.with_name("signing-public.pem")
    assert signature.is_file() and public.read_bytes() == keys.public.read_bytes()
    assert f"signature: {signature}" in result.err
    assert f"kubectl create configmap tinymlp-model-signing --from-file=signing-public.pem={public}" in result.err

    doc = yaml.safe_load(result.out)
    assert doc["spec"]["model"]["signature"] == {
        "publicKey": {"configMapKeyRef": {"name": "tinymlp-model-signing", "key": "signing-public.pem"}}}
    spec, problems = spec_problems("tinymlp", doc["spec"])
    assert spec is not None and problems == []

    # What the init container will do with it: verified as version 4, refused as any other.
    assert _fetch(model, 4, tmp_path / "ok", "--signature-public-key", str(public)) == 0
    assert _fetch(model, 5, tmp_path / "replay", "--signature-public-key", str(public)) == fetch.EXIT_SIGNATURE
    assert not (tmp_path / "replay" / "m" / "5").exists()


def test_export_signs_with_a_certificate(tmp_path: Path) -> None:
    ca = certificate_authority(tmp_path, "corp")
    out = tmp_path / "repo"
    result = export(model_path("TinyMLP"), "--input-shape", "1,16", "--out", str(out),
                    "--sign-key", str(ca.leaf_key), "--sign-certificate", str(ca.leaf),
                    "--sign-certificate-chain", str(ca.ca))
    assert result.code == 0, result.err
    doc = yaml.safe_load(result.out)
    assert doc["spec"]["model"]["signature"] == {
        "certificateChain": {"configMapKeyRef": {"name": "tinymlp-model-signing", "key": "ca.pem"}}}
    model = out / "tinymlp/1/model.onnx"
    assert _fetch(model, 1, tmp_path / "ok", "--signature-certificate-chain", str(ca.ca)) == 0


@pytest.mark.parametrize("args,message", [
    (["--sign-key", "/nonexistent/key.pem"], "--sign-key /nonexistent/key.pem: no such file"),
    (["--sign-certificate-chain", "x.pem"], "need --sign-key"),
])
def test_bad_signing_arguments_are_named_before_any_step(tmp_path: Path, args: list[str], message: str) -> None:
    result = export(model_path("TinyMLP"), "--input-shape", "1,16", "--out", str(tmp_path), *args)
    assert result.code == 1 and message in result.err, result.err
    assert "[1/5]" not in result.err


def test_a_key_that_is_not_a_private_key_is_named(tmp_path: Path) -> None:
    keys = key_pair(tmp_path, "release")
    result = export(model_path("TinyMLP"), "--input-shape", "1,16", "--out", str(tmp_path / "repo"),
                    "--sign-key", str(keys.public))
    assert result.code == 1 and f"cannot use --sign-key {keys.public}" in result.err, result.err
    assert "[1/5]" not in result.err
