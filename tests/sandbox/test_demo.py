"""`modeldeploy demo --quick` (what `make demo` runs, shorter): in-process, with its exit status."""

from __future__ import annotations

import io
import re
import time

import pytest

from modeldeploy.sandbox.demo import run_demo


@pytest.mark.timeout(90)
def test_the_quick_demo_rolls_back_the_bad_canary_and_promotes_the_good_one() -> None:
    out = io.StringIO()
    started = time.monotonic()
    code = run_demo(quick=True, out=out)
    took = time.monotonic() - started
    text = out.getvalue()
    assert code == 0, text
    summary = text.split("== summary", 1)[1]
    # v2 (20 % injected errors) rolled back by the analysis, with the check and both values.
    assert re.search(r"rolled back: resnet-\w+ \(v2\): AnalysisFailed: 2 failed intervals in a row: "
                     r"successRate [\d.]+ < min 0\.99 \(stable 1", summary), text
    assert re.search(r"promoted: resnet-\w+ \(v3\) after [\d.]+s", summary), text
    assert re.search(r"final: phase Healthy, stable resnet-\w+ \(v3\)", summary), text
    assert re.search(r"regression onset .* -> 100% on stable: [\d.]+s", summary), text
    # Live progress: Events as they happened, and the per-revision load counters.
    for event in ("Event  Normal  StepStarted: step 1/2: 20% to the canary",
                  "Event  Warning AnalysisFailed: revision", "Event  Normal  Promoted: revision"):
        assert event in text, text
    assert re.search(r"load: .*v2 \d+ ok/\d+ failed", text), text
    assert "\x1b[" not in text and "\r" not in text  # plain lines: fine in a pipe or a CI log
    assert took < 75, took
