#!/usr/bin/env python
"""Runtime benchmark: modelserver against its peers on the same ONNX models and the same load.

One command (``python bench/runtime.py [--quick]``) does everything:

1. exports two models from torch (an MLP and a small CNN, single-file ONNX, dynamic batch);
2. measures raw in-process ONNX Runtime (sequential batch-1, and batch-32 throughput) -- the limit;
3. measures the load generator's own ceiling against a trivial canned-response server;
4. starts each server on 127.0.0.1 with free ports -- modelserver, Triton (python backend, from the
   ``nvidia-pytriton`` wheel) and MLServer (custom runtime) -- the peers in their own venvs under
   ``bench/.work`` (created on first use), waits for ``/v2/health/ready``, runs a closed-loop load
   (N workers, batch-1 JSON requests, back-to-back, fixed duration) at each concurrency, stops it;
5. prints a table and the modelserver/peer ratios against the goals.

Exit code: 0 when every requested contestant ran (goals missed or not); 2 when one could not be
run at all (the reason is printed). All traffic goes to 127.0.0.1; every wait is bounded.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
PEERS_DIR = Path(__file__).resolve().parent / "runtime_peers"
WORK = ROOT / "bench" / ".work"
RUN_DIR = WORK / "runtime"
HOST = "127.0.0.1"  # the only address this benchmark ever sends traffic to

MAX_BATCH = 32
CONCURRENCIES = (1, 8, 32)
TRITON_VENV = WORK / "venv-triton"
MLSERVER_VENV = WORK / "venv-mlserver"
TRITON_PIP = ["nvidia-pytriton==0.7.0", "numpy"]
# uvloop 0.22+ raises in asyncio.get_event_loop() without a running loop, which MLServer 1.7.1's
# inference-pool worker calls at start-up: pin the last one it works with.
MLSERVER_PIP = ["mlserver==1.7.1", "uvloop<0.22", "numpy"]

# Goals, modelserver relative to a peer (see bench/README.md).
GOAL_VS_TRITON = 1.5
GOAL_VS_MLSERVER = 3.0
GOAL_VS_RAW_BATCHED = 0.8
GOAL_P50_OVERHEAD_MS = 0.3


class PeerError(RuntimeError):
    """A contestant could not be run at all (install, start, readiness or every request failed)."""


# --------------------------------------------------------------------------------------------
# Pure helpers (covered by tests/bench/test_runtime_bench_smoke.py)
# --------------------------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) with linear interpolation, like numpy's default."""
    if not values:
        return float("nan")
    if not 0.0 <= q <= 100.0:
        raise ValueError(f"percentile {q} outside 0..100")
    data = sorted(values)
    pos = (len(data) - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(data) - 1)
    return data[lo] + (data[hi] - data[lo]) * (pos - lo)


@dataclass
class Result:
    """One measured point. ``samples_per_s`` = ``req_per_s`` x batch size."""

    target: str
    model: str
    concurrency: int
    batch: int
    requests: int
    errors: int
    duration_s: float
    req_per_s: float
    samples_per_s: float
    p50_ms: float
    p99_ms: float
    # Diagnostics: CPU time per request of the server's processes and of this client process, and
    # the mean executed batch (nv_inference_count / nv_inference_exec_count) where the server has it.
    server_cpu_us: float | None = None
    client_cpu_us: float | None = None
    avg_batch: float | None = None
    # Server-side mean per successful request from its Triton-style counters (microseconds):
    # whole request, time queued for a batch, ORT compute. Client p50 minus these = HTTP/JSON cost.
    server_request_us: float | None = None
    server_queue_us: float | None = None
    server_compute_us: float | None = None


def summarize(
    target: str,
    model: str,
    concurrency: int,
    batch: int,
    latencies_s: Sequence[float],
    errors: int,
    duration_s: float,
) -> Result:
    n = len(latencies_s)
    rps = n / duration_s if duration_s > 0 else 0.0
    return Result(
        target=target,
        model=model,
        concurrency=concurrency,
        batch=batch,
        requests=n,
        errors=errors,
        duration_s=round(duration_s, 3),
        req_per_s=rps,
        samples_per_s=rps * batch,
        p50_ms=percentile(latencies_s, 50) * 1e3,
        p99_ms=percentile(latencies_s, 99) * 1e3,
    )


@dataclass
class Goal:
    model: str
    name: str
    value: float | None  # None: a contestant of the ratio is missing
    target: float
    higher_is_better: bool
    detail: str = ""

    @property
    def met(self) -> bool | None:
        if self.value is None:
            return None
        return self.value >= self.target if self.higher_is_better else self.value <= self.target


def _find(results: Sequence[Result], target: str, model: str, concurrency: int, batch: int = 1) -> Result | None:
    for r in results:
        if (r.target, r.model, r.concurrency, r.batch) == (target, model, concurrency, batch):
            return r
    return None


def _ratio(num: Result | None, den: Result | None, attr: str) -> float | None:
    if num is None or den is None:
        return None
    d = getattr(den, attr)
    return getattr(num, attr) / d if d > 0 else None


def compute_goals(results: Sequence[Result], models: Sequence[str]) -> list[Goal]:
    """modelserver/peer ratios per model: throughput at c=MAX_BATCH and p50 overhead at c=1."""
    goals: list[Goal] = []
    c = MAX_BATCH
    for m in models:
        ms = _find(results, "modelserver", m, c)
        goals.append(
            Goal(
                m,
                f"req/s c={c} vs triton-python",
                _ratio(ms, _find(results, "triton", m, c), "req_per_s"),
                GOAL_VS_TRITON,
                True,
            )
        )
        goals.append(
            Goal(
                m,
                f"req/s c={c} vs mlserver",
                _ratio(ms, _find(results, "mlserver", m, c), "req_per_s"),
                GOAL_VS_MLSERVER,
                True,
            )
        )
        goals.append(
            Goal(
                m,
                f"samples/s c={c} vs raw ORT batch {MAX_BATCH}",
                _ratio(ms, _find(results, "ort-raw", m, 1, MAX_BATCH), "samples_per_s"),
                GOAL_VS_RAW_BATCHED,
                True,
            )
        )
        ms1 = _find(results, "modelserver", m, 1)
        raw1 = _find(results, "ort-raw", m, 1, 1)
        overhead = None if ms1 is None or raw1 is None else ms1.p50_ms - raw1.p50_ms
        goals.append(Goal(m, "p50 overhead c=1 over raw ORT (ms)", overhead, GOAL_P50_OVERHEAD_MS, False))
    return goals


def _opt(value: float | None, width: int, fmt: str) -> str:
    return f"{'-':>{width}}" if value is None else f"{value:>{width}{fmt}}"


def best_of(*runs: Sequence[Result]) -> list[Result]:
    """Per (target, model, concurrency, batch), the run with the higher throughput."""
    best: dict[tuple[str, str, int, int], Result] = {}
    for r in (r for run in runs for r in run):
        key = (r.target, r.model, r.concurrency, r.batch)
        if key not in best or r.samples_per_s > best[key].samples_per_s:
            best[key] = r
    return list(best.values())


def format_table(results: Sequence[Result]) -> str:
    header = (
        f"{'target':<12} {'model':<5} {'conc':>4} {'batch':>5} {'req/s':>9} {'samples/s':>10} "
        f"{'p50 ms':>8} {'p99 ms':>8} {'requests':>9} {'errors':>6}"
    )
    lines = [header, "-" * len(header)]
    for r in results:
        lines.append(
            f"{r.target:<12} {r.model:<5} {r.concurrency:>4} {r.batch:>5} {r.req_per_s:>9.1f} "
            f"{r.samples_per_s:>10.1f} {r.p50_ms:>8.3f} {r.p99_ms:>8.3f} {r.requests:>9} {r.errors:>6}"
        )
    return "\n".join(lines)


def format_diagnostics(results: Sequence[Result]) -> str:
    header = (
        f"{'target':<12} {'model':<5} {'conc':>4} {'exec batch':>10} {'srv req us':>10} {'queue us':>9} "
        f"{'compute us':>10} {'srv cpu us/req':>14} {'cli cpu us/req':>14}"
    )
    lines = [header, "-" * len(header)]
    for r in results:
        lines.append(
            f"{r.target:<12} {r.model:<5} {r.concurrency:>4} {_opt(r.avg_batch, 10, '.1f')} "
            f"{_opt(r.server_request_us, 10, '.0f')} {_opt(r.server_queue_us, 9, '.0f')} "
            f"{_opt(r.server_compute_us, 10, '.0f')} {_opt(r.server_cpu_us, 14, '.0f')} "
            f"{_opt(r.client_cpu_us, 14, '.0f')}"
        )
    return "\n".join(lines)


def prom_sum(text: str, name: str, model: str) -> float:
    """Sum of the samples of metric ``name`` with label ``model="<model>"`` in Prometheus text."""
    total = 0.0
    label = f'model="{model}"'
    for line in text.splitlines():
        if line.startswith(name) and line[len(name) : len(name) + 1] in ("{", " ") and label in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def format_goals(goals: Sequence[Goal]) -> str:
    lines = []
    for g in goals:
        op = ">=" if g.higher_is_better else "<="
        if g.value is None:
            verdict, value = "n/a (contestant missing)", "-"
        else:
            verdict, value = ("MET" if g.met else "MISSED"), f"{g.value:.3f}"
        lines.append(f"{g.model:<5} {g.name:<40} {value:>8}  goal {op} {g.target:<5}  {verdict}")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelSpec:
    name: str
    input_shape: tuple[int, ...]  # without the batch dimension
    output_dim: int


MODELS = (ModelSpec("mlp", (64,), 10), ModelSpec("cnn", (1, 28, 28), 10))


def export_models(out_dir: Path) -> dict[str, Path]:
    """Export the two models from torch to single-file ONNX with a dynamic batch dimension."""
    import torch
    from torch import nn

    torch.manual_seed(0)
    nets: dict[str, nn.Module] = {
        # Overhead-dominated: a few microseconds of compute per sample.
        "mlp": nn.Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 10)),
        # Compute-heavier (~22 M MACs per sample) with a small input, so JSON cost stays modest.
        "cnn": nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(32, 64, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(64, 64, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(64 * 7 * 7, 10),
        ),
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    for spec in MODELS:
        net = nets[spec.name].eval()
        example = torch.randn(2, *spec.input_shape)
        path = out_dir / f"{spec.name}.onnx"
        path.unlink(missing_ok=True)
        with contextlib.redirect_stdout(sys.stderr):  # the exporter chats on stdout
            torch.onnx.export(
                net,
                (example,),
                str(path),
                dynamo=True,
                external_data=False,  # one file: every server loads just model.onnx
                input_names=["input"],
                output_names=["output"],
                dynamic_shapes=({0: torch.export.Dim("batch", min=1, max=4096)},),
            )
        if (out_dir / f"{spec.name}.onnx.data").exists():
            raise RuntimeError(f"export of {spec.name} wrote external data; expected a single file")
        paths[spec.name] = path
    return paths


def ort_session(path: Path, threads: int) -> Any:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def sample_input(spec: ModelSpec, batch: int = 1) -> np.ndarray:
    rng = np.random.default_rng(42)
    return rng.random((batch, *spec.input_shape), dtype=np.float32)


def bench_raw_ort(spec: ModelSpec, path: Path, threads: int, duration: float, warmup: float) -> list[Result]:
    """The limit: in-process session.run, sequential batch-1 and back-to-back batch-MAX_BATCH."""
    sess = ort_session(path, threads)
    results = []
    for batch in (1, MAX_BATCH):
        x = sample_input(spec, batch)
        feeds = {"input": x}
        end = time.perf_counter() + warmup
        while time.perf_counter() < end:
            sess.run(None, feeds)
        lat: list[float] = []
        cpu0 = time.process_time()
        start = time.perf_counter()
        end = start + duration
        while True:
            t0 = time.perf_counter()
            if t0 >= end:
                break
            sess.run(None, feeds)
            lat.append(time.perf_counter() - t0)
        r = summarize("ort-raw", spec.name, 1, batch, lat, 0, time.perf_counter() - start)
        r.server_cpu_us = (time.process_time() - cpu0) / max(1, len(lat)) * 1e6  # per session.run
        r.avg_batch = float(batch)
        results.append(r)
    return results


# --------------------------------------------------------------------------------------------
# Load generator: closed loop, N asyncio workers over keep-alive connections, batch-1 JSON
# --------------------------------------------------------------------------------------------


BINARY_HEADER = "Inference-Header-Content-Length"


@dataclass(frozen=True)
class Payload:
    body: bytes
    headers: tuple[tuple[str, str], ...]


def infer_body(spec: ModelSpec) -> bytes:
    """A v2 JSON request (the default: MLServer has no binary-tensor REST support)."""
    x = sample_input(spec)
    req = {"inputs": [{"name": "input", "shape": list(x.shape), "datatype": "FP32", "data": x.ravel().tolist()}]}
    return json.dumps(req).encode()


def infer_payload(spec: ModelSpec, binary: bool) -> Payload:
    if not binary:
        return Payload(infer_body(spec), (("Content-Type", "application/json"),))
    # Binary-tensor extension: JSON header, then the raw little-endian FP32 bytes; binary output too.
    x = sample_input(spec)
    raw = x.astype("<f4").tobytes()
    inp = {"name": "input", "shape": list(x.shape), "datatype": "FP32", "parameters": {"binary_data_size": len(raw)}}
    out = {"name": "output", "parameters": {"binary_data": True}}
    header = json.dumps({"inputs": [inp], "outputs": [out]}).encode()
    return Payload(header + raw, (("Content-Type", "application/octet-stream"), (BINARY_HEADER, str(len(header)))))


def decode_output(payload: bytes, header_length: str | None) -> np.ndarray:
    """The first output of a v2 response, JSON or binary-tensor extension."""
    if header_length is None:
        out = json.loads(payload)["outputs"][0]
        return np.asarray(out["data"], dtype=np.float32)
    hlen = int(header_length)
    out = json.loads(payload[:hlen])["outputs"][0]
    if "data" in out:
        return np.asarray(out["data"], dtype=np.float32)
    size = int(out["parameters"]["binary_data_size"])
    return np.frombuffer(payload[hlen : hlen + size], dtype="<f4")


@dataclass
class Probe:
    """Counters read right before and right after the measured window."""

    server_cpu_s: float = 0.0
    client_cpu_s: float = 0.0
    metrics: str = ""


def session_cpu_seconds(sid: int) -> float:
    """utime+stime of every live process in session ``sid`` (the server and what it forked)."""
    ticks = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            data = stat.read_text()
        except OSError:
            continue  # exited meanwhile
        fields = data[data.rfind(")") + 2 :].split()  # after "pid (comm) "
        if int(fields[3]) == sid:  # fields: state ppid pgrp session ... utime(11) stime(12)
            ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def probe(server: Server | None) -> Probe:
    p = Probe(client_cpu_s=time.process_time())
    if server is not None and server.proc is not None:
        p.server_cpu_s = session_cpu_seconds(server.proc.pid)
        if server.metrics_port:
            with contextlib.suppress(OSError):
                url = f"http://{HOST}:{server.metrics_port}/metrics"
                with urllib.request.urlopen(url, timeout=5) as resp:
                    p.metrics = resp.read().decode()
    return p


class _HttpConnection(asyncio.Protocol):
    """A minimal keep-alive HTTP/1.1 client connection with one request in flight (closed loop).

    Why not aiohttp for the load: on this 2-core machine the client shares the CPU with the server,
    and aiohttp costs several times more CPU per request than this; every microsecond the client
    saves goes to the server under test. Handles Content-Length and chunked responses.
    """

    def __init__(self) -> None:
        self.buf = bytearray()
        self.transport: asyncio.Transport | None = None
        self.waiter: asyncio.Future[int] | None = None
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError("connection closed by server"))

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if self.waiter is None or self.waiter.done():
            return
        try:
            parsed = parse_http_response(self.buf)
        except ValueError as e:
            self.waiter.set_exception(e)
            return
        if parsed is not None:
            status, total = parsed
            del self.buf[:total]
            self.waiter.set_result(status)

    async def request(self, data: bytes) -> int:
        assert self.transport is not None
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(data)
        return await self.waiter


def parse_http_response(buf: bytes | bytearray) -> tuple[int, int] | None:
    """(status, bytes consumed) of the first complete HTTP/1.1 response in ``buf``; None if partial."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return None
    lines = bytes(buf[:end]).split(b"\r\n")
    parts = lines[0].split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/"):
        raise ValueError(f"bad status line {lines[0][:80]!r}")
    status = int(parts[1])
    length: int | None = None
    chunked = False
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value.strip())
        elif name == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
    pos = end + 4
    if not chunked:
        if length is None:
            raise ValueError("response without Content-Length or chunked encoding")
        return (status, pos + length) if len(buf) >= pos + length else None
    while True:  # chunks: "<hex size>[;ext]\r\n<data>\r\n" ... "0\r\n\r\n" (no trailers expected)
        nl = buf.find(b"\r\n", pos)
        if nl < 0:
            return None
        size = int(bytes(buf[pos:nl]).split(b";")[0], 16)
        pos = nl + 2 + size + 2
        if len(buf) < pos:
            return None
        if size == 0:
            return status, pos


def http_post_bytes(url: str, payload: Payload) -> tuple[str, int, bytes]:
    """(host, port, the full request bytes) for POSTing ``payload`` to ``url`` on a keep-alive connection."""
    parsed = urllib.parse.urlsplit(url)
    host, port = parsed.hostname or HOST, parsed.port or 80
    extra = "".join(f"{k}: {v}\r\n" for k, v in payload.headers)
    head = f"POST {parsed.path} HTTP/1.1\r\nHost: {host}:{port}\r\n{extra}Content-Length: {len(payload.body)}\r\n\r\n"
    return host, port, head.encode() + payload.body


async def _load(
    url: str, payload: Payload, concurrency: int, duration: float, warmup: float, server: Server | None, client: str
) -> tuple[list[float], int, float, Probe, Probe]:
    import aiohttp

    lat: list[float] = []
    errors = 0
    loop = asyncio.get_running_loop()
    host, port, raw_request = http_post_bytes(url, payload)
    headers = dict(payload.headers)
    conns: list[_HttpConnection] = []
    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=concurrency), timeout=aiohttp.ClientTimeout(total=30)
    )

    async def send_aiohttp(_slot: list[_HttpConnection | None]) -> bool:
        async with session.post(url, data=payload.body, headers=headers) as resp:
            await resp.read()
            return resp.status == 200

    async def send_raw(slot: list[_HttpConnection | None]) -> bool:
        conn = slot[0]
        if conn is None or conn.closed:
            _, conn = await loop.create_connection(_HttpConnection, host, port)
            conns.append(conn)
            slot[0] = conn
        return await conn.request(raw_request) == 200

    send = send_raw if client == "raw" else send_aiohttp

    async def worker(stop_at: float, record: bool, slot: list[_HttpConnection | None]) -> None:
        nonlocal errors
        while True:
            t0 = time.perf_counter()
            if t0 >= stop_at:
                return
            try:
                ok = await send(slot)
            except (OSError, ValueError, aiohttp.ClientError):  # OSError covers timeouts and resets
                ok = False
                slot[0] = None
            t1 = time.perf_counter()
            if not record:
                continue
            if ok:
                lat.append(t1 - t0)
            else:
                errors += 1
                await asyncio.sleep(0.01)  # don't spin on a failing server

    # One connection per worker, kept across warm-up and measurement.
    slots: list[list[_HttpConnection | None]] = [[None] for _ in range(concurrency)]
    try:
        if warmup > 0:
            stop = time.perf_counter() + warmup
            with contextlib.suppress(TimeoutError):  # a hung server shows up in the measured phase
                await asyncio.wait_for(asyncio.gather(*(worker(stop, False, sl) for sl in slots)), warmup + 60)
        before = probe(server)  # blocking, but nothing is in flight between the two phases
        start = time.perf_counter()
        stop = start + duration
        try:
            # Bounded: requests that never complete are cut off 60 s after the end and count as errors.
            await asyncio.wait_for(asyncio.gather(*(worker(stop, True, sl) for sl in slots)), duration + 60)
        except TimeoutError:
            errors += concurrency
        elapsed = time.perf_counter() - start
        after = probe(server)
    finally:
        for c in conns:
            if c.transport is not None:
                c.transport.close()
        await session.close()
    return lat, errors, elapsed, before, after


def run_load(
    target: str,
    spec: ModelSpec,
    url: str,
    payload: Payload,
    concurrency: int,
    duration: float,
    warmup: float,
    server: Server | None = None,
    client: str = "raw",
) -> Result:
    lat, errors, elapsed, before, after = asyncio.run(
        _load(url, payload, concurrency, duration, warmup, server, client)
    )
    r = summarize(target, spec.name, concurrency, 1, lat, errors, elapsed)
    n = max(1, len(lat) + errors)
    r.client_cpu_us = (after.client_cpu_s - before.client_cpu_s) / n * 1e6
    if server is not None:
        r.server_cpu_us = (after.server_cpu_s - before.server_cpu_s) / n * 1e6

        def delta(name: str) -> float:
            return prom_sum(after.metrics, name, spec.name) - prom_sum(before.metrics, name, spec.name)

        execs, ok = delta("nv_inference_exec_count"), delta("nv_inference_request_success")
        r.avg_batch = delta("nv_inference_count") / execs if execs > 0 else None
        if ok > 0:
            r.server_request_us = delta("nv_inference_request_duration_us") / ok
            r.server_queue_us = delta("nv_inference_queue_duration_us") / ok
            r.server_compute_us = delta("nv_inference_compute_infer_duration_us") / ok
    return r


async def _fetch(method: str, url: str, payload: Payload | None = None) -> tuple[int, bytes, str | None]:
    import aiohttp

    body, headers = (None, {}) if payload is None else (payload.body, dict(payload.headers))
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as s,
        s.request(method, url, data=body, headers=headers) as resp,
    ):
        return resp.status, await resp.read(), resp.headers.get(BINARY_HEADER)


def fetch(method: str, url: str, payload: Payload | None = None) -> tuple[int, bytes, str | None]:
    try:
        return asyncio.run(_fetch(method, url, payload))
    except (TimeoutError, OSError) as e:
        return 0, str(e).encode(), None
    except Exception as e:  # aiohttp's errors, without importing it at module level
        return 0, repr(e).encode(), None


def check_output(target: str, spec: ModelSpec, url: str, request: Payload, expected: np.ndarray) -> None:
    """One request before the load: the server must return the same numbers as raw ORT."""
    status, payload, header_length = fetch("POST", url, request)
    if status != 200:
        raise PeerError(f"{target}: POST {url} -> {status}: {payload[:300]!r}")
    got = decode_output(payload, header_length).reshape(expected.shape)
    if not np.allclose(got, expected, rtol=1e-4, atol=1e-5):
        raise PeerError(
            f"{target}: {spec.name} output differs from raw ORT: {got.ravel()[:4]} vs {expected.ravel()[:4]}"
        )


# --------------------------------------------------------------------------------------------
# Processes, ports, venvs
# --------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def log_tail(path: Path, n: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return "(no log)"


@dataclass
class Server:
    name: str
    cmd: list[str]
    http_port: int
    log: Path
    metrics_port: int | None = None
    env: dict[str, str] = field(default_factory=dict)
    cwd: Path | None = None
    proc: subprocess.Popen[bytes] | None = None

    @property
    def base(self) -> str:
        return f"http://{HOST}:{self.http_port}"

    def start(self) -> None:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, **self.env}
        with self.log.open("wb") as logf:
            # Own session so stop() can signal the server and every process it forked.
            self.proc = subprocess.Popen(
                self.cmd, stdout=logf, stderr=subprocess.STDOUT, env=env, cwd=self.cwd, start_new_session=True
            )

    def wait_ready(self, models: Sequence[str], timeout: float) -> float:
        """Poll /v2/health/ready and each model's ready endpoint; returns seconds to ready."""
        assert self.proc is not None
        t0 = time.monotonic()
        deadline = t0 + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise PeerError(
                    f"{self.name} exited with {self.proc.returncode} before ready; log {self.log}:\n"
                    f"{log_tail(self.log)}"
                )
            urls = [f"{self.base}/v2/health/ready"] + [f"{self.base}/v2/models/{m}/ready" for m in models]
            if all(fetch("GET", u)[0] == 200 for u in urls):
                return time.monotonic() - t0
            time.sleep(0.25)
        raise PeerError(f"{self.name} not ready after {timeout:.0f}s; log {self.log}:\n{log_tail(self.log)}")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        # Workers of the group that outlive the leader (MLServer's pool, Triton's stubs).
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)


@contextlib.contextmanager
def running(server: Server, models: Sequence[str], timeout: float) -> Iterator[Server]:
    server.start()
    try:
        ready_s = server.wait_ready(models, timeout)
        print(f"  {server.name} ready after {ready_s:.1f}s (log {server.log.relative_to(ROOT)})", flush=True)
        yield server
    finally:
        server.stop()


def find_python311() -> str:
    if sys.version_info[:2] == (3, 11):
        return sys.executable
    exe = shutil.which("python3.11")
    if exe is None:
        raise PeerError("python3.11 not found (needed for the peer venvs)")
    return exe


def ensure_venv(path: Path, packages: list[str], label: str) -> Path:
    """Create ``path`` with ``packages`` unless a previous run already did (marker file)."""
    marker = path / ".bench-installed"
    want = " ".join(packages)
    if marker.exists() and marker.read_text() == want:
        return path / "bin" / "python"
    print(
        f"  creating {label} venv {path.relative_to(ROOT)} (first run; may take minutes): pip install {want}",
        flush=True,
    )
    py = find_python311()
    if not (path / "bin" / "python").exists():
        subprocess.run([py, "-m", "venv", str(path)], check=True, timeout=300)
    log = path.parent / f"{path.name}-pip.log"
    with log.open("wb") as logf:
        proc = subprocess.run(
            [str(path / "bin" / "python"), "-m", "pip", "install", "--disable-pip-version-check", *packages],
            stdout=logf,
            stderr=subprocess.STDOUT,
            timeout=1800,
        )
    if proc.returncode != 0:
        raise PeerError(f"pip install for {label} failed (exit {proc.returncode}); log {log}:\n{log_tail(log)}")
    marker.write_text(want)
    return path / "bin" / "python"


def pip_version(python: Path, dist: str) -> str:
    code = f"import importlib.metadata as m; print(m.version({dist!r}))"
    proc = subprocess.run([str(python), "-c", code], capture_output=True, text=True, timeout=60)
    return proc.stdout.strip() or "?"


def ort_pin() -> str:
    import onnxruntime

    return f"onnxruntime=={onnxruntime.__version__}"  # same ORT build in every venv


# --------------------------------------------------------------------------------------------
# Contestants
# --------------------------------------------------------------------------------------------


def write_repo(root: Path, paths: dict[str, Path]) -> None:
    shutil.rmtree(root, ignore_errors=True)
    for spec in MODELS:
        (root / spec.name / "1").mkdir(parents=True)
        shutil.copy(paths[spec.name], root / spec.name / "1" / "model.onnx")


def dims(shape: Sequence[int]) -> str:
    return "[ " + ", ".join(str(d) for d in shape) + " ]"


def modelserver_workers(requested: int = 0) -> int:
    """``--workers`` for modelserver: as asked, else the machine's usable cores (what a container with
    that CPU limit gets by default)."""
    return requested or len(os.sched_getaffinity(0))


def modelserver_server(paths: dict[str, Path], queue_delay_us: int, threads: int, workers: int = 0) -> Server:
    repo = RUN_DIR / "repos" / "modelserver"
    write_repo(repo, paths)
    for spec in MODELS:
        (repo / spec.name / "config.pbtxt").write_text(
            f'name: "{spec.name}"\nplatform: "onnxruntime_onnx"\nmax_batch_size: {MAX_BATCH}\n'
            f"dynamic_batching {{ max_queue_delay_microseconds: {queue_delay_us} }}\n"
        )
    exe = Path(sys.executable).with_name("modelserver")
    base = [str(exe)] if exe.exists() else [sys.executable, "-m", "modelserver.cli"]
    http, grpc, metrics = free_port(), free_port(), free_port()
    cmd = [
        *base,
        "serve",
        "--model-repository",
        str(repo),
        "--host",
        HOST,
        "--http-port",
        str(http),
        "--grpc-port",
        str(grpc),
        "--metrics-port",
        str(metrics),
        "--max-batch-size",
        str(MAX_BATCH),
        "--max-queue-delay-us",
        str(queue_delay_us),
    ]
    env = {"OMP_NUM_THREADS": str(threads), "PYTHONPATH": str(ROOT / "runtime-image")}
    help_text = subprocess.run(
        [*base, "serve", "--help"], capture_output=True, text=True, timeout=60, env={**os.environ, **env}
    )
    if help_text.returncode != 0:
        raise PeerError(f"modelserver serve --help failed: {help_text.stderr.strip()[-500:]}")
    # Same ORT thread limit as the peers, if this modelserver version has a flag for it.
    for flag in ("--intra-op-threads", "--intra-op-num-threads", "--ort-threads"):
        if flag in help_text.stdout:
            cmd += [flag, str(threads)]
            break
    if "--instances" in help_text.stdout:
        cmd += ["--instances", "1"]  # one ORT session per model and process, like the peers' single instance
    if "--workers" in help_text.stdout:
        cmd += ["--workers", str(modelserver_workers(workers))]
    return Server("modelserver", cmd, http, RUN_DIR / "logs" / "modelserver.log", metrics, env=env)


def triton_dist(venv_dir: Path) -> tuple[Path, Path, Path]:
    """(tritonserver binary, backend dir, nvidia_pytriton.libs) from the wheel, with the 3.11 stub.

    pytriton ships the python-backend stub per Python version outside ``backends/python``; it copies
    one in at run time, and so do we (into bench/.work, leaving the venv untouched).
    """
    site = venv_dir / "lib" / "python3.11" / "site-packages"
    src = site / "pytriton" / "tritonserver"
    dist = WORK / "triton-dist"
    if not (dist / "backends" / "python" / "triton_python_backend_stub").exists():
        shutil.rmtree(dist, ignore_errors=True)
        shutil.copytree(src, dist, ignore=shutil.ignore_patterns("python_backend_stubs"), symlinks=True)
        stub = src / "python_backend_stubs" / "3.11" / "triton_python_backend_stub"
        shutil.copy2(stub, dist / "backends" / "python" / "triton_python_backend_stub")
    return dist / "bin" / "tritonserver", dist / "backends", site / "nvidia_pytriton.libs"


def triton_server(paths: dict[str, Path], queue_delay_us: int, threads: int) -> Server:
    python = ensure_venv(TRITON_VENV, [*TRITON_PIP, ort_pin()], "Triton")
    binary, backends, libs = triton_dist(TRITON_VENV)
    repo = RUN_DIR / "repos" / "triton"
    write_repo(repo, paths)
    for spec in MODELS:
        shutil.copy(PEERS_DIR / "triton_model.py", repo / spec.name / "1" / "model.py")
        (repo / spec.name / "config.pbtxt").write_text(
            f'name: "{spec.name}"\nbackend: "python"\nmax_batch_size: {MAX_BATCH}\n'
            f'input [ {{ name: "input" data_type: TYPE_FP32 dims: {dims(spec.input_shape)} }} ]\n'
            f'output [ {{ name: "output" data_type: TYPE_FP32 dims: [ {spec.output_dim} ] }} ]\n'
            f"dynamic_batching {{ max_queue_delay_microseconds: {queue_delay_us} }}\n"
            "instance_group [ { count: 1 kind: KIND_CPU } ]\n"
            f'parameters {{ key: "intra_op_num_threads" value {{ string_value: "{threads}" }} }}\n'
        )
    base_prefix = subprocess.run(
        [str(python), "-c", "import sys; print(sys.base_prefix)"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.strip()
    http, grpc, metrics = free_port(), free_port(), free_port()
    cmd = [
        str(binary),
        "--model-repository",
        str(repo),
        "--backend-directory",
        str(backends),
        "--http-address",
        HOST,
        "--http-port",
        str(http),
        "--grpc-address",
        HOST,
        "--grpc-port",
        str(grpc),
        "--metrics-address",
        HOST,
        "--metrics-port",
        str(metrics),
        "--exit-on-error=true",
        "--strict-readiness=true",
        "--log-verbose=0",
    ]
    env = {
        # The stub embeds libpython3.11 (the venv's base prefix lib); tritonserver needs the wheel's libs.
        "LD_LIBRARY_PATH": f"{libs}:{base_prefix}/lib",
        # The stub's embedded interpreter must import onnxruntime/numpy from the Triton venv.
        "PATH": f"{TRITON_VENV / 'bin'}:{os.environ.get('PATH', '')}",
        "PYTHONPATH": str(TRITON_VENV / "lib" / "python3.11" / "site-packages"),
        "OMP_NUM_THREADS": str(threads),
    }
    return Server("triton", cmd, http, RUN_DIR / "logs" / "triton.log", metrics, env=env)


def mlserver_server(paths: dict[str, Path], queue_delay_us: int, threads: int, workers: int) -> Server:
    python = ensure_venv(MLSERVER_VENV, [*MLSERVER_PIP, ort_pin()], "MLServer")
    repo = RUN_DIR / "repos" / "mlserver"
    shutil.rmtree(repo, ignore_errors=True)
    http, grpc, metrics = free_port(), free_port(), free_port()
    for spec in MODELS:
        d = repo / spec.name
        d.mkdir(parents=True)
        shutil.copy(paths[spec.name], d / "model.onnx")
        shutil.copy(PEERS_DIR / "mlserver_runtime.py", d / "bench_ort_runtime.py")
        (d / "model-settings.json").write_text(
            json.dumps(
                {
                    "name": spec.name,
                    "implementation": "bench_ort_runtime.OrtRuntime",
                    "max_batch_size": MAX_BATCH,  # adaptive batching
                    "max_batch_time": queue_delay_us / 1e6,
                    "parameters": {"uri": "./model.onnx", "version": "1"},
                },
                indent=1,
            )
        )
    (repo / "settings.json").write_text(
        json.dumps(
            {
                "host": HOST,
                "http_port": http,
                "grpc_port": grpc,
                "metrics_port": metrics,
                "parallel_workers": workers,
                "debug": False,
                "load_models_at_startup": True,
            },
            indent=1,
        )
    )
    mlserver_bin = python.with_name("mlserver")
    env = {
        "BENCH_ORT_INTRA_OP_THREADS": str(threads),
        "OMP_NUM_THREADS": str(threads),
        "PYTHONPATH": "",
    }  # keep the project's venv out of MLServer's
    return Server(
        "mlserver",
        [str(mlserver_bin), "start", str(repo)],
        http,
        RUN_DIR / "logs" / "mlserver.log",
        env=env,
        cwd=repo,
    )


def trivial_server() -> Server:
    port = free_port()
    return Server(
        "trivial",
        [sys.executable, str(PEERS_DIR / "trivial_server.py"), str(port)],
        port,
        RUN_DIR / "logs" / "trivial.log",
    )


# --------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------


def start_contestants(
    stack: contextlib.ExitStack,
    contestants: Sequence[tuple[str, Callable[[], Server], float]],
    payloads: dict[str, Payload],
    expected: dict[str, np.ndarray],
    failures: dict[str, str],
) -> list[Server]:
    """Start every server (each stays up until ``stack`` closes) and check its answers."""
    live: list[Server] = []
    for name, make, ready_timeout in contestants:
        print(f"{name} ...", flush=True)
        try:
            server = make()
            stack.enter_context(running(server, [s.name for s in MODELS], ready_timeout))
            for spec in MODELS:
                url = f"{server.base}/v2/models/{spec.name}/infer"
                check_output(server.name, spec, url, payloads[spec.name], expected[spec.name])
            live.append(server)
        except (PeerError, subprocess.SubprocessError, OSError) as e:
            failures[name] = str(e)
            print(f"  {name} FAILED: {e}", flush=True)
    return live


def measure_interleaved(
    live: list[Server],
    payloads: dict[str, Payload],
    args: argparse.Namespace,
    failures: dict[str, str],
    raw_at_peak: Callable[[ModelSpec], None] | None = None,
) -> list[Result]:
    """Each (model, concurrency) point on every server back to back, so that drifts in the shared
    machine's background load hit all contestants alike instead of whichever ran last.
    ``raw_at_peak(spec)`` runs just before the c=MAX_BATCH points: raw ORT sampled next to them."""
    order = {server.name: i for i, server in enumerate(live)}
    results: list[Result] = []
    for spec in MODELS:
        for c in CONCURRENCIES:
            if c == MAX_BATCH and raw_at_peak is not None:
                raw_at_peak(spec)
            for server in list(live):
                url = f"{server.base}/v2/models/{spec.name}/infer"
                r = run_load(
                    server.name, spec, url, payloads[spec.name], c, args.duration, args.warmup, server, args.client
                )
                print(
                    f"  {server.name:<12} {spec.name:<4} c={c:<3} {r.req_per_s:9.1f} req/s"
                    f"  p50 {r.p50_ms:7.3f} ms  p99 {r.p99_ms:7.3f} ms  errors {r.errors}",
                    flush=True,
                )
                if r.requests == 0:
                    failures[server.name] = (
                        f"{server.name}: no successful request for {spec.name} at c={c}; log "
                        f"{server.log}:\n{log_tail(server.log)}"
                    )
                    live.remove(server)  # don't measure a dead server further
                    continue
                results.append(r)
    results.sort(key=lambda r: (order.get(r.target, 99), r.model != "mlp", r.concurrency))
    return results


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="short durations for a smoke run")
    p.add_argument("--duration", type=float, help="seconds of measured load per point (default 10, quick 2)")
    p.add_argument("--warmup", type=float, help="seconds of unmeasured load before each point (default 2, quick 0.5)")
    p.add_argument("--queue-delay-us", type=int, default=200, help="dynamic/adaptive batching delay, all servers")
    p.add_argument("--threads", type=int, default=1, help="ORT intra-op threads per session, all contestants")
    p.add_argument(
        "--modelserver-workers", type=int, default=0,
        help="modelserver --workers (0: the machine's usable cores, as a container with that CPU limit defaults to)",
    )  # fmt: skip
    p.add_argument(
        "--mlserver-workers",
        type=int,
        default=1,
        help="MLServer parallel_workers (1 = its default: inference in one worker process)",
    )
    p.add_argument(
        "--client",
        choices=("raw", "aiohttp"),
        default="raw",
        help="load generator HTTP client: minimal asyncio protocol (default, least CPU) or aiohttp",
    )
    p.add_argument(
        "--binary",
        action="store_true",
        help="binary-tensor extension instead of JSON (MLServer lacks it: implies --skip-mlserver)",
    )
    p.add_argument("--skip-triton", action="store_true")
    p.add_argument("--skip-mlserver", action="store_true")
    p.add_argument("--skip-modelserver", action="store_true", help="measure only the peers")
    p.add_argument("--json", dest="json_out", type=Path, help="also write all results to this file")
    args = p.parse_args(argv)
    if args.binary:
        args.skip_mlserver = True
    if args.duration is None:
        args.duration = 2.0 if args.quick else 10.0
    if args.warmup is None:
        args.warmup = 0.5 if args.quick else 2.0
    if args.duration <= 0 or args.duration > 600:
        p.error("--duration must be in (0, 600]")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    import onnxruntime

    RUN_DIR.mkdir(parents=True, exist_ok=True)
    t_start = time.monotonic()
    failures: dict[str, str] = {}
    results: list[Result] = []
    ceiling: list[Result] = []
    versions: dict[str, str] = {"onnxruntime (main venv)": onnxruntime.__version__}
    settings = {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "ort_intra_op_num_threads": args.threads,
        "ort_inter_op_num_threads": 1,
        "ort_execution_mode": "ORT_SEQUENTIAL",
        "max_batch_size": MAX_BATCH,
        "queue_delay_us": args.queue_delay_us,
        "mlserver_parallel_workers": args.mlserver_workers,
        "triton_instance_group": "1 x KIND_CPU (python backend)",
        "modelserver_instances": 1,
        "modelserver_workers": modelserver_workers(args.modelserver_workers),
        "request": f"batch-1, v2 REST {'binary' if args.binary else 'JSON'} tensors, keep-alive, closed loop",
        "client": f"{args.client}, 1 process, 1 connection per worker",
        "order": "all servers up; each point measured on every server back to back",
        "raw_ort": "best of 3 runs (start, next to the c=32 points, end)",
        "duration_s": args.duration,
        "warmup_s": args.warmup,
        "load_avg_at_start": os.getloadavg(),
    }
    print("runtime benchmark settings: " + json.dumps(settings), flush=True)

    print("exporting models from torch ...", flush=True)
    paths = export_models(RUN_DIR / "models")
    payloads = {s.name: infer_payload(s, args.binary) for s in MODELS}
    expected = {
        s.name: ort_session(paths[s.name], args.threads).run(None, {"input": sample_input(s)})[0] for s in MODELS
    }

    print("raw ONNX Runtime in-process (first of 3 runs) ...", flush=True)
    raw_first = [
        r for spec in MODELS for r in bench_raw_ort(spec, paths[spec.name], args.threads, args.duration, args.warmup)
    ]

    print(f"client ceiling ({args.client} load generator vs a trivial canned-response server) ...", flush=True)
    try:
        with running(trivial_server(), [], 15) as triv:
            for spec in MODELS:
                for c in (1, MAX_BATCH):
                    url = f"{triv.base}/v2/models/{spec.name}/infer"
                    r = run_load(
                        "client-ceil", spec, url, payloads[spec.name], c, args.duration, args.warmup, client=args.client
                    )
                    ceiling.append(r)
                    print(
                        f"  client ceiling {spec.name} payload c={c}: {r.req_per_s:.0f} req/s, p50 {r.p50_ms:.3f} ms,"
                        f" client cpu {r.client_cpu_us:.0f} us/req",
                        flush=True,
                    )
    except PeerError as e:
        failures["client-ceiling"] = str(e)

    contestants: list[tuple[str, Callable[[], Server], float]] = []
    if not args.skip_modelserver:
        contestants.append(
            (
                "modelserver",
                lambda: modelserver_server(paths, args.queue_delay_us, args.threads, args.modelserver_workers),
                90,
            )
        )
    if not args.skip_triton:
        contestants.append(("triton", lambda: triton_server(paths, args.queue_delay_us, args.threads), 180))
    if not args.skip_mlserver:
        contestants.append(
            (
                "mlserver",
                lambda: mlserver_server(paths, args.queue_delay_us, args.threads, args.mlserver_workers),
                180,
            )
        )
    with contextlib.ExitStack() as stack:
        live = start_contestants(stack, contestants, payloads, expected, failures)
        print(f"measuring {', '.join(s.name for s in live)} interleaved, point by point ...", flush=True)
        # The limit is the best the machine allows: raw ORT is sampled three times (start, next to the
        # c=32 points, end) and the fastest run of each point kept, so a burst of background load
        # during one sample doesn't flatter the servers.
        raw_mid: list[Result] = []

        def raw_at_peak(spec: ModelSpec) -> None:
            print(f"  ort-raw      {spec.name:<4} (second of 3 runs)", flush=True)
            raw_mid.extend(bench_raw_ort(spec, paths[spec.name], args.threads, args.duration, args.warmup))

        results += measure_interleaved(live, payloads, args, failures, raw_at_peak)

    print("raw ONNX Runtime in-process (third of 3 runs) ...", flush=True)
    raw_last = [
        r for spec in MODELS for r in bench_raw_ort(spec, paths[spec.name], args.threads, args.duration, args.warmup)
    ]
    results = best_of(raw_first, raw_mid, raw_last) + results

    for label, py in (
        ("Triton venv", TRITON_VENV / "bin" / "python"),
        ("MLServer venv", MLSERVER_VENV / "bin" / "python"),
    ):
        if py.exists():
            for dist in ("nvidia-pytriton" if "Triton" in label else "mlserver", "onnxruntime"):
                versions[f"{dist} ({label})"] = pip_version(py, dist)
    triton_log = RUN_DIR / "logs" / "triton.log"
    if triton_log.exists():
        for line in triton_log.read_text(errors="replace").splitlines():
            if "server_version" in line:
                versions["tritonserver"] = line.split("|")[-2].strip() if "|" in line else line.strip()
                break

    goals = compute_goals(results, [s.name for s in MODELS])
    settings["load_avg_at_end"] = os.getloadavg()
    print()
    print("=" * 100)
    print(
        "Runtime benchmark (noisy if other work shares this machine: load avg start "
        f"{settings['load_avg_at_start']}, end {settings['load_avg_at_end']})"
    )
    print("settings: " + ", ".join(f"{k}={v}" for k, v in settings.items() if not k.startswith("load_avg")))
    print("versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()))
    print()
    print(format_table(results))
    print()
    print(
        "diagnostics (per request; exec batch and srv/queue/compute us from the server's nv_inference_* counters;\n"
        "Triton and modelserver both add a batch's compute time to every request in it):"
    )
    print(format_diagnostics(results))
    print()
    print("client ceiling (load generator + trivial canned-response server, same machine):")
    print(format_table(ceiling))
    print(
        "client cpu us/req vs trivial server: "
        + ", ".join(f"{r.model} c={r.concurrency} {r.client_cpu_us:.0f}" for r in ceiling)
    )
    for r in results:
        ceil = _find(ceiling, "client-ceil", r.model, MAX_BATCH)
        if r.target != "ort-raw" and ceil is not None and r.req_per_s > 0.5 * ceil.req_per_s:
            print(
                f"  note: {r.target} {r.model} c={r.concurrency} reached "
                f"{r.req_per_s / ceil.req_per_s:.0%} of the client ceiling; the client may limit it"
            )
    print()
    print("modelserver / peer:")
    print(format_goals(goals))
    for name, why in failures.items():
        print(f"\nFAILED to run {name}:\n{why}")
    print(f"\ntotal {time.monotonic() - t_start:.0f}s")
    if args.json_out:
        args.json_out.write_text(
            json.dumps(
                {
                    "settings": settings,
                    "versions": versions,
                    "results": [asdict(r) for r in results],
                    "client_ceiling": [asdict(r) for r in ceiling],
                    "goals": [{**asdict(g), "met": g.met} for g in goals],
                    "failures": failures,
                },
                indent=1,
            )
        )
    return 2 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
