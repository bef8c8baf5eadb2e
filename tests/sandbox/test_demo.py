"""`modeldeploy demo --quick` (what `make demo` runs, shorter): in-process, with its exit status. It starts its
own real control plane, names it, runs the two canaries, and leaves nothing behind."""

from __future__ import annotations

import io
import os
import re
import time
from pathlib import Path

import pytest

from modeldeploy_sandbox.binaries import selected_version
from modeldeploy_sandbox.demo import run_demo

DURATION = r"(\d+m)?[\d.]+s"  # modeldeploy.formatting.duration: 12.3s, 1m30s


def children() -> set[int]:
    """Child processes of this test process (zombies included: an unreaped child is a leak too)."""
    found = set()
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == os.getpid():
                found.add(int(entry.name))
        except OSError:
            continue
    return found


@pytest.mark.timeout(150)
def test_the_quick_demo_rolls_back_the_bad_canary_and_promotes_the_good_one() -> None:
    out = io.StringIO()
    before = children()
    started = time.monotonic()
    code = run_demo(quick=True, out=out)
    took = time.monotonic() - started
    text = out.getvalue()
    assert code == 0, text
    # The real components it started, with their versions, and how long the start took.
    version = re.escape(selected_version())
    assert re.search(rf"a real Kubernetes {version} control plane on https://127\.0\.0\.1:\d+, up in {DURATION}",
                     text), text
    assert re.search(r"^  etcd +\d+\.\d+\.\d+ +pid \d+", text, re.M), text
    for component in ("kube-apiserver", "kube-controller-manager", "kube-scheduler"):
        assert re.search(rf"^  {component} +{version} +pid \d+ +\d+ MiB", text, re.M), text
    assert "nodes: cpu-1 (16 cpu), cpu-2 (16 cpu), gpu-a100-1 (4x nvidia.com/gpu NVIDIA-A100-SXM4-80GB), " \
           "gpu-l4-1 (1x nvidia.com/gpu NVIDIA-L4)" in text
    assert re.search(r"operator: `kopf run -m modeldeploy.handlers` as its own process \(pid \d+\), with the "
                     r"chart's ServiceAccount and RBAC", text), text
    summary = text.split("== summary", 1)[1]
    # v2 (20 % injected errors) rolled back by the analysis, with the check and both values.
    assert re.search(r"rolled back: resnet-\w+ \(v2\): AnalysisFailed: 2 failed intervals in a row: "
                     r"successRate [\d.]+% < min 99\.00% \(stable 100\.00%", summary), text
    assert re.search(rf"promoted: resnet-\w+ \(v3\) after {DURATION}", summary), text
    assert re.search(r"final: phase Healthy, stable resnet-\w+ \(v3\)", summary), text
    assert re.search(rf"regression onset .* -> 100% on stable: {DURATION}", summary), text
    # Live progress: Events as they happened, and the per-revision load counters.
    for event in ("Event  Normal  StepStarted: step 1/2: 20% to the canary",
                  "Event  Warning AnalysisFailed: revision", "Event  Normal  Promoted: revision"):
        assert event in text, text
    assert re.search(r"load: .*v2 \d+ ok/\d+ failed", text), text
    # Output for people (issue 13, item 8): the status report says the rollback reason once, success rates
    # as percentages, times without microseconds; no step is shown as current while the canary gets 0 %.
    rejection = re.search(r"\(v2\): AnalysisFailed: (.*)", summary)
    assert rejection, summary
    report = text.split("$ kubectl modeldeploy status", 1)[1].split("== 3.", 1)[0]
    assert report.count(rejection.group(1)) == 1, report
    assert re.search(r"^      successRate +\d+\.\d\d% +100\.00% +\d+/\d+ +Fail$", report, re.M), report
    assert not re.search(r"\d\d:\d\d:\d\d\.\d", text), text
    assert not re.search(r"weight 0%  step \d+/\d+(?! \(traffic not shifted yet\))", text), text
    assert re.search(rf"stopped everything the demo started .*; {DURATION} in all\n$", text), text
    assert "\x1b[" not in text and "\r" not in text  # plain lines: fine in a pipe or a CI log
    assert children() <= before, "the demo left processes behind"  # etcd, kube-*, operator, modelserver
    assert took < 120, took
