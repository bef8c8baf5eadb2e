"""Pure gate comparisons: signatures (names, dtypes, dynamic dims) and smoke-test outputs."""

from __future__ import annotations

from modeldeploy.rollout.gates import output_differences, signature_differences


def meta(dtype: str = "FP32", shape: list[int] | None = None, output: str = "output") -> dict:  # type: ignore[type-arg]
    return {"name": "m", "inputs": [{"name": "input", "datatype": dtype, "shape": shape or [-1, 4]}],
            "outputs": [{"name": output, "datatype": "FP32", "shape": [-1, 3]}]}


def test_identical_signatures_pass() -> None:
    assert signature_differences(meta(), meta()) == []


def test_dtype_shape_and_name_changes_are_named() -> None:
    assert signature_differences(meta(dtype="FP16"), meta()) == ["input 'input' datatype FP16 != stable FP32"]
    assert signature_differences(meta(shape=[8, 4]), meta()) == ["input 'input' shape [8, 4] != stable [-1, 4]"]
    assert signature_differences(meta(output="logits"), meta()) == [
        "output 'output' is missing in the canary", "output 'logits' is new in the canary"]


def test_outputs_within_tolerance_pass_and_beyond_fail() -> None:
    stable = {"outputs": [{"name": "y", "data": [[1.0, 2.0], [3.0, 4.0]]}]}
    close = {"outputs": [{"name": "y", "data": [[1.0005, 2.0], [3.0, 4.0]]}]}
    far = {"outputs": [{"name": "y", "data": [[1.1, 2.0], [3.0, 4.0]]}]}
    assert output_differences(close, stable, 1e-3) == []
    assert output_differences(far, stable, 1e-3) == ["output 'y' differs from stable by 0.1 > tolerance 0.001"]
    assert output_differences({"outputs": []}, stable, 1e-3) == ["outputs [] != stable ['y']"]


def test_a_malformed_golden_request_says_what_is_wrong_with_it() -> None:
    import pytest

    from modeldeploy.gates import BadGoldenRequest, golden_request

    good = '{"inputs": [{"name": "x", "shape": [1, 2], "datatype": "FP32", "data": [1, 2]}]}'
    assert golden_request("golden", "a.json", good)["inputs"][0]["name"] == "x"
    cases = {
        '{"inputs": [': "ConfigMap golden key k is not JSON: Expecting value: line 1 column 13",
        "[1, 2]": "must be a JSON object (an inference request), not list",
        '{"input": []}': 'needs "inputs": a non-empty list of tensors',
        '{"inputs": [{"name": "x", "data": [1]}]}': "inputs[0] lacks shape, datatype",
    }
    for text, expected in cases.items():
        with pytest.raises(BadGoldenRequest) as error:
            golden_request("golden", "k", text)
        assert expected in str(error.value), str(error.value)
