"""Triton's response cache (``response_cache { enable: true }``), the stage timings of a batch, and
batches that keep filling while the model is busy (scheduler tests, no server)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import tritonclient.http as th

from modelserver.batching import Scheduler
from modelserver.faults import Faults
from modelserver.metrics import ModelStats
from modelserver.response_cache import ResponseCache, parse_cache_config
from modelserver.server import ServerConfig
from modelserver.session import ModelSession

from .conftest import RunningServer, ThreadedServer, add_sub_graph, save_model
from .test_batching_metrics import sample, scrape

CACHED_CONFIG = """
max_batch_size: 8
dynamic_batching { max_queue_delay_microseconds: 100 }
response_cache { enable: true }
"""


def f32(*shape: int, value: float = 1.0) -> np.ndarray:
    return np.full(shape, value, dtype=np.float32)


# -- the cache itself -------------------------------------------------------------------------


def test_key_covers_names_datatypes_shapes_bytes_and_outputs() -> None:
    k = ResponseCache.key
    base = k("m", 1, {"A": f32(2, 2)}, None)
    assert base == k("m", 1, {"A": f32(2, 2)}, None)
    assert base != k("m", 2, {"A": f32(2, 2)}, None)  # version
    assert base != k("m", 1, {"B": f32(2, 2)}, None)  # input name
    assert base != k("m", 1, {"A": f32(4)}, None)  # shape, same bytes
    assert base != k("m", 1, {"A": np.ones((2, 2), dtype=np.int32)}, None)  # datatype, same bytes
    assert base != k("m", 1, {"A": f32(2, 2, value=2.0)}, None)  # data
    assert base != k("m", 1, {"A": f32(2, 2)}, ["OUT"])  # requested outputs
    strings = {"S": np.array([b"ab", b"c"], dtype=object)}
    assert k("m", 1, strings, None) != k("m", 1, {"S": np.array([b"a", b"bc"], dtype=object)}, None)


def test_lru_is_bounded_by_bytes() -> None:
    cache = ResponseCache(max_bytes=3 * 400)
    for i in range(3):
        assert cache.put(bytes([i]), {"O": f32(100)})  # 400 bytes each
    assert cache.get(bytes([0])) is not None  # 0 is now the most recently used
    assert cache.put(bytes([3]), {"O": f32(100)})
    assert cache.get(bytes([1])) is None  # the least recently used went
    assert cache.get(bytes([0])) is not None and cache.get(bytes([3])) is not None
    assert (len(cache), cache.used_bytes, cache.evictions) == (3, 1200, 1)
    assert not cache.put(b"big", {"O": f32(1000)})  # larger than the whole cache: not stored
    hit = cache.get(bytes([0]))
    assert hit is not None and not hit["O"].flags.writeable  # cached arrays cannot be changed


def test_cache_config_is_tritons_spelling() -> None:
    assert parse_cache_config("local,size=1048576") == 1048576
    for bad in ("redis,size=1", "local", "local,size=1Mi", "local,size=1,ttl=3"):
        with pytest.raises(ValueError, match="--cache-config"):
            parse_cache_config(bad)


# -- stage timings per batch (Scheduler, no server) --------------------------------------------


def test_batch_stage_times_are_charged_per_request(tmp_path: Path) -> None:
    save_model(add_sub_graph(), tmp_path / "m.onnx")
    session = ModelSession("m", 1, tmp_path / "m.onnx", providers=["CPUExecutionProvider"], max_batch_size=8)
    stats = ModelStats("1")

    async def run() -> None:
        sched = Scheduler(session, stats, dynamic_batching=True, max_queue_delay_us=50_000)
        sched.start()
        try:
            # Queued in one loop turn: the dispatcher finds all three waiting and runs one batch.
            futs = [sched.submit({"INPUT0": f32(n, 4), "INPUT1": f32(n, 4)}, n, None) for n in (1, 2, 3)]
            results = await asyncio.gather(*futs)
        finally:
            await sched.stop()
        for n, out in zip((1, 2, 3), results, strict=True):
            np.testing.assert_allclose(out["OUTPUT0"], f32(n, 4, value=2.0))

    asyncio.run(run())
    assert (stats.exec_count, stats.executed_requests, stats.inference_count) == (1, 3, 6)
    runs, input_ns, infer_ns, output_ns = stats.batch_stats[6]
    assert runs == 1 and input_ns > 0 and infer_ns > 0 and output_ns > 0
    # Triton's per-request accounting: each of the 3 requests is charged the batch's times.
    assert (stats.compute_input_ns, stats.compute_ns, stats.compute_output_ns) == (
        3 * input_ns, 3 * infer_ns, 3 * output_ns
    )  # fmt: skip


# -- through the server -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cache_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    root = tmp_path_factory.mktemp("cache-repo")
    for name in ("cached", "uncached"):
        save_model(add_sub_graph(), root / name / "1" / "model.onnx")
    (root / "cached" / "config.pbtxt").write_text(CACHED_CONFIG)
    (root / "uncached" / "config.pbtxt").write_text(CACHED_CONFIG.replace("response_cache { enable: true }", ""))
    config = ServerConfig(
        model_repository=root, host="127.0.0.1", http_port=0, grpc_port=0, metrics_port=0,
        intra_op_threads=1, drain_timeout_s=5, faults=Faults(), response_cache_bytes=1 << 20,
    )  # fmt: skip
    srv = ThreadedServer(config)
    yield srv.start()
    srv.stop()


def infer(client: th.InferenceServerClient, model: str, value: float, outputs: list[str] | None = None) -> np.ndarray:
    ins = [th.InferInput("INPUT0", [1, 4], "FP32"), th.InferInput("INPUT1", [1, 4], "FP32")]
    ins[0].set_data_from_numpy(f32(1, 4, value=value))
    ins[1].set_data_from_numpy(f32(1, 4))
    req_out = [th.InferRequestedOutput(n) for n in outputs] if outputs else None
    res = client.infer(model, ins, outputs=req_out)
    out = res.as_numpy((outputs or ["OUTPUT0"])[0])
    assert out is not None
    return out


def test_identical_requests_hit_and_skip_the_model(cache_server: RunningServer) -> None:
    client = th.InferenceServerClient(cache_server.http_url)
    try:
        np.testing.assert_allclose(infer(client, "cached", 5.0), f32(1, 4, value=6.0))  # miss
        np.testing.assert_allclose(infer(client, "cached", 5.0), f32(1, 4, value=6.0))  # hit
        np.testing.assert_allclose(infer(client, "cached", 7.0), f32(1, 4, value=8.0))  # other data: miss
        np.testing.assert_allclose(infer(client, "cached", 5.0, ["OUTPUT1"]), f32(1, 4, value=4.0))  # other outputs
        np.testing.assert_allclose(infer(client, "cached", 5.0), f32(1, 4, value=6.0))  # hit
        infer(client, "uncached", 5.0)
        infer(client, "uncached", 5.0)
        stat = client.get_inference_statistics("cached")["model_stats"][0]
    finally:
        client.close()
    text = scrape(cache_server)
    labels = {"model": "cached", "version": "1"}
    assert sample(text, "nv_cache_num_hits_per_model", **labels) == 2
    assert sample(text, "nv_cache_num_misses_per_model", **labels) == 3
    assert sample(text, "nv_inference_request_success", **labels) == 5  # hits are successes
    assert sample(text, "nv_inference_exec_count", **labels) == 3  # ... but never executions
    assert sample(text, "nv_inference_count", **labels) == 3
    assert "# TYPE nv_cache_hit_duration_per_model counter" in text
    assert 'nv_cache_num_hits_per_model{model="uncached"' not in text
    assert stat["inference_stats"]["cache_hit"]["count"] == 2
    assert stat["inference_stats"]["cache_miss"]["count"] == 3
    assert stat["inference_stats"]["cache_hit"]["ns"] > 0


def test_next_batch_fills_up_while_the_model_is_busy(tmp_path: Path) -> None:
    """With the only ORT thread busy, requests arriving one by one join the next batch instead
    of each waiting as its own execution (Triton forms a batch when an instance is free)."""
    import threading

    save_model(add_sub_graph(), tmp_path / "m.onnx")
    session = ModelSession("m", 1, tmp_path / "m.onnx", providers=["CPUExecutionProvider"], max_batch_size=8)
    release = threading.Event()
    batch_sizes: list[int] = []
    real_run = session.run

    def gated_run(feeds: dict[str, np.ndarray], outputs: list[str] | None = None) -> dict[str, np.ndarray]:
        batch_sizes.append(next(iter(feeds.values())).shape[0])
        if len(batch_sizes) == 1:
            assert release.wait(10)  # the first execution holds the thread until released
        return real_run(feeds, outputs)

    session.run = gated_run  # type: ignore[method-assign]
    stats = ModelStats("1")

    async def run() -> None:
        sched = Scheduler(session, stats, dynamic_batching=True, max_queue_delay_us=0)
        sched._sample_ns = 10**9  # a slow model: the running batch will not end soon
        sched.start()
        try:
            feeds = {"INPUT0": f32(1, 4), "INPUT1": f32(1, 4)}
            futs = [sched.submit(feeds, 1, None)]
            while not batch_sizes:  # the first request is running on the thread
                await asyncio.sleep(0.001)
            for _ in range(3):  # arrive one by one, several loop turns apart
                futs.append(sched.submit(feeds, 1, None))
                for _ in range(5):
                    await asyncio.sleep(0)
            release.set()
            await asyncio.gather(*futs)
        finally:
            await sched.stop()

    asyncio.run(run())
    assert batch_sizes == [1, 3]
    assert stats.exec_count == 2 and stats.inference_count == 4
