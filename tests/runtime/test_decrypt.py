"""`modelserver fetch --decryption-key`: age-encrypted artifacts from file:// sources, decrypted into the
repository only when the whole stream authenticates; every failure leaves no plaintext behind."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pyrage
import pytest
from pyrage import x25519

from modelserver import fetch
from modelserver.decrypt import DecryptionError, _Writer, decrypt_file, load_identities

pytestmark = pytest.mark.timeout(60)

# Several age chunks (64 KiB each), so corruption and truncation can hit the middle of the stream.
PLAINTEXT = b"MODEL-PLAINTEXT-MARKER" + os.urandom(300_000)
KEY = x25519.Identity.generate()
OTHER_KEY = x25519.Identity.generate()
CIPHERTEXT = pyrage.encrypt(PLAINTEXT, [KEY.to_public()])


def digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def identity_file(tmp_path: Path, *identities: x25519.Identity, name: str = "identity") -> Path:
    path = tmp_path / name
    lines = ["# created by the test", *(str(identity) for identity in identities), ""]
    path.write_text("\n".join(lines))
    return path


def run_fetch(tmp_path: Path, artifact: bytes, key: Path, *extra: str) -> tuple[int, str, Path]:
    """Serve `artifact` from a file:// source, fetch it with its own digest; (exit code, termination line, repo)."""
    source = tmp_path / "source" / "model.onnx.age"
    source.parent.mkdir(exist_ok=True)
    source.write_bytes(artifact)
    repo, log = tmp_path / "repo", tmp_path / "termination-log"
    log.write_text("")
    code = fetch.main([source.as_uri(), "--digest", digest(artifact), "--into", str(repo), "--model", "m",
                       "--decryption-key", str(key), "--ciphertext-dir", str(tmp_path / "ciphertext"),
                       "--termination-log", str(log), "--retries", "0", *extra])
    return code, log.read_text().strip(), repo


def files_under(root: Path) -> list[Path]:
    return sorted(path for path in root.rglob("*") if path.is_file()) if root.exists() else []


def no_plaintext_under(root: Path) -> bool:
    return all(PLAINTEXT[:4096] not in path.read_bytes() for path in files_under(root))


def test_encrypted_model_is_installed_decrypted(tmp_path: Path) -> None:
    code, line, repo = run_fetch(tmp_path, CIPHERTEXT, identity_file(tmp_path, OTHER_KEY, KEY))
    assert (code, line) == (0, "")
    assert (repo / "m" / "1" / "model.onnx").read_bytes() == PLAINTEXT
    assert files_under(repo) == [repo / "m" / "1" / "model.onnx"]  # no staging left
    # The verified ciphertext stays on its own (disk) volume for cheap restarts; it is ciphertext only.
    assert (tmp_path / "ciphertext" / "m" / "1" / "model.onnx").read_bytes() == CIPHERTEXT


def test_a_restart_reuses_the_verified_ciphertext_and_decrypts_again(tmp_path: Path) -> None:
    key = identity_file(tmp_path, KEY)
    assert run_fetch(tmp_path, CIPHERTEXT, key)[0] == 0
    (tmp_path / "source" / "model.onnx.age").unlink()  # a second download would now fail
    code, _, repo = run_fetch(tmp_path, CIPHERTEXT, key)
    assert code == 0 and (repo / "m" / "1" / "model.onnx").read_bytes() == PLAINTEXT


def test_config_pbtxt_is_installed_next_to_the_decrypted_model(tmp_path: Path) -> None:
    code, _, repo = run_fetch(tmp_path, CIPHERTEXT, identity_file(tmp_path, KEY),
                              "--config-pbtxt", 'name: "m"\nplatform: "onnxruntime_onnx"\n')
    assert code == 0 and 'platform: "onnxruntime_onnx"' in (repo / "m" / "config.pbtxt").read_text()


@pytest.mark.parametrize("artifact,cause", [
    (CIPHERTEXT, "wrong key"),
    (CIPHERTEXT[: len(CIPHERTEXT) // 2], "corrupted"),  # cut inside a chunk: that chunk fails authentication
    (CIPHERTEXT[: len(CIPHERTEXT) - (len(PLAINTEXT) % 65536) - 16], "truncated"),  # cut at a chunk boundary
    (CIPHERTEXT[:200_000] + bytes([CIPHERTEXT[200_000] ^ 1]) + CIPHERTEXT[200_001:], "corrupted"),
    (PLAINTEXT, "not an age-encrypted file"),
], ids=["wrong-key", "truncated-mid-chunk", "truncated-at-chunk-boundary", "flipped-bit", "not-encrypted"])
def test_a_bad_key_or_ciphertext_is_decryption_failed_and_installs_nothing(tmp_path: Path, artifact: bytes,
                                                                         cause: str) -> None:
    key = identity_file(tmp_path, OTHER_KEY if cause == "wrong key" else KEY)
    # The digest is the damaged file's own: decryption, not the digest check, is what must catch it.
    code, line, repo = run_fetch(tmp_path, artifact, key)
    assert code == 11, line
    assert line.startswith("DecryptionFailed: cannot decrypt the artifact of file://") and cause in line, line
    assert "nothing was installed" in line
    assert files_under(repo) == []
    assert no_plaintext_under(tmp_path / "repo")
    assert str(OTHER_KEY) not in line and str(KEY) not in line


@pytest.mark.parametrize("content,message", [
    ("# only a comment\n", "holds no age identity"),
    ("AGE-SECRET-KEY-1NOTAKEY\n", "line 1 of the decryption key"),
    ("\u00e9\n", "not ASCII text"),
])
def test_a_malformed_key_file_is_named_before_any_download(tmp_path: Path, content: str, message: str) -> None:
    key = tmp_path / "identity"
    key.write_text(content)
    code, line, repo = run_fetch(tmp_path, CIPHERTEXT, key)
    assert code == 11 and message in line and "spec.model.encryption.keySecretRef" in line, line
    assert not (tmp_path / "ciphertext").exists() and files_under(repo) == []


def test_a_missing_key_file_is_decryption_failed(tmp_path: Path) -> None:
    code, line, _ = run_fetch(tmp_path, CIPHERTEXT, tmp_path / "absent")
    assert code == 11 and "cannot read the decryption key" in line, line


def test_decryption_key_needs_a_ciphertext_dir(tmp_path: Path) -> None:
    source = tmp_path / "model.onnx.age"
    source.write_bytes(CIPHERTEXT)
    code = fetch.main([source.as_uri(), "--digest", digest(CIPHERTEXT), "--into", str(tmp_path / "repo"),
                       "--model", "m", "--decryption-key", str(identity_file(tmp_path, KEY)),
                       "--termination-log", ""])
    assert code == fetch.EXIT_USAGE


def test_a_digest_mismatch_is_reported_before_decryption(tmp_path: Path) -> None:
    source = tmp_path / "model.onnx.age"
    source.write_bytes(CIPHERTEXT)
    log = tmp_path / "termination-log"
    log.write_text("")
    code = fetch.main([source.as_uri(), "--digest", digest(PLAINTEXT), "--into", str(tmp_path / "repo"),
                       "--model", "m", "--decryption-key", str(identity_file(tmp_path, KEY)),
                       "--ciphertext-dir", str(tmp_path / "ciphertext"), "--termination-log", str(log)])
    assert code == fetch.EXIT_INTEGRITY and log.read_text().startswith("ArtifactIntegrity: digest mismatch")
    assert files_under(tmp_path / "repo") == []


# --------------------------------------------------------------------------- decrypt_file itself


def test_decrypt_file_removes_partial_plaintext_on_failure(tmp_path: Path) -> None:
    # age releases each chunk once it authenticates: a late failure has already written plaintext.
    sealed = tmp_path / "sealed"
    sealed.write_bytes(CIPHERTEXT[: len(CIPHERTEXT) - 1000])
    out = tmp_path / "out"
    with pytest.raises(DecryptionError, match="corrupted"):
        decrypt_file(sealed, out, [KEY], what="it")
    assert not out.exists()


def test_decrypt_file_never_overwrites_an_existing_file(tmp_path: Path) -> None:
    sealed, out = tmp_path / "sealed", tmp_path / "out"
    sealed.write_bytes(CIPHERTEXT)
    out.write_bytes(b"keep")
    with pytest.raises(FileExistsError):
        decrypt_file(sealed, out, [KEY], what="it")


def test_a_full_volume_is_a_write_error_not_a_decryption_failure(tmp_path: Path) -> None:
    if not Path("/dev/full").exists():
        pytest.fail("/dev/full is needed to simulate a full memory volume")
    sealed = tmp_path / "sealed"
    sealed.write_bytes(CIPHERTEXT)
    with pytest.raises(fetch.FetchError) as raised, open("/dev/full", "wb") as full, sealed.open("rb") as source:
        pyrage.decrypt_io(source, _Writer(full), [KEY])  # type: ignore[arg-type]
    assert raised.value.reason == "RepositoryWriteFailed" and "sizeLimit" in raised.value.message


def test_load_identities_reads_an_age_keygen_file(tmp_path: Path) -> None:
    path = tmp_path / "key.txt"
    path.write_text(f"# created: 2026-01-01T00:00:00Z\n# public key: {KEY.to_public()}\n{KEY}\n")
    (identity,) = load_identities(path)
    assert str(identity.to_public()) == str(KEY.to_public())
