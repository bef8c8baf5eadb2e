"""`modelserver fetch` verifies OpenSSF model-signing signatures before it installs anything.

Signatures are made by export's own signing code (modeldeploy.export.signing), offline: an EC key, or a
certificate from a throw-away CA. Every failure must exit 10 with SignatureInvalid and leave no model.
"""

from __future__ import annotations

import hashlib
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pyrage
import pytest

from modeldeploy.export.signing import SigningKey, sign_artifact
from modelserver import fetch

from ..signing_material import certificate_authority, key_pair

WEIGHTS = b"\x08\x07weights" * 4096


def digest(path: Path) -> str:
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


@dataclass
class Outcome:
    code: int
    line: str  # the termination message
    installed: bool
    repo: Path


def run_fetch(tmp_path: Path, model: Path, *extra: str, version: int = 3, signature: Path | None = None) -> Outcome:
    # A fresh repository each run: fetch keeps a file already installed (by an earlier, verified run).
    repo = Path(tempfile.mkdtemp(prefix="repo-", dir=tmp_path))
    log = tmp_path / "termination-log"
    log.write_text("")
    argv = [str(model), "--digest", digest(model), "--into", str(repo), "--model", "m", "--version", str(version),
            "--termination-log", str(log), "--retries", "0", *extra]
    if signature is not None:
        argv += ["--signature", signature.as_uri()]
    code = fetch.main(argv)
    return Outcome(code, log.read_text().strip(), (repo / "m" / str(version) / "model.onnx").exists(), repo)


@pytest.fixture
def signed(tmp_path: Path) -> tuple[Path, Path, Path]:
    """(model file, its signature as version 3, the trusted public key)."""
    model = tmp_path / "origin" / "model.onnx"
    model.parent.mkdir()
    model.write_bytes(WEIGHTS)
    keys = key_pair(tmp_path, "release")
    signed = sign_artifact(model, 3, SigningKey(keys.private))
    assert signed.signature == model.with_name("model.onnx.sig")
    return model, signed.signature, keys.public


def refused(outcome: Outcome, *words: str) -> None:
    assert outcome.code == fetch.EXIT_SIGNATURE == 10, outcome
    assert outcome.line.startswith("SignatureInvalid: "), outcome.line
    for word in words:
        assert word in outcome.line, outcome.line
    assert not outcome.installed


def test_a_signed_model_is_verified_and_installed(tmp_path: Path, signed: tuple[Path, Path, Path],
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    model, _, public = signed
    # The default signature location is beside the model: <uri>.sig.
    outcome = run_fetch(tmp_path, model, "--signature-public-key", str(public))
    assert outcome.code == 0 and outcome.installed and outcome.line == ""
    assert "verified for model version 3" in capsys.readouterr().err


def test_a_tampered_weight_file_is_refused(tmp_path: Path, signed: tuple[Path, Path, Path]) -> None:
    model, signature, public = signed
    tampered = bytearray(model.read_bytes())
    tampered[100] ^= 0x01  # one bit; the digest given to fetch is the tampered file's own
    model.write_bytes(bytes(tampered))
    refused(run_fetch(tmp_path, model, "--signature-public-key", str(public), signature=signature),
            "tampered or swapped")


def test_a_signature_from_another_key_is_refused(tmp_path: Path, signed: tuple[Path, Path, Path]) -> None:
    model, signature, _ = signed
    stranger = key_pair(tmp_path, "stranger")
    refused(run_fetch(tmp_path, model, "--signature-public-key", str(stranger.public), signature=signature),
            "not signed by a trusted signer")
    # ... and a model re-signed by the stranger is refused under the release key.
    sign_artifact(model, 3, SigningKey(stranger.private), signature=tmp_path / "stranger.sig")
    refused(run_fetch(tmp_path, model, "--signature-public-key", str(signed[2]),
                      signature=tmp_path / "stranger.sig"), "not signed by a trusted signer")


def test_a_swapped_model_file_is_refused(tmp_path: Path, signed: tuple[Path, Path, Path]) -> None:
    _, signature, public = signed
    other = tmp_path / "other" / "model.onnx"
    other.parent.mkdir()
    other.write_bytes(b"another model entirely" * 100)
    refused(run_fetch(tmp_path, other, "--signature-public-key", str(public), signature=signature),
            "tampered or swapped")


def test_a_missing_signature_is_refused(tmp_path: Path, signed: tuple[Path, Path, Path]) -> None:
    model, signature, public = signed
    signature.unlink()
    refused(run_fetch(tmp_path, model, "--signature-public-key", str(public)), "no signature at", "not signed")


def test_a_malformed_signature_is_refused(tmp_path: Path, signed: tuple[Path, Path, Path]) -> None:
    model, signature, public = signed
    signature.write_text('{"mediaType": "not a bundle"')
    refused(run_fetch(tmp_path, model, "--signature-public-key", str(public)), "not a valid model signature")


def test_an_old_signed_model_replayed_under_a_newer_version_is_refused(
        tmp_path: Path, signed: tuple[Path, Path, Path]) -> None:
    model, signature, public = signed  # signed as version 3
    refused(run_fetch(tmp_path, model, "--signature-public-key", str(public), version=5, signature=signature),
            "another model version than 5")
    # The same bytes signed as version 5 pass: the version is part of what is signed.
    keys = key_pair(tmp_path, "k5")
    sign_artifact(model, 5, SigningKey(keys.private), signature=tmp_path / "v5.sig")
    ok = run_fetch(tmp_path, model, "--signature-public-key", str(keys.public), version=5,
                   signature=tmp_path / "v5.sig")
    assert ok.code == 0 and ok.installed


def test_certificate_signing_is_trusted_through_its_ca_only(tmp_path: Path) -> None:
    model = tmp_path / "model.onnx"
    model.write_bytes(WEIGHTS)
    ours, theirs = certificate_authority(tmp_path, "ours"), certificate_authority(tmp_path, "theirs")
    signed = sign_artifact(model, 3, SigningKey(ours.leaf_key, ours.leaf, (ours.ca,)))
    assert signed.public_key is None  # trust is the CA, not a key
    ok = run_fetch(tmp_path, model, "--signature-certificate-chain", str(ours.ca), signature=signed.signature)
    assert ok.code == 0 and ok.installed
    refused(run_fetch(tmp_path, model, "--signature-certificate-chain", str(theirs.ca), signature=signed.signature),
            "does not chain to the trusted CA")


def test_signature_options_are_checked(tmp_path: Path, signed: tuple[Path, Path, Path]) -> None:
    model, signature, public = signed
    no_trust = run_fetch(tmp_path, model, signature=signature)
    assert no_trust.code == fetch.EXIT_USAGE and "exactly one of --signature-public-key" in no_trust.line
    both = run_fetch(tmp_path, model, "--signature-public-key", str(public), "--signature-identity", "a@b.c")
    assert both.code == fetch.EXIT_USAGE and not both.installed
    unreadable = run_fetch(tmp_path, model, "--signature-public-key", str(tmp_path / "absent.pem"))
    refused(unreadable, "cannot load the trusted key")


def test_an_encrypted_model_is_verified_as_ciphertext_then_decrypted(tmp_path: Path) -> None:
    """The shared ordering: download -> digest -> signature (over the ciphertext) -> decrypt -> install."""
    identity = pyrage.x25519.Identity.generate()
    key_file = tmp_path / "identity"
    key_file.write_text(str(identity) + "\n")
    sealed = tmp_path / "origin" / "model.onnx.age"
    sealed.parent.mkdir()
    sealed.write_bytes(pyrage.encrypt(WEIGHTS, [identity.to_public()]))
    keys = key_pair(tmp_path, "release")
    decrypt = ["--decryption-key", str(key_file), "--ciphertext-dir", str(tmp_path / "ciphertext"),
               "--signature-public-key", str(keys.public)]

    # Signed over the plaintext (the wrong order): refused before anything is decrypted.
    plaintext = tmp_path / "plain" / "model.onnx"
    plaintext.parent.mkdir()
    plaintext.write_bytes(WEIGHTS)
    wrong = sign_artifact(plaintext, 3, SigningKey(keys.private))
    refused(run_fetch(tmp_path, sealed, *decrypt, signature=wrong.signature), "tampered or swapped")

    sign_artifact(sealed, 3, SigningKey(keys.private))  # export's order: encrypt, digest, then sign
    outcome = run_fetch(tmp_path, sealed, *decrypt)
    assert outcome.code == 0 and outcome.installed, outcome
    assert (outcome.repo / "m" / "3" / "model.onnx").read_bytes() == WEIGHTS


def test_keyless_without_sigstore_access_is_a_clear_signature_failure(tmp_path: Path, signed: tuple[Path, Path, Path],
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Keyless needs Sigstore's TUF trust root over HTTPS; here it is unreachable (a closed loopback port)."""
    model, signature, _ = signed
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg-data"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")  # discard port: nothing answers
    outcome = run_fetch(tmp_path, model, "--signature-identity", "release@example.com",
                        "--signature-oidc-issuer", "https://accounts.google.com", signature=signature)
    refused(outcome, "cannot set up Sigstore keyless verification")
