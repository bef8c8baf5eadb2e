"""Dynamic batching of concurrent requests, and the metrics they produce."""

from __future__ import annotations

import asyncio
import re
import urllib.request

import numpy as np
import tritonclient.http as th
import tritonclient.http.aio as tha

from .conftest import RunningServer


def scrape(server: RunningServer) -> str:
    with urllib.request.urlopen(server.metrics_url, timeout=5) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/plain")
        return resp.read().decode()


def sample(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for line in text.splitlines():
        m = re.match(rf"{name}\{{(.*)\}} (\S+)$", line)
        if m and all(f'{k}="{v}"' in m.group(1) for k, v in labels.items()):
            total += float(m.group(2))
    return total


async def _concurrent(server: RunningServer, batches: list[int]) -> list[tuple[np.ndarray, np.ndarray]]:
    client = tha.InferenceServerClient(server.http_url, conn_limit=64)
    try:

        async def one(i: int, n: int) -> tuple[np.ndarray, np.ndarray]:
            a = np.full((n, 4), float(i), dtype=np.float32)
            b = np.arange(n * 4, dtype=np.float32).reshape(n, 4)
            ins = [tha.InferInput("INPUT0", [n, 4], "FP32"), tha.InferInput("INPUT1", [n, 4], "FP32")]
            ins[0].set_data_from_numpy(a)
            ins[1].set_data_from_numpy(b)
            res = await client.infer("add_sub", ins, model_version="1")
            return res.as_numpy("OUTPUT0"), a + b

        return await asyncio.gather(*(one(i, n) for i, n in enumerate(batches)))
    finally:
        await client.close()


def test_concurrent_requests_are_batched(server: RunningServer) -> None:
    before = scrape(server)
    batches = [1] * 16 + [3, 6, 2, 5]
    results = asyncio.run(_concurrent(server, batches))
    for got, want in results:
        np.testing.assert_allclose(got, want)  # every request got its own slice back
    after = scrape(server)

    def delta(name: str) -> float:
        return sample(after, name, model="add_sub", version="1") - sample(before, name, model="add_sub", version="1")

    assert delta("nv_inference_request_success") == len(batches)
    assert delta("nv_inference_count") == sum(batches)
    execs = delta("nv_inference_exec_count")
    # 36 items with max_batch_size 8 need at least 5 runs; batching must beat one run per request.
    assert 5 <= execs < len(batches) / 2, execs
    assert delta("nv_inference_queue_duration_us") > 0
    assert delta("nv_inference_compute_infer_duration_us") > 0
    assert delta("nv_inference_request_duration_seconds_count") == len(batches)


def test_failures_are_counted_with_reason(server: RunningServer) -> None:
    before = scrape(server)
    client = th.InferenceServerClient(server.http_url)
    x = th.InferInput("X", [2, 3], "FP32")
    x.set_data_from_numpy(np.ones((2, 3), dtype=np.float32))
    client.infer("fixed", [x])
    bad = th.InferInput("X", [3, 2], "FP32")
    bad.set_data_from_numpy(np.ones((3, 2), dtype=np.float32))
    for _ in range(3):
        try:
            client.infer("fixed", [bad])
        except Exception:
            pass
    client.close()
    after = scrape(server)
    lbl = {"model": "fixed", "version": "1"}
    assert sample(after, "nv_inference_request_success", **lbl) - sample(before, "nv_inference_request_success", **lbl) == 1
    fail = "nv_inference_request_failure"
    assert sample(after, fail, reason="REJECTED", **lbl) - sample(before, fail, reason="REJECTED", **lbl) == 3
    hist = "nv_inference_request_duration_seconds_count"
    assert sample(after, hist, **lbl) - sample(before, hist, **lbl) == 4
    assert "nope" not in after  # unknown models never become label values
