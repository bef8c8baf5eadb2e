"""End-to-end `modeldeploy export` on tiny models: repository, config, digest, manifest."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
import yaml

from .fixtures_models import TinyMLP
from .helpers import IMPORT_ROOT, Result, export, model_path

pytestmark = pytest.mark.timeout(120)


def sha256(path: Path) -> str:
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


def triton_config(path: Path) -> object:
    text_format = pytest.importorskip("google.protobuf.text_format")
    model_config_pb2 = pytest.importorskip("tritonclient.grpc.model_config_pb2")
    return text_format.Parse(path.read_text(), model_config_pb2.ModelConfig())


@pytest.fixture(scope="module")
def mlp(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Result]:
    out = tmp_path_factory.mktemp("repo")
    result = export(model_path("TinyMLP"), "--input-shape", "1,16", "--out", str(out),
                    "--uri-prefix", "s3://bucket/models/", "--manifest", str(out / "mdep.yaml"))
    assert result.code == 0, result.err
    return out, result


def test_repository_layout(mlp: tuple[Path, Result]) -> None:
    out, _ = mlp
    files = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert files == ["mdep.yaml", "tinymlp/1/model.onnx", "tinymlp/config.pbtxt"]
    model = onnx.load(str(out / "tinymlp/1/model.onnx"))
    assert not any(t.data_location == onnx.TensorProto.EXTERNAL for t in model.graph.initializer)
    assert [i.name for i in model.graph.input] == ["features"]  # from forward()'s signature


def test_config_pbtxt(mlp: tuple[Path, Result]) -> None:
    out, _ = mlp
    text = (out / "tinymlp/config.pbtxt").read_text()
    assert 'platform: "onnxruntime_onnx"' in text and "max_batch_size: 8" in text
    config = triton_config(out / "tinymlp/config.pbtxt")
    assert [(i.name, list(i.dims)) for i in config.input] == [("features", [16])]  # type: ignore[attr-defined]
    assert [(o.name, list(o.dims)) for o in config.output] == [("output", [10])]  # type: ignore[attr-defined]
    assert config.dynamic_batching.max_queue_delay_microseconds == 1000  # type: ignore[attr-defined]


def test_digest_and_manifest(mlp: tuple[Path, Result]) -> None:
    out, result = mlp
    digest = sha256(out / "tinymlp/1/model.onnx")
    assert f"digest: {digest}" in result.err
    doc = yaml.safe_load(result.out)  # stdout is exactly the manifest
    assert (out / "mdep.yaml").read_text() == result.out
    assert doc["apiVersion"] == "serving.modeldeploy.dev/v1alpha1" and doc["kind"] == "ModelDeployment"
    assert doc["metadata"] == {"name": "tinymlp"}
    assert doc["spec"]["model"] == {
        "name": "tinymlp", "uri": "s3://bucket/models/tinymlp/1/model.onnx",
        "digest": digest, "format": "onnx", "version": 1,
    }
    batching = {"maxBatchSize": 8, "maxQueueDelayMicroseconds": 1000}
    assert doc["spec"]["runtime"] == {"kind": "onnx", "batching": batching}


def test_manifest_passes_api_validation(mlp: tuple[Path, Result]) -> None:
    semantics = pytest.importorskip("modeldeploy.api.semantics")
    doc = yaml.safe_load(mlp[1].out)
    spec, problems = semantics.spec_problems(doc["metadata"]["name"], doc["spec"])
    assert spec is not None and problems == []


def test_progress_lines(mlp: tuple[Path, Result]) -> None:
    lines = mlp[1].err.splitlines()
    assert lines[0].startswith("[1/5] loading model ... ok (")
    assert lines[2].startswith("[3/5] verifying with onnxruntime ... ok (") and "max abs diff" in lines[2]
    assert lines[3] == "[4/5] quantizing ... skipped (no --quantize)"
    assert [line[:5] for line in lines[:5]] == ["[1/5]", "[2/5]", "[3/5]", "[4/5]", "[5/5]"]


def test_version_is_immutable_unless_forced(mlp: tuple[Path, Result]) -> None:
    out, _ = mlp
    again = ["--input-shape", "1,16", "--out", str(out), "--exporter", "torchscript"]
    refused = export(model_path("TinyMLP"), *again)
    assert refused.code == 1 and "already exists" in refused.error_lines[0]
    # An argument error, refused before any step starts (not under "[1/5] loading model ... failed").
    assert "[1/5]" not in refused.err and refused.err.splitlines() == refused.error_lines, refused.err
    assert export(model_path("TinyMLP"), *again, "--force").code == 0


def test_quantized_cnn(tmp_path: Path) -> None:
    result = export(model_path("TinyCNN"), "--input-shape", "1,3,32,32", "--out", str(tmp_path),
                    "--quantize", "int8", "--samples", "32", "--instance-kind", "KIND_CPU")
    assert result.code == 0, result.err
    line = next(x for x in result.err.splitlines() if x.startswith("[4/5]"))
    assert "max abs diff vs fp32" in line and "top-1 agreement" in line and "(32 samples)" in line
    path = tmp_path / "tinycnn/1/model.onnx"
    model = onnx.load(str(path))
    onnx.checker.check_model(model)
    assert any(n.op_type in ("MatMulInteger", "ConvInteger", "DynamicQuantizeLinear") for n in model.graph.node)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (logits,) = sess.run(None, {"image": np.zeros((5, 3, 32, 32), np.float32)})
    assert logits.shape == (5, 10)
    assert yaml.safe_load(result.out)["spec"]["model"]["digest"] == sha256(path)
    assert "kind: KIND_CPU" in (tmp_path / "tinycnn/config.pbtxt").read_text()


def test_quantization_gate(tmp_path: Path) -> None:
    result = export(model_path("TinyMLP"), "--input-shape", "1,16", "--out", str(tmp_path), "--exporter",
                    "torchscript", "--quantize", "int8", "--max-quant-diff", "0")
    assert result.code == 1 and "exceeds --max-quant-diff" in result.error_lines[0]
    assert not (tmp_path / "tinymlp").exists()  # nothing is written when a stage fails


def test_torchscript_input(tmp_path: Path) -> None:
    scripted = tmp_path / "classifier.pt"
    torch.jit.trace(TinyMLP().eval(), (torch.randn(2, 16),)).save(str(scripted))
    result = export("--torchscript", str(scripted), "--input-shape", "4,16", "--out", str(tmp_path / "repo"))
    assert result.code == 0, result.err
    assert "torchscript exporter" in result.err
    path = tmp_path / "repo/classifier/1/model.onnx"
    assert yaml.safe_load(result.out)["spec"]["model"]["digest"] == sha256(path)


def test_factory_kwargs_and_weights(tmp_path: Path) -> None:
    source = TinyMLP(hidden=8).eval()
    torch.save({"state_dict": source.state_dict()}, tmp_path / "ckpt.pt")
    result = export(model_path("make_mlp"), "--kwargs", '{"hidden": 8}', "--weights", str(tmp_path / "ckpt.pt"),
                    "--input-shape", "1,16", "--name", "mlp-8", "--version", "3", "--out", str(tmp_path))
    assert result.code == 0, result.err
    x = np.random.default_rng(1).standard_normal((3, 16)).astype(np.float32)
    sess = ort.InferenceSession(str(tmp_path / "mlp-8/3/model.onnx"), providers=["CPUExecutionProvider"])
    with torch.no_grad():
        np.testing.assert_allclose(sess.run(None, {"features": x})[0], source(torch.from_numpy(x)).numpy(), atol=1e-5)
    assert "/mlp-8/3/model.onnx" in yaml.safe_load(result.out)["spec"]["model"]["uri"]


def test_two_inputs_with_dtypes(tmp_path: Path) -> None:
    result = export(model_path("TwoInputs"), "--input-shape", "2,5", "--input-shape", "2,1",
                    "--input-dtype", "int64", "--input-dtype", "float32", "--output-name", "projected",
                    "--output-name", "pooled", "--out", str(tmp_path))
    assert result.code == 0, result.err
    config = triton_config(tmp_path / "twoinputs/config.pbtxt")
    inputs = [(i.name, i.data_type, list(i.dims)) for i in config.input]  # type: ignore[attr-defined]
    assert inputs == [("tokens", 9, [5]), ("scale", 11, [1])]  # TYPE_INT64, TYPE_FP32
    assert [o.name for o in config.output] == ["projected", "pooled"]  # type: ignore[attr-defined]


def test_fixed_batch_model(tmp_path: Path) -> None:
    result = export(model_path("FixedBatch"), "--input-shape", "2,8", "--max-batch-size", "0", "--out", str(tmp_path))
    assert result.code == 0, result.err
    text = (tmp_path / "fixedbatch/config.pbtxt").read_text()
    assert "max_batch_size: 0" in text and "dims: [ 2, 8 ]" in text and "dynamic_batching" not in text
    assert "batching" not in yaml.safe_load(result.out)["spec"]["runtime"]


def test_python_dash_m(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(IMPORT_ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run(
        [sys.executable, "-m", "modeldeploy.export", model_path("TinyMLP"), "--input-shape", "1,16",
         "--out", str(tmp_path), "--runtime", "triton"],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    # Nothing but our own lines: the exporters' warnings and log records are silenced.
    assert all(line.startswith(("[", "digest: ")) for line in proc.stderr.splitlines()), proc.stderr
    doc = yaml.safe_load(proc.stdout)
    assert doc["spec"]["runtime"]["kind"] == "triton"
    assert doc["spec"]["model"]["uri"] == (tmp_path.resolve() / "tinymlp/1/model.onnx").as_uri()


def test_old_opset_uses_torchscript_exporter(tmp_path: Path) -> None:
    result = export(model_path("TinyCNN"), "--input-shape", "1,3,32,32", "--opset", "13", "--out", str(tmp_path))
    assert result.code == 0, result.err
    assert "torchscript exporter, opset 13" in result.err
    model = onnx.load(str(tmp_path / "tinycnn/1/model.onnx"))
    assert [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")] == [13]


def test_opset_is_never_silently_changed(tmp_path: Path) -> None:
    result = export(model_path("TinyMLP"), "--input-shape", "1,16", "--exporter", "dynamo", "--opset", "17",
                    "--out", str(tmp_path))
    # torch 2.13's dynamo exporter cannot down-convert to 17; if a later one can, the model must be 17.
    if result.code == 0:
        model = onnx.load(str(tmp_path / "tinymlp/1/model.onnx"))
        assert [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")] == [17]
    else:
        assert "asked for opset 17" in result.error_lines[0] and "Traceback" not in result.err
