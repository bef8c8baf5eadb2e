"""Model control mode explicit: a load re-scans the repository, a failed load keeps what is
served, parameters that cannot be honoured are refused naming them, and poll is refused."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import tritonclient.http as th
from tritonclient.utils import InferenceServerException

from modelserver.faults import Faults
from modelserver.server import ServerConfig, StartupError

from .conftest import RunningServer, ThreadedServer, add_sub_graph, save_model


@pytest.fixture
def explicit(tmp_path: Path) -> Iterator[tuple[RunningServer, Path]]:
    repo = tmp_path / "repo"
    save_model(add_sub_graph(0.0), repo / "m" / "1" / "model.onnx")
    config = ServerConfig(
        model_repository=repo, host="127.0.0.1", http_port=0, grpc_port=0, metrics_port=0,
        intra_op_threads=1, drain_timeout_s=5, faults=Faults(), model_control_mode="explicit",
    )  # fmt: skip
    srv = ThreadedServer(config)
    yield srv.start(), repo
    srv.stop()


def out0(client: th.InferenceServerClient, version: str = "") -> float:
    ins = [th.InferInput("INPUT0", [1, 4], "FP32"), th.InferInput("INPUT1", [1, 4], "FP32")]
    for i in ins:
        i.set_data_from_numpy(np.ones((1, 4), dtype=np.float32))
    res = client.infer("m", ins, model_version=version).as_numpy("OUTPUT0")
    assert res is not None
    return float(res[0, 0])


def test_load_rescans_and_a_failed_load_keeps_serving(explicit: tuple[RunningServer, Path]) -> None:
    server, repo = explicit
    client = th.InferenceServerClient(server.http_url)
    try:
        assert out0(client) == 2.0
        save_model(add_sub_graph(100.0), repo / "m" / "2" / "model.onnx")  # a new version on disk
        states = {(r["version"], r["state"]) for r in client.get_model_repository_index()}
        assert states == {("1", "READY"), ("2", "UNAVAILABLE")}  # on disk, not loaded yet
        client.load_model("m")
        assert out0(client) == 102.0 and out0(client, "1") == 2.0
        assert {r["state"] for r in client.get_model_repository_index()} == {"READY"}

        (repo / "m" / "3").mkdir()
        (repo / "m" / "3" / "model.onnx").write_bytes(b"not an onnx model")
        with pytest.raises(InferenceServerException, match="failed to load 'm'"):
            client.load_model("m")
        assert out0(client) == 102.0  # versions 1 and 2 still serve
        shutil.rmtree(repo / "m" / "3")

        with pytest.raises(InferenceServerException, match="parameter 'config'"):
            client.load_model("m", config='{"max_batch_size": 4}')
        with pytest.raises(InferenceServerException, match="unknown model"):
            client.unload_model("nope")
        client.unload_model("m", unload_dependents=True)  # no ensembles: nothing else to unload
        assert not client.is_model_ready("m")
    finally:
        client.close()


def test_poll_mode_is_refused_at_start(tmp_path: Path) -> None:
    save_model(add_sub_graph(), tmp_path / "m" / "1" / "model.onnx")
    config = ServerConfig(
        model_repository=tmp_path, host="127.0.0.1", http_port=0, grpc_port=0, metrics_port=0,
        faults=Faults(), model_control_mode="poll",
    )  # fmt: skip
    with pytest.raises(StartupError, match="poll is not supported"):
        ThreadedServer(config).start()
