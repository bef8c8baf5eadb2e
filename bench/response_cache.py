#!/usr/bin/env python
"""Response cache: latency of a cache hit against a miss, on the same modelserver and model.

``python bench/response_cache.py [--requests N]`` builds an ONNX model with a few milliseconds'
worth of compute at most (a chain of 512x512 MatMul+Relu layers, generated with onnx.helper), serves
it twice from one ``modelserver serve`` subprocess on 127.0.0.1 -- ``cached`` with
``response_cache { enable: true }`` and ``uncached`` without -- and sends N sequential batch-1 JSON
requests (one keep-alive connection) in three runs, interleaved in chunks:

- hit: the same request to ``cached`` every time (after one miss);
- miss: a request with fresh random data every time to ``cached`` (lookup + insert + run);
- uncached: the same fresh requests to ``uncached`` (the baseline: no cache work at all).

It prints p50/p99 per run, the ratios miss/hit and uncached/miss, and the server's own
``nv_cache_*`` counters. All traffic goes to 127.0.0.1.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import urllib.request
from pathlib import Path

import numpy as np
import onnx
from local_modelserver import HOST, modelserver, pct_ms
from onnx import TensorProto, helper, numpy_helper

WIDTH, LAYERS = 512, 6
CONFIG = "max_batch_size: 8\ndynamic_batching { max_queue_delay_microseconds: 0 }\n"


def build_model(path: Path) -> None:
    rng = np.random.default_rng(0)
    nodes, inits, prev = [], [], "INPUT"
    for i in range(LAYERS):
        w = (rng.standard_normal((WIDTH, WIDTH)) / np.sqrt(WIDTH)).astype(np.float32)
        inits.append(numpy_helper.from_array(w, f"w{i}"))
        nodes.append(helper.make_node("MatMul", [prev, f"w{i}"], [f"m{i}"]))
        out = "OUTPUT" if i == LAYERS - 1 else f"r{i}"
        nodes.append(helper.make_node("Relu", [f"m{i}"], [out]))
        prev = out
    graph = helper.make_graph(
        nodes,
        "mlp",
        [helper.make_tensor_value_info("INPUT", TensorProto.FLOAT, ["N", WIDTH])],
        [helper.make_tensor_value_info("OUTPUT", TensorProto.FLOAT, ["N", WIDTH])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))


def body(x: np.ndarray) -> bytes:
    return json.dumps(
        {"inputs": [{"name": "INPUT", "shape": [1, WIDTH], "datatype": "FP32", "data": x.tolist()}]}
    ).encode()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--requests", type=int, default=2000, help="requests per run (default 2000)")
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="cache-bench-") as tmp:
        repo = Path(tmp) / "repo"
        build_model(repo / "cached" / "1" / "model.onnx")
        build_model(repo / "uncached" / "1" / "model.onnx")
        (repo / "cached" / "config.pbtxt").write_text(CONFIG + "response_cache { enable: true }\n")
        (repo / "uncached" / "config.pbtxt").write_text(CONFIG)
        with modelserver(repo) as server:
            json_headers = {"Content-Type": "application/json"}

            def timed(model: str, payload: bytes) -> float:
                return server.timed(f"/v2/models/{model}/infer", payload, json_headers)

            rng = np.random.default_rng(1)
            same = body(rng.standard_normal(WIDTH).astype(np.float32))
            fresh = [body(rng.standard_normal(WIDTH).astype(np.float32)) for _ in range(args.requests)]
            for _ in range(200):  # warm-up of both paths (and the one miss that fills the hit entry)
                timed("cached", same)
                timed("uncached", same)
            runs: dict[str, list[float]] = {"hit": [], "miss": [], "uncached": []}
            chunk = 100
            for start in range(0, args.requests, chunk):  # interleaved: machine drifts hit all three
                for _ in range(start, min(start + chunk, args.requests)):
                    runs["hit"].append(timed("cached", same))
                for i in range(start, min(start + chunk, args.requests)):
                    runs["miss"].append(timed("cached", fresh[i]))
                for i in range(start, min(start + chunk, args.requests)):
                    runs["uncached"].append(timed("uncached", fresh[i]))
            with urllib.request.urlopen(f"http://{HOST}:{server.metrics_port}/metrics", timeout=10) as r:
                metrics = r.read().decode()
    print(
        f"model: {LAYERS} x MatMul {WIDTH}x{WIDTH} + Relu, batch 1, JSON, sequential, {args.requests} requests per run"
    )
    for name, lat in runs.items():
        mean = statistics.mean(lat) * 1e3
        print(f"  {name:<9} p50 {pct_ms(lat, 50):7.3f} ms  p99 {pct_ms(lat, 99):7.3f} ms  mean {mean:7.3f} ms")
    p50 = {k: pct_ms(v, 50) for k, v in runs.items()}
    print(f"miss / hit p50: {p50['miss'] / p50['hit']:.2f}x   (a hit skips queue and model)")
    print(f"uncached / miss p50: {p50['uncached'] / p50['miss']:.3f}x   (below 1: what a miss's lookup+insert costs)")
    for line in metrics.splitlines():
        if line.startswith("nv_cache_") and 'model="cached"' in line:
            print("  " + line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
