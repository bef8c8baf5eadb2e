"""`kubectl modeldeploy status`: the readable progress report and the one-line summaries (issue 13, item 8)."""

from __future__ import annotations

import copy
from typing import Any

from modeldeploy.cli.report import format_status, format_summary

ROLLBACK = ("revision resnet-b rolled back: 2 failed intervals in a row: successRate 0.8012 < min 0.99 "
            "(stable 1, n=812/790, p=1.2e-40)")
REJECTION = "2 failed intervals in a row: successRate 80.12% < min 99.00% (stable 100.00%, n=812/790, p=1.2e-40)"

PROGRESSING: dict[str, Any] = {
    "metadata": {"name": "resnet", "namespace": "ml", "creationTimestamp": "2026-01-01T00:00:00Z"},
    "spec": {"rollout": {"steps": [{"weight": 10, "pause": "1m"}, {"weight": 50, "pause": "2m"}],
                         "analysis": {"checks": [{"metric": "successRate", "min": 0.99},
                                                 {"metric": "latencyP99", "maxRatio": 2},
                                                 {"name": "errors", "query": "sum(x)", "max": 3}]}}},
    "status": {
        "phase": "Progressing", "message": "step 2/2: 50% to resnet-b", "stableRevision": "resnet-a",
        "canaryRevision": "resnet-b", "canaryWeight": 50, "replicas": 2, "readyReplicas": 1,
        "rollout": {"revision": "resnet-b", "startedAt": "2026-01-01T00:00:00Z", "stage": "Steps", "step": 1},
        "analysis": {"verdict": "Pass", "consecutiveFailures": 1, "lastRun": "2026-01-01T00:00:07.123456Z",
                     "checks": [{"name": "successRate", "canary": 0.9991, "stable": 1, "canarySamples": 812,
                                 "stableSamples": 790, "verdict": "Pass"},
                                {"name": "latencyP99", "canary": 0.004292, "stable": 0.0046, "canarySamples": 812,
                                 "stableSamples": 790, "verdict": "Pass"},
                                {"name": "errors", "canary": 2, "stable": None, "verdict": "Pass"}]},
        "conditions": [{"type": "Ready", "status": "False", "reason": "RolloutInProgress"}],
    },
}


def test_status_report_shows_steps_weights_and_the_analysis_table_in_units() -> None:
    text = format_status(PROGRESSING)
    assert "Phase:      Progressing  step 2/2: 50% to resnet-b" in text
    assert "Canary:     resnet-b  weight 50%" in text
    assert "Pods:       1/2 pods ready" in text
    assert "Steps:      10% for 1m | ▶ 50% for 2m" in text
    assert "Analysis:   Pass (1 failed interval in a row, last run 2026-01-01T00:00:07Z)" in text
    rows = [line.split() for line in text.splitlines() if line.startswith("  ")]
    assert rows[0] == ["CHECK", "CANARY", "STABLE", "SAMPLES", "VERDICT"]
    assert rows[1] == ["successRate", "99.91%", "100.00%", "812/790", "Pass"]  # not 0.9991 against 1
    assert rows[2] == ["latencyP99", "4.3ms", "4.6ms", "812/790", "Pass"]  # not 0.004292 seconds
    assert rows[3] == ["errors", "2", "-", "0/0", "Pass"]
    assert "Condition:  Ready=False RolloutInProgress" in text
    assert ".123456" not in text


def test_a_starting_canary_has_no_step_marker() -> None:
    starting = copy.deepcopy(PROGRESSING)
    starting["status"].update(canaryWeight=0, rollout={"revision": "resnet-b", "startedAt": "2026-01-01T00:00:00Z",
                                                       "stage": "Starting", "step": 0})
    text = format_status(starting)
    assert "▶" not in text
    assert "Steps:      10% for 1m | 50% for 2m  (canary starting: no traffic yet)" in text
    assert "weight 0%" in text


def test_a_step_whose_traffic_is_not_shifted_yet_has_no_marker() -> None:
    entered = copy.deepcopy(PROGRESSING)
    entered["status"].update(canaryWeight=0, rollout={"revision": "resnet-b", "startedAt": "2026-01-01T00:00:00Z",
                                                      "stage": "Steps", "step": 0})
    text = format_status(entered)
    assert "Steps:      10% for 1m | 50% for 2m  (step 1: traffic not shifted to the canary yet)" in text, text
    shifted = copy.deepcopy(entered)
    shifted["status"]["canaryWeight"] = 10
    assert "Steps:      ▶ 10% for 1m | 50% for 2m\n" in format_status(shifted)


def test_the_rollback_reason_is_printed_once() -> None:
    rolled_back = copy.deepcopy(PROGRESSING)
    rolled_back["status"].update(
        phase="RolledBack", message=ROLLBACK, canaryRevision=None, canaryWeight=0, rollout=None,
        rejectedRevisions=[{"revision": "resnet-b", "specHash": "b", "reason": "AnalysisFailed",
                            "message": REJECTION, "at": "2026-01-01T00:01:02.654321Z"}],
        conditions=[{"type": "Ready", "status": "True", "reason": "AnalysisFailed", "message": ROLLBACK},
                    {"type": "Stalled", "status": "True", "reason": "AnalysisFailed", "message": ROLLBACK}])
    text = format_status(rolled_back)
    assert text.count("successRate 80.12% < min 99.00%") == 1, text
    assert "Rejected:   resnet-b AnalysisFailed at 2026-01-01T00:01:02Z" in text
    assert "Steps:" not in text  # no canary, no steps


def test_an_older_rejection_keeps_its_own_message() -> None:
    healthy = copy.deepcopy(PROGRESSING)
    healthy["status"].update(phase="Healthy", message="revision resnet-c is serving", canaryRevision=None,
                             rejectedRevisions=[{"revision": "resnet-b", "specHash": "b", "reason": "AnalysisFailed",
                                                 "message": REJECTION, "at": "2026-01-01T00:01:02Z"}])
    assert f"Rejected:   resnet-b AnalysisFailed at 2026-01-01T00:01:02Z: {REJECTION}" in format_status(healthy)


def test_one_summary_line_per_model_deployment() -> None:
    other = {"metadata": {"name": "bert", "namespace": "nlp", "creationTimestamp": "2026-01-01T00:00:00Z"},
             "status": {"phase": "Healthy", "stableRevision": "bert-1", "replicas": 3, "readyReplicas": 3,
                        "message": "revision bert-1 is serving"}}
    lines = format_summary([PROGRESSING, other], all_namespaces=True).splitlines()
    assert lines[0].split() == ["NAMESPACE", "NAME", "PHASE", "STABLE", "CANARY", "WEIGHT", "READY", "AGE",
                                "MESSAGE"]
    assert lines[1].split()[:7] == ["ml", "resnet", "Progressing", "resnet-a", "resnet-b", "50%", "1/2"]
    assert lines[2].split()[:7] == ["nlp", "bert", "Healthy", "bert-1", "-", "-", "3/3"]
    assert lines[2].endswith("revision bert-1 is serving")
    assert format_summary([other], all_namespaces=False).splitlines()[0].split()[0] == "NAME"
