"""Cost of decrypting an encrypted model in the init container, against a plain copy of the same bytes.

    python bench/decrypt.py [--mib 512]

Each contestant runs in its own child process, so its peak RSS is its own:
- `copy` (baseline): shutil.copyfile of a plaintext file, which is what an unencrypted fetch costs after the download;
- `decrypt`: modelserver.decrypt.decrypt_file of the age ciphertext of the same bytes (streamed, authenticated).
Both write into a tmpfs directory (/dev/shm), as the memory-backed model volume does.
Prints MiB/s and peak RSS of each and the decrypt/copy ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHILD = r"""
import json, resource, shutil, sys, time
from pathlib import Path
mode, source, target, key = sys.argv[1:5]
start = time.perf_counter()
if mode == "copy":
    shutil.copyfile(source, target)
else:
    from modelserver.decrypt import decrypt_file, load_identities
    decrypt_file(Path(source), Path(target), load_identities(key), what="bench")
seconds = time.perf_counter() - start
print(json.dumps({"seconds": seconds, "rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def run(mode: str, source: Path, target: Path, key: Path) -> dict[str, float]:
    target.unlink(missing_ok=True)
    out = subprocess.run([sys.executable, "-c", CHILD, mode, str(source), str(target), str(key)],
                         check=True, capture_output=True, text=True).stdout
    target.unlink()
    result: dict[str, float] = json.loads(out)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mib", type=int, default=512, help="model size in MiB (default 512)")
    args = parser.parse_args()
    import pyrage
    from pyrage import x25519

    identity = x25519.Identity.generate()
    with tempfile.TemporaryDirectory(prefix="bench-decrypt-") as disk, \
            tempfile.TemporaryDirectory(prefix="bench-decrypt-", dir="/dev/shm") as memory:
        plain, sealed, key = Path(disk) / "model.onnx", Path(disk) / "model.onnx.age", Path(disk) / "identity"
        with plain.open("wb") as handle:
            for _ in range(args.mib):
                handle.write(os.urandom(2**20))
        pyrage.encrypt_file(str(plain), str(sealed), [identity.to_public()])
        key.write_text(f"{identity}\n")
        results = {"copy": run("copy", plain, Path(memory) / "copy", key),
                   "decrypt": run("decrypt", sealed, Path(memory) / "decrypt", key)}
    for mode, result in results.items():
        print(f"{mode:8s} {args.mib / result['seconds']:8.0f} MiB/s   peak RSS {result['rss_mib']:6.1f} MiB")
    copy, decrypt = results["copy"], results["decrypt"]
    print(f"decrypt/copy: time x{decrypt['seconds'] / copy['seconds']:.2f}, "
          f"peak RSS x{decrypt['rss_mib'] / copy['rss_mib']:.2f} ({args.mib} MiB model, {time.strftime('%F')})")


if __name__ == "__main__":
    main()
