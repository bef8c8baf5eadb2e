"""Shape strings and the --input-* flag combinations."""

from __future__ import annotations

import numpy as np
import pytest

from modeldeploy.export.errors import ExportError, one_line
from modeldeploy.export.inputs import build_specs, parse_shape, random_inputs


@pytest.mark.parametrize("text", ["1,3,32,32", "1x3x32x32", "[1, 3, 32, 32]", " 1,3,32,32 "])
def test_parse_shape(text: str) -> None:
    assert parse_shape(text) == (1, 3, 32, 32)


@pytest.mark.parametrize("text", ["", "a,b", "1,0", "1,-3", "1.5,2", ",", "1,x16", "1,,3", "2x"])
def test_bad_shape(text: str) -> None:
    with pytest.raises(ExportError, match="bad input shape"):
        parse_shape(text)


def test_build_specs_defaults_and_names() -> None:
    specs = build_specs(["2,5", "2,1"], ["int64", "float32"], [], ["tokens"])
    assert [(s.name, s.shape, s.dtype) for s in specs] == [("tokens", (2, 5), "int64"), ("input_1", (2, 1), "float32")]
    assert [s.dtype for s in build_specs(["1,4", "1,2"], ["float16"], [], [])] == ["float16", "float16"]


@pytest.mark.parametrize(
    ("shapes", "dtypes", "names", "message"),
    [
        ([], [], [], "no example input"),
        (["1,4", "1,4"], ["float32"] * 3, [], "--input-dtype values"),
        (["1,4"], ["complex64"], [], "unsupported --input-dtype"),
        (["1,4"], [], ["a", "b"], "--input-name values"),
        (["1,4", "1,4"], [], ["a", "a"], "unique"),
        (["1,4", "2,4"], [], [], "batch"),
    ],
)
def test_build_specs_errors(shapes: list[str], dtypes: list[str], names: list[str], message: str) -> None:
    with pytest.raises(ExportError, match=message):
        build_specs(shapes, dtypes, names, [])


def test_random_inputs_dtypes_and_batch() -> None:
    specs = build_specs(["1,3", "1,2", "1,1"], ["float32", "int64", "bool"], [], [])
    arrays = random_inputs(specs, 4, np.random.default_rng(0))
    assert [a.shape for a in arrays] == [(4, 3), (4, 2), (4, 1)]
    assert [a.dtype for a in arrays] == [np.float32, np.int64, np.bool_]


def test_one_line_strips_colour_and_newlines() -> None:
    assert one_line("\x1b[96mstep\x1b[0m 1\n\n  of 3") == "step 1 of 3"
    assert len(one_line("x" * 1000)) == 300
