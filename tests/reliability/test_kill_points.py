"""kill -9 of the operator at 20 points of canaries (see killpoints.py): every run reaches the end of
its undisturbed twin, with every Event, no orphaned or duplicated child and never an empty endpoint.

``make test`` runs four points (an analysed step, promotion, a failed interval, rollback); the
20-point campaign is marked ``reliability`` and prints its table.
"""

from __future__ import annotations

import pytest

from modeldeploy_sandbox.cluster import LocalCluster
from modeldeploy_sandbox.sandbox import Sandbox

from .killpoints import ALL_POINTS, POINTS, VARIANTS, Campaign, Point, failures, table
from .scenario import EndpointWatch

QUICK = ["good: step 2/3 analysed", "good: promoted", "errors: first failed interval", "errors: rolled back"]


def campaign(cluster: LocalCluster, sb: Sandbox, points: list[Point], capsys: pytest.CaptureFixture[str]) -> None:
    with EndpointWatch(cluster, sb.namespace) as endpoints:
        run = Campaign(sb, endpoints)
        try:
            run.start_operator()
            run.deploy_first()
            for variant in VARIANTS:
                chosen = [p for p in points if p.variant == variant]
                if not chosen:
                    continue
                run.run(variant, None)
                for point in chosen:
                    run.run(variant, point)
        finally:
            run.close()
            with capsys.disabled():
                print(f"\nkill -9 campaign ({len(points)} points, undisturbed runs first):\n{table(run.rows)}")
    assert len(run.rows) == len(points) + len(run.references)
    assert failures(run) == []


def test_a_killed_operator_converges_at_the_key_points(
        cluster: LocalCluster, bare_sandbox: Sandbox, capsys: pytest.CaptureFixture[str]) -> None:
    campaign(cluster, bare_sandbox, [POINTS[name] for name in QUICK], capsys)


@pytest.mark.reliability
def test_a_killed_operator_converges_at_20_points(
        cluster: LocalCluster, bare_sandbox: Sandbox, capsys: pytest.CaptureFixture[str]) -> None:
    assert len(ALL_POINTS) == 20
    campaign(cluster, bare_sandbox, ALL_POINTS, capsys)
