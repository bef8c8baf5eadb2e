"""The operator's per-object metric series: one phase series per object, none left after a deletion."""

from __future__ import annotations

from modeldeploy.telemetry import OperatorMetrics


def test_deleting_a_model_deployment_removes_only_its_metric_series() -> None:
    metrics = OperatorMetrics()
    for name in ("resnet", "bert"):
        metrics.canary_weight.labels("ml", name).set(10)
        metrics.phase.labels("ml", name, "Healthy").set(1)
    metrics.forget("ml", "resnet")
    names = {sample.labels["name"] for gauge in (metrics.canary_weight, metrics.phase)
             for metric in gauge.collect() for sample in metric.samples}
    assert names == {"bert"}
    metrics.forget("ml", "never-seen")  # nothing to remove is no error


def test_a_model_deployment_has_one_phase_series_its_current_one() -> None:
    metrics = OperatorMetrics()
    metrics.set_phase("ml", "resnet", "Progressing")
    metrics.set_phase("ml", "resnet", "Healthy")
    series = {(sample.labels["phase"], sample.value) for metric in metrics.phase.collect()
              for sample in metric.samples}
    assert series == {("Healthy", 1.0)}
