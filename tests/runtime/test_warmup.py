"""Warm-up follows Triton's ``model_warmup``: a model is only warmed up when its config asks,
with the config's shapes; a failed warm-up makes that model unavailable with its reason, and
the server keeps serving the others.

The model is the issue's case: MaxPool 3x3 over a dynamic HxW image, which a warm-up on 1x1
zeros cannot run.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator

import numpy as np
import pytest
import tritonclient.grpc as tg
import tritonclient.http as th
from onnx import TensorProto, helper
from tritonclient.utils import InferenceServerException

from modelserver.faults import Faults
from modelserver.server import ServerConfig

from .conftest import RunningServer, ThreadedServer, fixed_graph, save_model, vi

pytestmark = pytest.mark.timeout(60)


def maxpool_graph() -> helper.GraphProto:
    node = helper.make_node("MaxPool", ["X"], ["Y"], kernel_shape=[3, 3])
    return helper.make_graph(
        [node],
        "maxpool",
        [vi("X", TensorProto.FLOAT, [1, 1, "H", "W"])],
        [vi("Y", TensorProto.FLOAT, [1, 1, "h", "w"])],
    )


def warmup_config(data: str, dims: str = "[1, 1, 8, 8]", count: int = 0) -> str:
    return (
        f'model_warmup [{{ name: "sample" batch_size: 1 count: {count} inputs {{ key: "X" value: '
        f"{{ data_type: TYPE_FP32 dims: {dims} {data} }} }} }}]\n"
    )


MODELS = {
    "maxpool": None,  # no config: no warm-up, served as Triton serves it
    "maxpool_too_small": warmup_config("zero_data: true", dims="[1, 1, 1, 1]"),
    "maxpool_random": warmup_config("random_data: true", count=3),
    "maxpool_file": warmup_config('input_data_file: "image.bin"'),
    "maxpool_no_file": warmup_config('input_data_file: "missing.bin"'),
    "maxpool_wrong_type": warmup_config("zero_data: true").replace("TYPE_FP32", "TYPE_INT32"),
}


@pytest.fixture(scope="module")
def warm_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    repo = tmp_path_factory.mktemp("warmup")
    for name, config in MODELS.items():
        save_model(maxpool_graph(), repo / name / "1" / "model.onnx")
        if config is not None:
            (repo / name / "config.pbtxt").write_text(config)
    (repo / "maxpool_file" / "warmup").mkdir()
    (repo / "maxpool_file" / "warmup" / "image.bin").write_bytes(np.ones((1, 1, 8, 8), np.float32).tobytes())
    save_model(fixed_graph(), repo / "fixed" / "1" / "model.onnx")
    config = ServerConfig(
        model_repository=repo, host="127.0.0.1", http_port=0, grpc_port=0, metrics_port=0,
        intra_op_threads=1, faults=Faults(),
    )  # fmt: skip
    srv = ThreadedServer(config)
    running = srv.start()  # would raise if a failed warm-up stopped the server
    yield running
    srv.stop()


def get(server: RunningServer, path: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(f"http://{server.http_url}{path}", timeout=10) as r:
            return int(r.status), r.read()
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.read()


def test_model_without_warmup_config_is_served(warm_server: RunningServer) -> None:
    assert get(warm_server, "/v2/models/maxpool/ready")[0] == 200
    c = th.InferenceServerClient(warm_server.http_url)
    x = th.InferInput("X", [1, 1, 5, 7], "FP32")
    image = np.arange(35, dtype=np.float32).reshape(1, 1, 5, 7)
    x.set_data_from_numpy(image)
    y = c.infer("maxpool", [x]).as_numpy("Y")
    assert y.shape == (1, 1, 3, 5)
    assert y[0, 0, 0, 0] == image[0, 0, :3, :3].max()


@pytest.mark.parametrize("name", ["maxpool_random", "maxpool_file"])
def test_warmup_that_runs_makes_the_model_ready(warm_server: RunningServer, name: str) -> None:
    assert get(warm_server, f"/v2/models/{name}/ready")[0] == 200


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("maxpool_too_small", "warm-up sample 'sample' failed"),
        ("maxpool_no_file", "missing.bin"),
        ("maxpool_wrong_type", "data_type TYPE_INT32, the model's is TYPE_FP32"),
    ],
)
def test_failed_warmup_marks_only_that_model_unavailable(warm_server: RunningServer, name: str, reason: str) -> None:
    status, body = get(warm_server, f"/v2/models/{name}/ready")
    assert status == 400
    assert "unavailable" in json.loads(body)["error"] and reason in json.loads(body)["error"]
    # the repository index shows it with the reason
    req = urllib.request.Request(f"http://{warm_server.http_url}/v2/repository/index", data=b"{}", method="POST")
    with urllib.request.urlopen(req, timeout=10) as r:
        rows = {row["name"]: row for row in json.loads(r.read())}
    assert rows[name]["state"] == "UNAVAILABLE" and reason in rows[name]["reason"]
    assert rows["maxpool"]["state"] == "READY"
    grpc_client = tg.InferenceServerClient(warm_server.grpc_url)
    assert grpc_client.is_model_ready(name) is False
    # inference on it is refused with the reason; the other models serve
    c = th.InferenceServerClient(warm_server.http_url)
    x = th.InferInput("X", [1, 1, 8, 8], "FP32")
    x.set_data_from_numpy(np.zeros((1, 1, 8, 8), np.float32))
    with pytest.raises(InferenceServerException, match=reason.split("'")[0]):
        c.infer(name, [x])
    f = th.InferInput("X", [2, 3], "FP32")
    f.set_data_from_numpy(np.ones((2, 3), np.float32))
    np.testing.assert_allclose(c.infer("fixed", [f]).as_numpy("Y"), [3.0, 3.0])


def test_server_is_live_but_not_ready_while_a_model_is_unavailable(warm_server: RunningServer) -> None:
    # Triton's strict readiness: every model must be ready for the server to be.
    assert get(warm_server, "/v2/health/live")[0] == 200
    assert get(warm_server, "/v2/health/ready")[0] == 400
