"""Item 6 of issue 13: `modeldeploy export` given the wrong kind of file says what the file is and what to
save instead, in one `error:` line, before torch's own message (a miniz error, `pop from empty list`)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.export.fixtures_models import TinyMLP
from tests.export.helpers import Result, export, model_path

pytestmark = pytest.mark.timeout(120)

SHAPE = ("--input-shape", "1,16")


def _one_error(result: Result) -> str:
    assert result.code == 1, result
    assert "Traceback" not in result.err and result.out == "", result.err
    assert len(result.error_lines) == 1, result.err
    return result.error_lines[0]


@pytest.fixture()
def files(tmp_path: Path) -> dict[str, Path]:
    model = TinyMLP()
    paths = {name: tmp_path / name for name in ("state.pt", "whole.pt", "whole-legacy.pt", "script.pt", "notes.txt")}
    torch.save(model.state_dict(), paths["state.pt"])
    torch.save(model, paths["whole.pt"])
    torch.save(model, paths["whole-legacy.pt"], _use_new_zipfile_serialization=False)
    torch.jit.save(torch.jit.script(model), str(paths["script.pt"]))
    paths["notes.txt"].write_text("these are not weights\n")
    return paths


def test_weights_given_a_text_file(files: dict[str, Path], tmp_path: Path) -> None:
    line = _one_error(export(model_path("TinyMLP"), "--weights", str(files["notes.txt"]), *SHAPE,
                             "--out", str(tmp_path / "repo")))
    assert f"--weights {str(files['notes.txt'])!r} is not a file torch.save writes" in line, line
    assert "torch.save(model.state_dict(), PATH)" in line, line
    assert "pop from empty list" not in line and "KeyError" not in line


@pytest.mark.parametrize("name", ["whole.pt", "whole-legacy.pt"])
def test_weights_given_a_whole_pickled_model(files: dict[str, Path], tmp_path: Path, name: str) -> None:
    line = _one_error(export(model_path("TinyMLP"), "--weights", str(files[name]), *SHAPE,
                             "--out", str(tmp_path / "repo")))
    assert "holds a whole pickled model (tests.export.fixtures_models.TinyMLP), not a state_dict" in line, line
    assert "torch.save(model.state_dict(), PATH)" in line and "--torchscript" in line, line
    assert "weights_only" not in line  # torch's own explanation is not the user's problem


def test_weights_given_a_torchscript_file(files: dict[str, Path], tmp_path: Path) -> None:
    line = _one_error(export(model_path("TinyMLP"), "--weights", str(files["script.pt"]), *SHAPE,
                             "--out", str(tmp_path / "repo")))
    assert "is a TorchScript file (torch.jit.save): pass it as --torchscript FILE" in line, line


@pytest.mark.parametrize(("name", "what"), [("state.pt", "holds a state_dict"),
                                            ("whole.pt", "holds a pickled model (tests.export.fixtures_models.")])
def test_torchscript_given_a_torch_save_file(files: dict[str, Path], tmp_path: Path, name: str, what: str) -> None:
    line = _one_error(export("--torchscript", str(files[name]), *SHAPE, "--exporter", "torchscript",
                             "--out", str(tmp_path / "repo")))
    assert f"--torchscript {str(files[name])!r} was written by torch.save and {what}" in line, line
    assert "--weights FILE" in line and "torch.jit.save(torch.jit.script(model), PATH)" in line, line
    assert "miniz" not in line


def test_torchscript_given_a_text_file(files: dict[str, Path], tmp_path: Path) -> None:
    line = _one_error(export("--torchscript", str(files["notes.txt"]), *SHAPE, "--out", str(tmp_path / "repo")))
    assert "is not a TorchScript file (not a zip archive)" in line and "miniz" not in line, line


def test_the_right_files_still_export(files: dict[str, Path], tmp_path: Path) -> None:
    by_weights = export(model_path("TinyMLP"), "--weights", str(files["state.pt"]), *SHAPE, "--exporter",
                        "torchscript", "--out", str(tmp_path / "a"))
    assert by_weights.code == 0, by_weights.err
    by_script = export("--torchscript", str(files["script.pt"]), *SHAPE, "--out", str(tmp_path / "b"))
    assert by_script.code == 0, by_script.err


def test_an_existing_version_is_refused_before_any_step(files: dict[str, Path], tmp_path: Path) -> None:
    taken = tmp_path / "repo" / "tinymlp" / "1"
    taken.mkdir(parents=True)
    (taken / "model.onnx").write_bytes(b"an earlier export")
    result = export(model_path("TinyMLP"), *SHAPE, "--out", str(tmp_path / "repo"))
    line = _one_error(result)
    assert line == f"error: {taken / 'model.onnx'} already exists; pick another --version or pass --force", line
    assert result.err == line + "\n"  # no "[1/5] loading model ... failed" above it
