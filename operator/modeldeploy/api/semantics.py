"""Checks the CRD schema and its CEL rules cannot express; the operator reports them as InvalidSpec.

Each problem names the field the way `kubectl explain` spells it, so that the Stalled condition's
message tells the user exactly what to fix.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from .promql_scope import template_problems
from .spec import Check, ModelDeploymentSpec
from .types import bound_value, parse_duration, parse_quantity

MAX_NAME_LENGTH = 57  # `<name>-<hash5>` must stay a 63-character DNS label
LATENCY_METRICS = {"latencyP99", "latencyMean", "queueTime"}
GPU_PREFIX = "nvidia.com/"


def _pydantic_problems(error: ValidationError) -> list[str]:
    problems = []
    for item in error.errors():
        where = "spec"
        for part in item["loc"]:
            where += f"[{part}]" if isinstance(part, int) else f".{part}"
        problems.append(f"{where}: {item['msg']}")
    return problems


def _name_problems(name: str) -> list[str]:
    problems = []
    if len(name) > MAX_NAME_LENGTH:
        problems.append(f"metadata.name: at most {MAX_NAME_LENGTH} characters, so that revision names "
                        f"fit in 63 (got {len(name)})")
    if not name[:1].isalpha():
        problems.append("metadata.name: must start with a letter (it names Services)")
    return problems


def _steps_problems(spec: ModelDeploymentSpec) -> list[str]:
    problems = []
    rollout = spec.rollout
    weights = [step.weight for step in rollout.steps]
    for index in range(1, len(weights)):
        if weights[index] <= weights[index - 1]:
            problems.append(f"spec.rollout.steps[{index}].weight: weights must increase step by step "
                            f"({weights[index]} after {weights[index - 1]})")
    if rollout.strategy == "canary":
        interval = parse_duration(rollout.analysis.interval)
        # The deadline is time without progress, and each step is progress: it must cover the longest
        # step, which lasts its pause (at least one interval) and, as margin, one interval more for the
        # passed interval that ends it.
        needed = max(max(parse_duration(step.pause), interval) + interval for step in rollout.steps)
        if needed > rollout.progress_deadline_seconds:
            problems.append(f"spec.rollout.progressDeadlineSeconds: {rollout.progress_deadline_seconds}s is "
                            f"shorter than the longest step needs ({needed:g}s: its pause and an analysis "
                            "interval of margin)")
        if interval < 1:
            problems.append("spec.rollout.analysis.interval: must be at least 1s")
    return problems


def _check_problems(index: int, check: Check, provider: str) -> list[str]:
    where = f"spec.rollout.analysis.checks[{index}]"
    problems = []
    if check.query is not None and provider != "prometheus":
        problems.append(f"{where}.query: custom queries need rollout.analysis.provider.type prometheus")
    if check.query is not None:  # the operator's Prometheus access must not read other namespaces
        problems += [f"{where}.query: {problem}" for problem in template_problems(check.query)]
    if check.max is not None and check.metric is not None:
        is_duration = not _is_number(check.max)
        if check.metric in LATENCY_METRICS and not is_duration:
            problems.append(f"{where}.max: {check.metric} bounds are durations like 250ms (got {check.max})")
        if check.metric == "successRate" and is_duration:
            problems.append(f"{where}.max: successRate bounds are fractions between 0 and 1 (got {check.max})")
    if check.metric == "successRate":
        for field, value in (("min", check.min), ("max", check.max)):
            if value is not None and _is_number(value) and not 0 <= float(value) <= 1:
                problems.append(f"{where}.{field}: successRate is a fraction between 0 and 1 (got {value})")
    if check.min is not None and check.max is not None and check.min > bound_value(check.max):
        problems.append(f"{where}.min: {check.min} is above max {check.max}")
    return problems


def _is_number(value: Any) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True


def _resource_problems(spec: ModelDeploymentSpec) -> list[str]:
    problems = []
    resources = spec.resources
    for kind, amounts in (("requests", resources.requests), ("limits", resources.limits)):
        for resource in amounts:
            if resource.startswith(GPU_PREFIX):
                problems.append(f"spec.resources.{kind}.{resource}: request GPUs with spec.resources.gpu")
    for resource, limit in resources.limits.items():
        request = resources.requests.get(resource)
        if request is not None and parse_quantity(limit) < parse_quantity(request):
            problems.append(f"spec.resources.limits.{resource}: {limit} is below the request {request}")
    for index, metric in enumerate(spec.autoscaling.metrics):
        if metric.type in ("cpu", "memory") and metric.type not in resources.requests:
            problems.append(f"spec.autoscaling.metrics[{index}]: {metric.type} utilization needs "
                            f"spec.resources.requests.{metric.type}")
    seen: set[str] = set()
    for index, env in enumerate(spec.runtime.env):
        if env.name in seen:
            problems.append(f"spec.runtime.env[{index}].name: duplicate variable {env.name}")
        seen.add(env.name)
    return problems


def spec_problems(name: str, raw_spec: dict[str, Any]) -> tuple[ModelDeploymentSpec | None, list[str]]:
    """Parse and check a spec. Returns the model (None if it does not parse) and every problem found."""
    problems = _name_problems(name)
    try:
        spec = ModelDeploymentSpec.model_validate(raw_spec)
    except ValidationError as error:
        return None, problems + _pydantic_problems(error)
    problems += _steps_problems(spec)
    problems += _resource_problems(spec)
    for index, check in enumerate(spec.rollout.analysis.checks):
        problems += _check_problems(index, check, spec.rollout.analysis.provider.type)
    return spec, problems
