#!/usr/bin/env python
"""modelserver vs Triton measured with two independent clients: Debian's ``wrk`` and bench/runtime.py's own.

``python bench/runtime_wrk.py [--duration S] [--rounds N]`` exports the same two models as
bench/runtime.py (MLP, small CNN), starts modelserver and the real ``tritonserver`` (from the
``nvidia-pytriton`` wheel, python backend running the same ORT session; see bench/README.md), checks
both answers against raw ORT, then for each model and each concurrency c = 1, 8, 32 runs, back to back:
wrk against modelserver, wrk against Triton, the raw client against modelserver, the raw client against
Triton (the order of the two servers alternates per round, so drifts hit both alike). Batch-1 OIP JSON
requests, closed loop, keep-alive connections. It prints req/s and p50/p99 per point and the
modelserver/Triton req/s ratio per client (median over rounds) against the 1.5x goal.

wrk posts the bytes of ``bench/wrk/oip_infer.lua``'s body file: the same JSON the raw client sends.
Exit code 0 when both servers ran (goals met or not), 2 when one could not run or wrk is missing.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import re
import shutil
import statistics
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

HERE = Path(__file__).resolve().parent
LUA = HERE / "wrk" / "oip_infer.lua"
GOAL = 1.5


def _runtime() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_runtime", HERE / "runtime.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules["bench_runtime"] = mod
    spec.loader.exec_module(mod)
    return mod


@dataclass
class Point:
    client: str  # wrk | raw
    target: str
    model: str
    concurrency: int
    req_per_s: float
    p50_ms: float
    p99_ms: float
    errors: int


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


def _ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text.strip())
    if m is None:
        raise ValueError(f"unexpected wrk latency {text!r}")
    return float(m.group(1)) * _UNITS[m.group(2)]


def parse_wrk(output: str) -> tuple[float, float, float, int]:
    """(req/s, p50 ms, p99 ms, errors) from ``wrk --latency`` output; errors = non-2xx + socket errors."""
    rps = re.search(r"^Requests/sec:\s+([\d.]+)", output, re.M)
    p50 = re.search(r"^\s+50%\s+(\S+)", output, re.M)
    p99 = re.search(r"^\s+99%\s+(\S+)", output, re.M)
    if rps is None or p50 is None or p99 is None:
        raise ValueError(f"cannot parse wrk output:\n{output}")
    errors = 0
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    if non2xx:
        errors += int(non2xx.group(1))
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    if sock:
        errors += sum(int(g) for g in sock.groups())
    return float(rps.group(1)), _ms(p50.group(1)), _ms(p99.group(1)), errors


def run_wrk(url: str, body_file: Path, concurrency: int, duration: float) -> tuple[float, float, float, int]:
    threads = min(concurrency, 2)  # 2 cores: more client threads only take CPU from the server
    cmd = ["wrk", f"-t{threads}", f"-c{concurrency}", f"-d{max(1, round(duration))}s", "--latency",
           "-s", str(LUA), url, "--", str(body_file)]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60)
    if proc.returncode != 0:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {proc.stderr.strip()}")
    return parse_wrk(proc.stdout)


def ratios(points: Sequence[Point], client: str, model: str, concurrency: int) -> float | None:
    def rates(target: str) -> list[float]:
        key = (client, target, model, concurrency)
        return [p.req_per_s for p in points if (p.client, p.target, p.model, p.concurrency) == key]

    ms, tr = rates("modelserver"), rates("triton")
    if not ms or not tr or statistics.median(tr) <= 0:
        return None
    return statistics.median(ms) / statistics.median(tr)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--duration", type=float, default=4.0, help="measured seconds per point (default 4)")
    p.add_argument("--warmup", type=float, default=1.0, help="unmeasured seconds before each point (default 1)")
    p.add_argument("--rounds", type=int, default=1, help="repeat every point N times, interleaved (default 1)")
    p.add_argument("--queue-delay-us", type=int, default=200)
    p.add_argument("--models", default="mlp,cnn", help="comma-separated subset of mlp,cnn")
    p.add_argument(
        "--modelserver-workers",
        type=int,
        default=0,
        help="modelserver --workers (0: the machine's usable cores, its default under that CPU limit)",
    )
    args = p.parse_args(argv)
    if shutil.which("wrk") is None:
        print("wrk is not installed (Debian package 'wrk': apt-get install wrk)", file=sys.stderr)
        return 2
    rt = _runtime()
    specs = [s for s in rt.MODELS if s.name in args.models.split(",")]
    work = rt.RUN_DIR / "wrk"
    work.mkdir(parents=True, exist_ok=True)
    print("exporting models ...", flush=True)
    paths = rt.export_models(work / "models")
    bodies: dict[str, Path] = {}
    expected = {}
    for spec in specs:
        bodies[spec.name] = work / f"{spec.name}.json"
        bodies[spec.name].write_bytes(rt.infer_body(spec))
        sess = rt.ort_session(paths[spec.name], 1)
        expected[spec.name] = sess.run(None, {"input": rt.sample_input(spec)})[0]
    payloads = {s.name: rt.infer_payload(s, False) for s in specs}
    points: list[Point] = []
    with contextlib.ExitStack() as stack:
        servers = []
        for make in (
            lambda: rt.modelserver_server(paths, args.queue_delay_us, 1, args.modelserver_workers),
            lambda: rt.triton_server(paths, args.queue_delay_us, 1),
        ):
            try:
                server = make()
                stack.enter_context(rt.running(server, [s.name for s in rt.MODELS], 300))
                for spec in specs:
                    url = f"{server.base}/v2/models/{spec.name}/infer"
                    rt.check_output(server.name, spec, url, payloads[spec.name], expected[spec.name])
            except (rt.PeerError, subprocess.SubprocessError, OSError) as exc:
                print(f"could not run a server: {exc}", file=sys.stderr)
                return 2
            servers.append(server)
        print(
            f"modelserver --workers {rt.modelserver_workers(args.modelserver_workers)}; Triton: 1 model instance",
            flush=True,
        )
        print(f"load average at start: {Path('/proc/loadavg').read_text().split()[:3]}", flush=True)
        for spec in specs:
            for c in rt.CONCURRENCIES:
                for rnd in range(args.rounds):
                    order = servers if rnd % 2 == 0 else servers[::-1]
                    for client in ("wrk", "raw"):
                        for server in order:
                            url = f"{server.base}/v2/models/{spec.name}/infer"
                            if client == "wrk":
                                run_wrk(url, bodies[spec.name], c, args.warmup)  # warm-up, discarded
                                rps, p50, p99, errors = run_wrk(url, bodies[spec.name], c, args.duration)
                            else:
                                r = rt.run_load(server.name, spec, url, payloads[spec.name], c, args.duration,
                                                args.warmup, server, "raw")  # fmt: skip
                                rps, p50, p99, errors = r.req_per_s, r.p50_ms, r.p99_ms, r.errors
                            pt = Point(client, server.name, spec.name, c, rps, p50, p99, errors)
                            points.append(pt)
                            print(f"  {client:<4} {server.name:<12} {spec.name:<4} c={c:<3} {rps:9.1f} req/s  "
                                  f"p50 {p50:7.3f} ms  p99 {p99:7.3f} ms  errors {errors}", flush=True)  # fmt: skip
        print(f"load average at end: {Path('/proc/loadavg').read_text().split()[:3]}", flush=True)
    print(f"\nmodelserver / Triton req/s (median of {args.rounds} round(s)); goal >= {GOAL}x")
    print(f"{'model':<6} {'c':>3} {'wrk':>8} {'raw':>8}")
    missed = 0
    for spec in specs:
        for c in rt.CONCURRENCIES:
            cells = []
            for client in ("wrk", "raw"):
                r = ratios(points, client, spec.name, c)
                missed += r is not None and r < GOAL
                cells.append(f"{r:7.2f}x" if r is not None else "      -")
            print(f"{spec.name:<6} {c:>3} {cells[0]:>8} {cells[1]:>8}")
    print(f"{missed} point(s) below the goal" if missed else "every point meets the goal")
    return 0


if __name__ == "__main__":
    sys.exit(main())
