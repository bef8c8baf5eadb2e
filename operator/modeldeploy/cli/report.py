"""What `kubectl modeldeploy status` prints: one ModelDeployment in detail, or a summary line per object.

Every number goes through :mod:`modeldeploy.formatting`: success rates as percentages, latencies as
durations, times to the second. A message is shown once: the rollback reason that is already the
phase's message is not repeated on the rejected revision's line.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..formatting import MISSING, age, count, metric_value, timestamp

LABEL_WIDTH = 12


def _row(cells: Sequence[object], widths: Sequence[int]) -> str:
    return "  ".join(str(cell).ljust(width) for cell, width in zip(cells, widths, strict=True)).rstrip()


def table(rows: Sequence[Sequence[object]]) -> list[str]:
    """Rows as left-aligned columns, two spaces apart (as kubectl prints them)."""
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
    return [_row(row, widths) for row in rows]


def _line(label: str, text: str) -> str:
    return f"{label + ':':<{LABEL_WIDTH}}{text}".rstrip()


def _check_metrics(spec: dict[str, Any]) -> dict[str, str]:
    """Check name (as status shows it) -> builtin metric, from the spec's analysis checks."""
    checks = ((spec.get("rollout") or {}).get("analysis") or {}).get("checks") or []
    return {str(c.get("name") or c.get("metric") or "custom"): str(c.get("metric")) for c in checks if c.get("metric")}


def _steps_line(spec: dict[str, Any], status: dict[str, Any]) -> str | None:
    """The steps with a marker on the current one, only while the canary really is at that step."""
    steps = (spec.get("rollout") or {}).get("steps") or []
    if not steps or not status.get("canaryRevision"):
        return None
    rollout = status.get("rollout") or {}
    stage = rollout.get("stage") or "Starting"
    # The marker means "the canary gets this step's traffic": not while it gets none yet.
    shifted = stage == "Steps" and status.get("canaryWeight", 0) > 0
    current = rollout.get("step", 0) if shifted else None
    marks = [("▶ " if index == current else "") + f"{step.get('weight')}% for {step.get('pause', '0s')}"
             for index, step in enumerate(steps)]
    suffix = {"Starting": "  (canary starting: no traffic yet)",
              "Promoting": "  (all steps passed: promoting)"}.get(stage, "")
    if stage == "Steps" and not shifted:
        suffix = f"  (step {rollout.get('step', 0) + 1}: traffic not shifted to the canary yet)"
    return " | ".join(marks) + suffix


def _analysis_lines(spec: dict[str, Any], analysis: dict[str, Any]) -> list[str]:
    checks = analysis.get("checks") or []
    if not checks:
        return []
    metrics = _check_metrics(spec)
    failures = analysis.get("consecutiveFailures", 0)
    lines = [_line("Analysis", f"{analysis.get('verdict') or MISSING} ({count(failures, 'failed interval')} in a "
                               f"row, last run {timestamp(analysis.get('lastRun'))})")]
    rows: list[Sequence[object]] = [("CHECK", "CANARY", "STABLE", "SAMPLES", "VERDICT")]
    for check in checks:
        name = str(check.get("name"))
        metric = metrics.get(name, name)
        rows.append((name, metric_value(metric, check.get("canary")), metric_value(metric, check.get("stable")),
                     f"{check.get('canarySamples', 0)}/{check.get('stableSamples', 0)}", check.get("verdict")))
    return lines + ["  " + row for row in table(rows)]


def format_status(obj: dict[str, Any]) -> str:
    """A readable progress report: revisions, steps, weights, the last analysis table, rejections."""
    status = obj.get("status") or {}
    spec = obj.get("spec") or {}
    meta = obj["metadata"]
    message = status.get("message") or ""
    lines = [_line("Name", f"{meta.get('namespace', MISSING)}/{meta['name']}"),
             _line("Phase", f"{status.get('phase', 'Pending')}  {message}"),
             _line("Stable", status.get("stableRevision") or MISSING)]
    if status.get("canaryRevision"):
        lines.append(_line("Canary", f"{status['canaryRevision']}  weight {status.get('canaryWeight', 0)}%"))
    else:
        lines.append(_line("Canary", MISSING))
    if "replicas" in status:
        lines.append(_line("Pods", f"{status.get('readyReplicas', 0)}/{count(status['replicas'], 'pod')} ready"))
    steps = _steps_line(spec, status)
    if steps:
        lines.append(_line("Steps", steps))
    lines += _analysis_lines(spec, status.get("analysis") or {})
    for rejected in status.get("rejectedRevisions") or []:
        detail = rejected.get("message") or ""
        # The latest rollback's reason usually is the phase's message already: say it once.
        shown = "" if detail and detail in message else f": {detail}"
        lines.append(_line("Rejected", f"{rejected.get('revision')} {rejected.get('reason')} at "
                                       f"{timestamp(rejected.get('at'))}{shown}"))
    for condition in status.get("conditions") or []:
        lines.append(_line("Condition", f"{condition['type']}={condition['status']} {condition.get('reason', '')}"))
    return "\n".join(lines)


def format_summary(objects: Sequence[dict[str, Any]], all_namespaces: bool) -> str:
    """One line per ModelDeployment (kubectl get's layout): phase, revisions, weight, pods, age, message."""
    header = ("NAMESPACE",) if all_namespaces else ()
    rows: list[Sequence[object]] = [(*header, "NAME", "PHASE", "STABLE", "CANARY", "WEIGHT", "READY", "AGE",
                                     "MESSAGE")]
    for obj in sorted(objects, key=lambda o: (o["metadata"].get("namespace", ""), o["metadata"]["name"])):
        meta, status = obj["metadata"], obj.get("status") or {}
        canary = status.get("canaryRevision")
        rows.append((*((meta.get("namespace", ""),) if all_namespaces else ()), meta["name"],
                     status.get("phase", "Pending"), status.get("stableRevision") or MISSING, canary or MISSING,
                     f"{status.get('canaryWeight', 0)}%" if canary else MISSING,
                     f"{status.get('readyReplicas', 0)}/{status.get('replicas', 0)}",
                     age(meta.get("creationTimestamp")), _short(status.get("message") or "")))
    return "\n".join(table(rows))


def _short(text: str, limit: int = 80) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
