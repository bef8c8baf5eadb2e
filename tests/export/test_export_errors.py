"""Every kind of bad input ends in one `error:` line and a non-zero exit, never a traceback."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from .fixtures_models import TinyMLP
from .helpers import export, model_path

pytestmark = pytest.mark.timeout(120)

CASES = {
    "no module": (["no_such_pkg.models:Net", "--input-shape", "1,4"], "no module named 'no_such_pkg.models'"),
    "no attribute": ([model_path("Missing"), "--input-shape", "1,4"], "has no attribute 'Missing'"),
    "not a module": ([model_path("not_a_module"), "--input-shape", "1,4"], "not a torch.nn.Module"),
    "bad path": (["no_colon_here", "--input-shape", "1,4"], "expected package.module:ClassOrFactory"),
    "no model": (["--input-shape", "1,4"], "give exactly one model"),
    "no input shape": ([model_path("TinyMLP")], "no example input"),
    "bad shape string": ([model_path("TinyMLP"), "--input-shape", "1,x16"], "bad input shape"),
    "shape mismatch": ([model_path("TinyMLP"), "--input-shape", "1,5"], "forward() failed on the example input"),
    "bad kwargs json": ([model_path("TinyMLP"), "--kwargs", "{", "--input-shape", "1,16"], "not valid JSON"),
    "bad kwargs": ([model_path("TinyMLP"), "--kwargs", '{"depth": 3}', "--input-shape", "1,16"],
                   "unexpected keyword argument 'depth'"),
    "missing weights": ([model_path("TinyMLP"), "--weights", "/nonexistent/w.pt", "--input-shape", "1,16"],
                        "does not exist"),
    "bad name": ([model_path("TinyMLP"), "--input-shape", "1,16", "--name", "Bad_Name"], "bad --name"),
    "unsupported op": ([model_path("CustomOp"), "--input-shape", "2,4"],
                       "unsupported operator modeldeploy_test.opaque.default"),
    "unsupported op (torchscript exporter)": ([model_path("CustomOp"), "--input-shape", "2,4", "--exporter",
                                               "torchscript"], "unsupported operator modeldeploy_test::opaque"),
    "ort mismatch": ([model_path("ExportDiffers"), "--input-shape", "2,4"], "differs from torch: max abs diff"),
    "not batch-dynamic": ([model_path("FixedBatch"), "--input-shape", "2,8"], "not batch-dynamic"),
    "missing torchscript": (["--torchscript", "/nonexistent/model.pt", "--input-shape", "1,4"], "does not exist"),
    "preferred > max": ([model_path("TinyMLP"), "--input-shape", "1,16", "--exporter", "torchscript",
                         "--preferred-batch-size", "16"], "preferred batch sizes [16]"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input(case: str, tmp_path: Path) -> None:
    argv, message = CASES[case]
    result = export(*argv, "--out", str(tmp_path))
    assert result.code != 0
    assert "Traceback" not in result.err + result.out
    assert result.out == ""  # no manifest for a failed export
    assert len(result.error_lines) == 1, result.err
    assert result.err.rstrip("\n").splitlines()[-1] == result.error_lines[0]
    assert message in result.error_lines[0], result.error_lines[0]
    assert not any(tmp_path.iterdir())


def test_mismatched_weights(tmp_path: Path) -> None:
    torch.save(TinyMLP(hidden=4).state_dict(), tmp_path / "w.pt")
    result = export(model_path("TinyMLP"), "--weights", str(tmp_path / "w.pt"), "--input-shape", "1,16",
                    "--out", str(tmp_path / "repo"))
    assert result.code == 1 and "do not fit the model" in result.error_lines[0]
    assert "Traceback" not in result.err


def test_debug_shows_traceback(tmp_path: Path) -> None:
    result = export(model_path("TinyMLP"), "--input-shape", "1,5", "--out", str(tmp_path), "--debug")
    assert result.code == 1 and "Traceback" in result.err


def test_missing_export_extra(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # Without torch the pipeline cannot be imported: say which extra to install.
    monkeypatch.setitem(sys.modules, "modeldeploy.export.pipeline", None)
    result = export(model_path("TinyMLP"), "--input-shape", "1,16", "--out", str(tmp_path))
    assert result.code == 2 and "pip install 'modeldeploy[export]'" in result.error_lines[0]


def test_native_exporter_output_is_silenced(capfd: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    # The TorchScript exporter prints graphs from C++ to fd 1/2; none of it may reach the terminal.
    result = export(model_path("CustomOp"), "--input-shape", "2,4", "--exporter", "torchscript", "--out", str(tmp_path))
    assert result.code == 1
    native = capfd.readouterr()
    assert native.out == "" and native.err == ""
