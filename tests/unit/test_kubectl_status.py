"""`kubectl modeldeploy status`: the readable progress report."""

from __future__ import annotations

from modeldeploy.cli.kubectl import format_status


def test_status_report_shows_steps_weights_and_the_analysis_table() -> None:
    obj = {
        "metadata": {"name": "resnet", "namespace": "ml"},
        "spec": {"rollout": {"steps": [{"weight": 10, "pause": "1m"}, {"weight": 50, "pause": "2m"}]}},
        "status": {
            "phase": "Progressing", "message": "step 2/2: 50% to resnet-b", "stableRevision": "resnet-a",
            "canaryRevision": "resnet-b", "canaryWeight": 50, "rollout": {"step": 1},
            "analysis": {"verdict": "Pass", "consecutiveFailures": 0, "lastRun": "2026-01-01T00:00:00Z",
                         "checks": [{"name": "successRate", "canary": 0.9991, "stable": 0.9995,
                                     "canarySamples": 812, "stableSamples": 790, "verdict": "Pass"}]},
            "conditions": [{"type": "Ready", "status": "False", "reason": "RolloutInProgress"}],
        },
    }
    text = format_status(obj)
    assert "Phase:      Progressing  step 2/2: 50% to resnet-b" in text
    assert "Canary:     resnet-b  weight 50%" in text
    assert "  10% for 1m | ▶ 50% for 2m" in text
    assert "successRate  0.9991  0.9995  812/790  Pass" in text
    assert "Condition:  Ready=False RolloutInProgress" in text
