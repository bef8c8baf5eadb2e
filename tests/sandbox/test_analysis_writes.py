"""A step costs one status write, not one per analysis interval: passing intervals inside a step are held
in the operator's memory (rollout.held) and the step still ends and promotes on them."""

from __future__ import annotations

import re

from modeldeploy_sandbox.cluster import LocalCluster
from modeldeploy_sandbox.operator_process import OperatorProcess
from modeldeploy_sandbox.sandbox import Sandbox
from modeldeploy_sandbox.waiting import wait_until

from ..operator.audit import mark, operator_calls
from .test_canary_scenarios import NAME, canary_manifest, deploy_stable


def passed_intervals(operator: OperatorProcess) -> float:
    found = re.search(r'^modeldeploy_analysis_verdicts_total\{verdict="Pass"\} (\S+)$', operator.metrics(),
                      re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def test_passing_intervals_inside_a_step_are_not_written_one_by_one(bare_sandbox: Sandbox,
                                                                    cluster: LocalCluster) -> None:
    sb = bare_sandbox
    with sb.run_operator() as operator:
        stable = deploy_stable(sb)
        with sb.loadgen(NAME, rate=60, duration=120) as load:
            sb.apply(canary_manifest(sb.artifacts.linear("resnet/2/model.onnx", seed=2),
                                     steps=[{"weight": 50, "pause": "15s"}]))
            # The rollout's first verdict changes the status message: that one is written.
            sb.wait_for(NAME, lambda s: (s.get("rollout") or {}).get("stage") == "Steps"
                        and (s.get("analysis") or {}).get("verdict") == "Pass", 60, "the first passed interval")
            since, before = mark(cluster), passed_intervals(operator)
            wait_until(lambda: passed_intervals(operator) >= before + 3, timeout=12,
                       message="three more passed intervals")
            in_step = sb.get(NAME)["status"]  # type: ignore[index]
            status_writes = [call for call in operator_calls(cluster, sb.namespace, since)
                             if call.write and call.resource == "modeldeployments"]
            promoted = sb.wait_for(NAME, lambda s: s.get("phase") == "Healthy" and s.get("stableRevision") != stable,
                                   60, "the canary promoted")
            load.stop()
    assert (in_step.get("rollout") or {}).get("stage") == "Steps", in_step  # the 3 passes were inside the step
    assert status_writes == [], status_writes  # before: one status write per interval
    assert not promoted.get("rejectedRevisions"), promoted  # the held passes ended the step
