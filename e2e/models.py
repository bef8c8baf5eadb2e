"""Generate the e2e models and print their URIs and digests as JSON (used by e2e/run.sh).

    python e2e/models.py --out DIR --base-url http://model-store.e2e-models.svc:8080 > models.json

Three versions of the same tiny ONNX model (input "input" FP32 [-1, 4] -> "output" FP32 [-1, 3]),
with different weights: v1 is the first stable, v2 the good canary, v3 the canary that is served
with an injected regression (the model is fine; the failure rate comes from the runtime's fault
injection, MODELSERVER_FAULT_ERROR_RATE, set through spec.runtime.env).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from modeldeploy_sandbox.onnx_models import linear_model, sha256_digest

VERSIONS = {"v1": 1, "v2": 2, "v3": 3}


def generate(out: Path, base_url: str) -> dict[str, dict[str, str]]:
    out.mkdir(parents=True, exist_ok=True)
    models: dict[str, dict[str, str]] = {}
    for version, seed in VERSIONS.items():
        data = linear_model(seed=seed)
        file_name = f"linear-{version}.onnx"
        (out / file_name).write_bytes(data)
        models[version] = {"uri": f"{base_url.rstrip('/')}/{file_name}", "digest": sha256_digest(data)}
    return models


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="directory for the .onnx files")
    parser.add_argument("--base-url", required=True, help="URL the files are served under, in the cluster")
    args = parser.parse_args(argv)
    json.dump(generate(args.out, args.base_url), sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
