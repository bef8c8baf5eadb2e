"""The real server process under hostile input: the issue's 118-byte REST and 43-byte gRPC
requests, a fuzz run of 2,400 adversarial requests (shapes and sizes) with the RSS checked
against idle and liveness polled throughout, Triton's raw binary requests end to end, and a
SIGTERM while several 8 MiB responses are still being sent.
"""

from __future__ import annotations

import http.client
import json
import random
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
import tritonclient.grpc as tg
from onnx import TensorProto, helper
from tritonclient.grpc import service_pb2 as pb
from tritonclient.grpc import service_pb2_grpc as pb_grpc

from .conftest import fixed_graph, gather_graph, save_model, vi
from .test_process import stop_process

pytestmark = pytest.mark.timeout(240)

MiB = 1024 * 1024
HOST = "127.0.0.1"
MEMORY_BOUND = 16 * MiB  # --max-request-memory of the shared server


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def identity_graph(name: str, inputs: dict[str, tuple[int, list[int | str]]]) -> helper.GraphProto:
    nodes = [helper.make_node("Identity", [n], [f"{n}_OUT"]) for n in inputs]
    return helper.make_graph(
        nodes,
        name,
        [vi(n, t, s) for n, (t, s) in inputs.items()],
        [vi(f"{n}_OUT", t, s) for n, (t, s) in inputs.items()],
    )


def build_repo(root: Path) -> Path:
    save_model(identity_graph("strings", {"S": (TensorProto.STRING, ["n"])}), root / "strings" / "1" / "model.onnx")
    save_model(identity_graph("bytes1", {"S": (TensorProto.STRING, [1])}), root / "bytes1" / "1" / "model.onnx")
    save_model(identity_graph("vec", {"X": (TensorProto.FLOAT, ["n"])}), root / "vec" / "1" / "model.onnx")
    save_model(identity_graph("ints", {"I": (TensorProto.INT32, ["n"])}), root / "ints" / "1" / "model.onnx")
    save_model(
        identity_graph("pair", {"A": (TensorProto.FLOAT, ["n"]), "B": (TensorProto.FLOAT, ["n"])}),
        root / "pair" / "1" / "model.onnx",
    )
    save_model(fixed_graph(), root / "fixed" / "1" / "model.onnx")
    save_model(gather_graph(), root / "gather" / "1" / "model.onnx")
    return root


@dataclass
class Proc:
    proc: subprocess.Popen[bytes]
    http_port: int
    grpc_port: int

    def status(self) -> dict[str, int]:
        out: dict[str, int] = {}
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith(("VmRSS", "VmHWM")):
                    key, value = line.split(":")
                    out[key] = int(value.split()[0]) * 1024
        return out

    def reset_peak(self) -> None:
        with open(f"/proc/{self.proc.pid}/clear_refs", "w") as f:
            f.write("5")  # resets VmHWM to the current RSS


def spawn(repo: Path, *extra: str) -> Proc:
    http_port, grpc_port = free_port(), free_port()
    cmd = [
        sys.executable, "-m", "modelserver", "serve", "--model-repository", str(repo), "--host", HOST,
        "--http-port", str(http_port), "--grpc-port", str(grpc_port), "--metrics-port", str(free_port()),
        "--intra-op-threads", "1", "--log-level", "warning", *extra,
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    p = Proc(proc, http_port, grpc_port)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
        try:
            c = http.client.HTTPConnection(HOST, http_port, timeout=2)
            c.request("GET", "/v2/health/ready")
            if c.getresponse().status == 200:
                c.close()
                return p
            c.close()
        except OSError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise TimeoutError("modelserver did not become ready")


def stop(p: Proc) -> None:
    stop_process(p.proc)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    repo = build_repo(tmp_path_factory.mktemp("robust"))
    p = spawn(repo, "--max-request-bytes", "8Mi", "--max-request-memory", str(MEMORY_BOUND))
    yield p
    stop(p)


class Http:
    def __init__(self, port: int) -> None:
        self.port = port
        self.conn = http.client.HTTPConnection(HOST, port, timeout=60)

    def post(self, path: str, body: bytes, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
        for attempt in (0, 1):
            try:
                self.conn.request("POST", path, body=body, headers=headers or {})
                resp = self.conn.getresponse()
                return resp.status, resp.read()
            except (ConnectionError, http.client.HTTPException):
                self.conn.close()
                self.conn = http.client.HTTPConnection(HOST, self.port, timeout=60)
                if attempt:
                    raise
        raise AssertionError("unreachable")


def binary_request(inputs: list[dict[str, Any]], blob: bytes) -> tuple[bytes, dict[str, str]]:
    header = json.dumps({"inputs": inputs}).encode()
    return header + blob, {"Inference-Header-Content-Length": str(len(header))}


# -- the requests -----------------------------------------------------------------------


def test_118_byte_rest_and_43_byte_grpc_requests_are_refused_without_memory_growth(server: Proc) -> None:
    body, headers = binary_request(
        [{"name": "S", "datatype": "BYTES", "shape": [2**28], "parameters": {"binary_data_size": 4}}], b"\0\0\0\0"
    )
    assert len(body) <= 118
    before = server.status()["VmRSS"]
    server.reset_peak()
    status, answer = Http(server.http_port).post("/v2/models/strings/infer", body, headers)
    assert status == 400 and "268435456" in json.loads(answer)["error"]
    after = server.status()
    assert after["VmHWM"] - before < 16 * MiB, after  # the peak, not just what is left

    req = pb.ModelInferRequest(model_name="strings")
    req.inputs.add(name="S", datatype="BYTES", shape=[2**28])
    req.raw_input_contents.append(b"\0\0\0\0")
    assert req.ByteSize() <= 43
    server.reset_peak()
    with grpc.insecure_channel(f"{HOST}:{server.grpc_port}") as channel, pytest.raises(grpc.RpcError) as info:
        pb_grpc.GRPCInferenceServiceStub(channel).ModelInfer(req, timeout=30)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    after = server.status()
    assert after["VmHWM"] - before < 16 * MiB and after["VmRSS"] - before < 16 * MiB, after


def test_refused_large_requests_are_freed_at_once(server: Proc) -> None:
    """A refused request must not stay pinned by a reference cycle (error -> traceback ->
    frame -> future -> error) until the cyclic GC runs: before the fix, 16 refused 8 MB
    requests left the RSS 100-150 MB up."""
    idx = np.zeros(1_000_000, np.int64)
    idx[-1] = 7  # out of the table's range: ONNX Runtime itself refuses it
    body, headers = binary_request(
        [{"name": "IDX", "datatype": "INT64", "shape": [idx.size], "parameters": {"binary_data_size": idx.nbytes}}],
        idx.tobytes(),
    )
    # 1.2 MB of empty BYTES elements: decoded in a thread, refused by the memory bound (57 B each)
    count = MEMORY_BOUND // 57 + 1
    over_bound = pb.ModelInferRequest(model_name="strings")
    over_bound.inputs.add(name="S", datatype="BYTES", shape=[count])
    over_bound.raw_input_contents.append(b"\0" * (4 * count))
    c = Http(server.http_port)
    assert c.post("/v2/models/gather/infer", body, headers)[0] == 400  # the first one may size pools
    before = server.status()["VmRSS"]
    with grpc.insecure_channel(f"{HOST}:{server.grpc_port}", options=[("grpc.max_send_message_length", -1)]) as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        for _ in range(16):
            status, answer = c.post("/v2/models/gather/infer", body, headers)
            assert status == 400 and "out of data bounds" in json.loads(answer)["error"]
            with pytest.raises(grpc.RpcError) as info:
                stub.ModelInfer(over_bound, timeout=60)
            assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "--max-request-memory" in (info.value.details() or "")
    assert server.status()["VmRSS"] - before < 40 * MiB


def test_grpc_model_ready_of_an_unknown_model_is_false(server: Proc) -> None:
    client = tg.InferenceServerClient(f"{HOST}:{server.grpc_port}")
    assert client.is_model_ready("no_such_model") is False
    assert client.is_model_ready("vec", "7") is False
    assert client.is_model_ready("vec") is True


# -- raw binary requests ------------------------------------------------------------------------


def binary_outputs(body: bytes, header_length: str) -> list[tuple[dict[str, Any], bytes]]:
    hlen = int(header_length)
    outputs, pos = [], hlen
    for out in json.loads(body[:hlen])["outputs"]:
        size = out["parameters"]["binary_data_size"]
        outputs.append((out, body[pos : pos + size]))
        pos += size
    assert pos == len(body)
    return outputs


def test_raw_binary_requests_end_to_end(server: Proc) -> None:
    """What Triton 2.51 answered to the same requests (checked against the real tritonserver):
    200 with binary outputs; a size that is not whole elements, a BYTES input not of shape [1],
    a model with two inputs are 400 with the reason."""
    raw = {"Inference-Header-Content-Length": "0", "Content-Type": "application/octet-stream"}
    values = np.array([1.5, -2.0, 3.25], np.float32)
    for model, body, name, shape, data in [
        ("vec", values.tobytes(), "X_OUT", [3], values.tobytes()),
        ("vec", b"", "X_OUT", [0], b""),
        ("bytes1", b"427", "S_OUT", [1], struct.pack("<I", 3) + b"427"),
        ("bytes1", b"", "S_OUT", [1], struct.pack("<I", 0)),
    ]:
        conn = http.client.HTTPConnection(HOST, server.http_port, timeout=30)
        conn.request("POST", f"/v2/models/{model}/infer", body=body, headers=raw)
        resp = conn.getresponse()
        payload = resp.read()
        assert resp.status == 200, payload
        [(out, blob)] = binary_outputs(payload, resp.getheader("Inference-Header-Content-Length") or "")
        assert (out["name"], out["shape"], blob) == (name, shape, data)
        conn.close()
    c = Http(server.http_port)
    for model, body, reason in [
        ("vec", values.tobytes()[:7], "do not make whole elements"),
        ("pair", values.tobytes(), "exactly 1 input"),
        ("strings", b"427", "must have shape [1]"),
    ]:
        status, answer = c.post(f"/v2/models/{model}/infer", body, raw)
        assert status == 400 and reason in json.loads(answer)["error"], answer


# -- fuzz ---------------------------------------------------------------------------------------

REST_REQUESTS = 1_800
GRPC_REQUESTS = 600
DATATYPES = ["BOOL", "INT8", "INT32", "INT64", "UINT8", "FP16", "FP32", "FP64", "BYTES"]


def huge_dim(rng: random.Random) -> int:
    return rng.choice([2**27, 2**28, 2**31 - 1, 2**40, 10**12, rng.randrange(1, 2**34)])


def rest_case(rng: random.Random, kind: int | None = None) -> tuple[str, bytes, dict[str, str]]:
    kind = rng.randrange(9) if kind is None else kind
    if kind == 0:  # BYTES: huge shape, a few bytes
        n = rng.randrange(0, 64)
        body, h = binary_request(
            [{"name": "S", "datatype": "BYTES", "shape": [huge_dim(rng)], "parameters": {"binary_data_size": n}}],
            rng.randbytes(n),
        )
        return "strings", body, h
    if kind == 1:  # fixed size: huge shape, or a size that lies
        dt = rng.choice(["FP32", "INT32"])
        model, name = ("vec", "X") if dt == "FP32" else ("ints", "I")
        n = rng.choice([0, 4, 8, 4096])
        size = rng.choice([n, n + 4, -1, 2**62, huge_dim(rng) * 4])
        body, h = binary_request(
            [{"name": name, "datatype": dt, "shape": [rng.choice([n // 4, huge_dim(rng)])],
              "parameters": {"binary_data_size": size}}],
            rng.randbytes(n),
        )  # fmt: skip
        return model, body, h
    if kind == 2:  # JSON: huge or multi-dim shapes with little data
        shape = [huge_dim(rng)] if rng.random() < 0.5 else [rng.randrange(1, 2**16) for _ in range(rng.randrange(1, 6))]
        data = [rng.random() for _ in range(rng.randrange(0, 32))]
        return (
            "vec",
            json.dumps({"inputs": [{"name": "X", "datatype": "FP32", "shape": shape, "data": data}]}).encode(),
            {},
        )
    if kind == 3:  # JSON that parses into far more than its size
        unit = rng.choice([b"[]", b"{}", b'"a"', b"0", b"[[[]]]"])
        count = rng.choice([1_000, 100_000, 600_000])
        data = b"[" + b",".join([unit] * count) + b"]"
        return "vec", b'{"inputs":[{"name":"X","datatype":"FP32","shape":[1],"data":' + data + b"}]}", {}
    if kind == 4:  # BYTES: many tiny elements, up to several MB
        count = rng.choice([10, 10_000, 200_000, 800_000])
        blob = (struct.pack("<I", 1) + b"x") * count
        body, h = binary_request(
            [{"name": "S", "datatype": "BYTES", "shape": [count], "parameters": {"binary_data_size": len(blob)}}], blob
        )
        return "strings", body, h
    if kind == 5:  # BYTES: element lengths that run past the data
        n = rng.randrange(1, 16)
        blob = struct.pack("<I", rng.choice([2**32 - 1, 2**31, 1000])) + rng.randbytes(n)
        body, h = binary_request(
            [{"name": "S", "datatype": "BYTES", "shape": [rng.choice([1, 2, huge_dim(rng)])],
              "parameters": {"binary_data_size": len(blob)}}],
            blob,
        )  # fmt: skip
        return "strings", body, h
    if kind == 6:  # raw binary requests of random sizes, to fitting and unfitting models
        model = rng.choice(["vec", "strings", "bytes1", "pair", "fixed"])
        return model, rng.randbytes(rng.choice([0, 3, 24, 4096, 1_000_003])), {"Inference-Header-Content-Length": "0"}
    if kind == 7:  # a header length that lies
        body = json.dumps({"inputs": [{"name": "X", "datatype": "FP32", "shape": [1], "data": [1.0]}]}).encode()
        return "vec", body, {"Inference-Header-Content-Length": str(rng.choice([1, len(body) + 1, 2**40]))}
    values = [rng.random() for _ in range(rng.randrange(1, 64))]  # valid
    return (
        "vec",
        json.dumps({"inputs": [{"name": "X", "datatype": "FP32", "shape": [len(values)], "data": values}]}).encode(),
        {},
    )


def grpc_case(rng: random.Random, kind: int | None = None) -> pb.ModelInferRequest:
    kind = rng.randrange(4) if kind is None else kind
    if kind == 0:  # raw BYTES, huge shape
        req = pb.ModelInferRequest(model_name="strings")
        req.inputs.add(name="S", datatype="BYTES", shape=[huge_dim(rng)])
        req.raw_input_contents.append(rng.randbytes(rng.randrange(0, 32)))
    elif kind == 1:  # typed contents, huge shape
        req = pb.ModelInferRequest(model_name="ints")
        req.inputs.add(name="I", datatype="INT32", shape=[huge_dim(rng)]).contents.int_contents.extend(range(8))
    elif kind == 2:  # typed contents, many elements (some over the memory bound)
        n = rng.choice([100, 100_000, 300_000])  # see the README: protobuf parses before our checks
        req = pb.ModelInferRequest(model_name="strings")
        req.inputs.add(name="S", datatype="BYTES", shape=[n]).contents.bytes_contents.extend([b"y"] * n)
    else:  # raw fixed size that lies
        req = pb.ModelInferRequest(model_name="vec")
        req.inputs.add(name="X", datatype="FP32", shape=[rng.choice([3, huge_dim(rng)])])
        req.raw_input_contents.append(rng.randbytes(rng.choice([12, 13, 0])))
    return req


def test_fuzz_keeps_rss_near_idle_and_liveness_prompt(server: Proc) -> None:
    rng = random.Random(20261204)
    warm = Http(server.http_port)
    for _ in range(50):  # bring every code path in before measuring idle
        model, body, headers = rest_case(rng)
        warm.post(f"/v2/models/{model}/infer", body, headers)
    idle = server.status()["VmRSS"]
    server.reset_peak()

    live_worst = 0.0
    live_count = 0
    done = threading.Event()

    def poll_liveness() -> None:
        nonlocal live_worst, live_count
        conn = http.client.HTTPConnection(HOST, server.http_port, timeout=30)
        while not done.is_set():
            t0 = time.monotonic()
            conn.request("GET", "/v2/health/live")
            assert conn.getresponse().read() == b""
            live_worst = max(live_worst, time.monotonic() - t0)
            live_count += 1
            done.wait(0.02)
        conn.close()

    statuses: dict[int, int] = {}
    codes: dict[str, int] = {}
    lock = threading.Lock()

    def rest_worker(seed: int, n: int) -> None:
        r = random.Random(seed)
        c = Http(server.http_port)
        for _ in range(n):
            model, body, headers = rest_case(r)
            status, _ = c.post(f"/v2/models/{model}/infer", body, headers)
            with lock:
                statuses[status] = statuses.get(status, 0) + 1

    def grpc_worker(seed: int, n: int) -> None:
        r = random.Random(seed)
        with grpc.insecure_channel(
            f"{HOST}:{server.grpc_port}", options=[("grpc.max_send_message_length", -1)]
        ) as channel:
            stub = pb_grpc.GRPCInferenceServiceStub(channel)
            for _ in range(n):
                try:
                    stub.ModelInfer(grpc_case(r), timeout=60)
                    code = "OK"
                except grpc.RpcError as exc:
                    code = exc.code().name
                with lock:
                    codes[code] = codes.get(code, 0) + 1

    poller = threading.Thread(target=poll_liveness)
    workers = [threading.Thread(target=rest_worker, args=(i, REST_REQUESTS // 3)) for i in range(3)]
    workers += [threading.Thread(target=grpc_worker, args=(100 + i, GRPC_REQUESTS // 2)) for i in range(2)]
    poller.start()
    for w in workers:
        w.start()
    for w in workers:
        w.join(200)
    done.set()
    poller.join(30)
    after = server.status()

    assert sum(statuses.values()) == REST_REQUESTS and sum(codes.values()) == GRPC_REQUESTS
    assert set(statuses) <= {200, 400, 404, 413}, statuses  # never a 5xx
    assert statuses.get(200, 0) > 0 and statuses.get(400, 0) > 0 and statuses.get(413, 0) > 0, statuses
    assert set(codes) <= {"OK", "INVALID_ARGUMENT", "RESOURCE_EXHAUSTED"}, codes
    assert codes.get("INVALID_ARGUMENT", 0) > 0 and codes.get("RESOURCE_EXHAUSTED", 0) > 0, codes
    growth, peak = after["VmRSS"] - idle, after["VmHWM"] - idle
    print(f"fuzz: idle RSS {idle / MiB:.1f} MiB, after +{growth / MiB:.1f} MiB, peak +{peak / MiB:.1f} MiB; "
          f"liveness {live_count} polls, worst {live_worst * 1000:.0f} ms; REST {statuses}, gRPC {codes}")  # fmt: skip
    assert growth < 50 * MiB  # the criterion: back within 50 MiB of idle
    # While it runs, each concurrent client beyond the first may hold one more request's bound.
    assert peak < 50 * MiB + (len(workers) - 1) * MEMORY_BOUND
    assert live_count > 10 and live_worst < 2.0
    one = json.dumps({"inputs": [{"name": "X", "datatype": "FP32", "shape": [1], "data": [2]}]}).encode()
    assert Http(server.http_port).post("/v2/models/vec/infer", one)[0] == 200


# -- SIGTERM with large responses still being sent ----------------------------------------------

OUTPUT_FLOATS = 2 * MiB  # 8 MiB of FP32 per response
CLIENTS = 6


def big_output_graph() -> helper.GraphProto:
    shape = helper.make_tensor("shape", TensorProto.INT64, [1], [OUTPUT_FLOATS])
    node = helper.make_node("Expand", ["X", "shape"], ["Y"])
    return helper.make_graph(
        [node],
        "big",
        [vi("X", TensorProto.FLOAT, [1])],
        [vi("Y", TensorProto.FLOAT, [OUTPUT_FLOATS])],
        initializer=[shape],
    )


def read_response(sock: socket.socket) -> tuple[dict[str, str], bytes]:
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        assert chunk, "connection closed inside the response head"
        buf += chunk
    head, body = buf.split(b"\r\n\r\n", 1)
    headers = {
        k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in head.decode().split("\r\n")[1:])
    }
    length = int(headers["content-length"])
    while len(body) < length:
        chunk = sock.recv(1 << 20)
        assert chunk, f"response cut at {len(body)} of {length} bytes"
        body += chunk
    return headers, body


def test_sigterm_flushes_every_in_flight_large_response(tmp_path: Path) -> None:
    save_model(big_output_graph(), tmp_path / "big" / "1" / "model.onnx")
    p = spawn(tmp_path, "--drain-timeout", "30")
    socks: list[socket.socket] = []
    try:
        for i in range(CLIENTS):
            s = socket.create_connection((HOST, p.http_port))
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)  # a slow reader: little kernel buffering
            header = json.dumps(
                {"inputs": [{"name": "X", "datatype": "FP32", "shape": [1], "data": [float(i + 1)]}],
                 "parameters": {"binary_data_output": True}}
            ).encode()  # fmt: skip
            s.sendall(
                b"POST /v2/models/big/infer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\n\r\n%s" % (len(header), header)
            )
            socks.append(s)
        for s in socks:  # each response has started: the rest waits in the server's buffers
            assert s.recv(1, socket.MSG_PEEK)
        p.proc.send_signal(signal.SIGTERM)
        for i, s in enumerate(socks):
            headers, body = read_response(s)
            hlen = int(headers["inference-header-content-length"])
            meta = json.loads(body[:hlen])["outputs"][0]
            assert meta["shape"] == [OUTPUT_FLOATS] and meta["parameters"]["binary_data_size"] == 4 * OUTPUT_FLOATS
            y = np.frombuffer(body[hlen:], np.float32)
            assert y.size == OUTPUT_FLOATS and bool(np.all(y == i + 1))
        assert p.proc.wait(30) == 0
    finally:
        for s in socks:
            s.close()
        stop(p)
