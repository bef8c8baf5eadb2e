"""Shared fixtures: small ONNX models built with onnx.helper, and a modelserver running in a
background thread (its own event loop) on 127.0.0.1 with OS-assigned ports."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import onnx
import pytest
from onnx import TensorProto, helper

from modelserver.faults import Faults
from modelserver.server import ServerConfig, ServerHandle, serve

OPSET = [helper.make_opsetid("", 17)]


def save_model(graph: onnx.GraphProto, path: Path) -> None:
    model = helper.make_model(graph, opset_imports=OPSET)
    model.ir_version = 8  # readable by every onnxruntime we support
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))


def vi(name: str, elem: int, shape: list[int | str]) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, elem, shape)


def add_sub_graph(offset: float = 0.0) -> onnx.GraphProto:
    """OUTPUT0 = INPUT0 + INPUT1 + offset, OUTPUT1 = INPUT0 - INPUT1; FP32 [N, 4]."""
    nodes = [
        helper.make_node("Add", ["INPUT0", "INPUT1"], ["sum"]),
        helper.make_node("Add", ["sum", "offset"], ["OUTPUT0"]),
        helper.make_node("Sub", ["INPUT0", "INPUT1"], ["OUTPUT1"]),
    ]
    init = [helper.make_tensor("offset", TensorProto.FLOAT, [], [offset])]
    return helper.make_graph(
        nodes,
        "add_sub",
        [vi("INPUT0", TensorProto.FLOAT, ["N", 4]), vi("INPUT1", TensorProto.FLOAT, ["N", 4])],
        [vi("OUTPUT0", TensorProto.FLOAT, ["N", 4]), vi("OUTPUT1", TensorProto.FLOAT, ["N", 4])],
        initializer=init,
    )


def types_graph() -> onnx.GraphProto:
    """One identity-ish path per datatype, dynamic 1-D shapes, no batching."""
    nodes = [
        helper.make_node("Identity", ["F16"], ["F16_OUT"]),
        helper.make_node("Add", ["I64", "one"], ["I64_OUT"]),
        helper.make_node("Not", ["B"], ["B_OUT"]),
        helper.make_node("Identity", ["S"], ["S_OUT"]),
    ]
    init = [helper.make_tensor("one", TensorProto.INT64, [], [1])]
    return helper.make_graph(
        nodes,
        "types",
        [
            vi("F16", TensorProto.FLOAT16, ["a"]),
            vi("I64", TensorProto.INT64, ["b"]),
            vi("B", TensorProto.BOOL, ["c"]),
            vi("S", TensorProto.STRING, ["d"]),
        ],
        [
            vi("F16_OUT", TensorProto.FLOAT16, ["a"]),
            vi("I64_OUT", TensorProto.INT64, ["b"]),
            vi("B_OUT", TensorProto.BOOL, ["c"]),
            vi("S_OUT", TensorProto.STRING, ["d"]),
        ],
        initializer=init,
    )


def fixed_graph() -> onnx.GraphProto:
    """Fixed shape [2, 3] FP32 -> row sums [2]."""
    nodes = [helper.make_node("ReduceSum", ["X", "axes"], ["Y"], keepdims=0)]
    init = [helper.make_tensor("axes", TensorProto.INT64, [1], [1])]
    return helper.make_graph(
        nodes,
        "fixed",
        [vi("X", TensorProto.FLOAT, [2, 3])],
        [vi("Y", TensorProto.FLOAT, [2])],
        initializer=init,
    )


def gather_graph() -> onnx.GraphProto:
    """Gather from a 3-element table: an out-of-range index makes ONNX Runtime itself fail."""
    nodes = [helper.make_node("Gather", ["table", "IDX"], ["OUT"], axis=0)]
    init = [helper.make_tensor("table", TensorProto.FLOAT, [3], [10.0, 20.0, 30.0])]
    return helper.make_graph(
        nodes,
        "gather",
        [vi("IDX", TensorProto.INT64, ["n"])],
        [vi("OUT", TensorProto.FLOAT, ["n"])],
        initializer=init,
    )


def gather_batched_graph() -> onnx.GraphProto:
    """Batchable lookup [N, 1] INT64 -> [N, 1] FP32; an index >= 3 fails inside ONNX Runtime."""
    nodes = [helper.make_node("Gather", ["table", "IDX"], ["OUT"], axis=0)]
    init = [helper.make_tensor("table", TensorProto.FLOAT, [3], [10.0, 20.0, 30.0])]
    return helper.make_graph(
        nodes,
        "gather_batched",
        [vi("IDX", TensorProto.INT64, ["N", 1])],
        [vi("OUT", TensorProto.FLOAT, ["N", 1])],
        initializer=init,
    )


GATHER_BATCHED_CONFIG = """
max_batch_size: 8
dynamic_batching { max_queue_delay_microseconds: 200000 }
"""

ADD_SUB_CONFIG = """
name: "add_sub"
platform: "onnxruntime_onnx"
max_batch_size: 8
dynamic_batching { preferred_batch_size: [8] max_queue_delay_microseconds: 20000 }
instance_group [{ count: 1 kind: KIND_CPU }]
"""


def build_repository(root: Path) -> Path:
    save_model(add_sub_graph(0.0), root / "add_sub" / "1" / "model.onnx")
    save_model(add_sub_graph(100.0), root / "add_sub" / "2" / "model.onnx")
    (root / "add_sub" / "config.pbtxt").write_text(ADD_SUB_CONFIG)
    save_model(types_graph(), root / "types" / "1" / "model.onnx")
    save_model(fixed_graph(), root / "fixed" / "1" / "model.onnx")
    save_model(gather_graph(), root / "gather" / "1" / "model.onnx")
    save_model(gather_batched_graph(), root / "gather_batched" / "1" / "model.onnx")
    (root / "gather_batched" / "config.pbtxt").write_text(GATHER_BATCHED_CONFIG)
    (root / "not_a_model").mkdir()  # no numeric version: ignored
    return root


@dataclass
class RunningServer:
    handle: ServerHandle
    host: str

    @property
    def http_url(self) -> str:
        return f"{self.host}:{self.handle.http_port}"

    @property
    def grpc_url(self) -> str:
        return f"{self.host}:{self.handle.grpc_port}"

    @property
    def metrics_url(self) -> str:
        return f"http://{self.host}:{self.handle.metrics_port}/metrics"


class ThreadedServer:
    """modelserver.serve() on its own loop in a daemon thread; stop() drains it."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.handle = ServerHandle()
        self.ready = threading.Event()
        self.error: BaseException | None = None
        self.loop = asyncio.new_event_loop()
        self.stop_event: asyncio.Event | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)

        async def main() -> None:
            self.stop_event = asyncio.Event()
            await serve(
                self.config,
                stop_event=self.stop_event,
                handle=self.handle,
                on_ready=lambda h: self.ready.set(),
            )

        try:
            self.loop.run_until_complete(main())
        except BaseException as exc:
            self.error = exc
        finally:
            self.ready.set()
            self.loop.close()

    def start(self, timeout: float = 30.0) -> RunningServer:
        self.thread.start()
        if not self.ready.wait(timeout):
            raise TimeoutError("modelserver did not become ready")
        if self.error is not None:
            raise self.error
        return RunningServer(self.handle, self.config.host)

    def stop(self) -> None:
        if self.stop_event is not None and not self.loop.is_closed():
            self.loop.call_soon_threadsafe(self.stop_event.set)
        self.thread.join(30)


@pytest.fixture(scope="session")
def model_repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_repository(tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="session")
def server(model_repository: Path) -> Iterator[RunningServer]:
    config = ServerConfig(
        model_repository=model_repository,
        host="127.0.0.1",
        http_port=0,
        grpc_port=0,
        metrics_port=0,
        max_request_bytes=1024 * 1024,
        intra_op_threads=1,
        drain_timeout_s=5,
        faults=Faults(),
    )
    srv = ThreadedServer(config)
    running = srv.start()
    yield running
    srv.stop()
