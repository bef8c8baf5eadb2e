"""Passing analysis intervals inside a step, after its first, are held in the operator's memory, not
written to status one by one.

A step costs two status writes: the one entering it (with its weight) and its first passed
interval, on which it can end, even after a restart. Every interval that changes the rollout's course
is written at once too: a Fail or an Inconclusive (they count towards a rollback or a pause), a Pass
that ends such a streak, metrics becoming unavailable or available. A further Pass only adds to a
streak of passes: it waits for the next write (the step's end at the latest) in a
:class:`HeldAnalysis`.

A restart loses only the held passes' count, which the step no longer needs, and never a Fail: each
is written before the next interval is sampled. The restarted operator finds the last written
interval as the last one, so the next one is due at once and measured from that interval's end (the
direct provider's baselines are in status; Prometheus keeps its own history).

Pure: statuses in, a decision out. The reconciler keeps the HeldAnalysis and overlays it on what it
observes next.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..api.status import AnalysisStatus, ModelDeploymentStatus

# What a passing interval changes. Anything else that differs (a streak counter, the message, the
# weight...) is written.
_PASS_FIELDS = {"passedIntervals", "lastRun", "verdict", "checks", "baselines"}


@dataclass(frozen=True)
class HeldAnalysis:
    """Analysis progress not yet written, valid while status still has what it was planned from."""

    rollout: tuple[str, int, str | None]  # revision, step, step start: the step it belongs to
    written_last_run: str | None  # status.analysis.lastRun when it was held
    analysis: AnalysisStatus


def _step_of(status: ModelDeploymentStatus) -> tuple[str, int, str | None] | None:
    progress = status.rollout
    if progress is None or progress.stage != "Steps":
        return None
    return progress.revision, progress.step, progress.step_started_at


def overlay(status: ModelDeploymentStatus, held: HeldAnalysis | None) -> ModelDeploymentStatus | None:
    """`status` with the held analysis in it; None when the held one no longer applies (the step
    changed, or a later write already has it or something newer)."""
    if held is None or status.analysis is None or _step_of(status) != held.rollout:
        return None
    if status.analysis.last_run != held.written_last_run:
        return None
    return status.model_copy(update={"analysis": held.analysis})


def _without(fields: set[str], value: Mapping[str, Any] | None) -> dict[str, Any]:
    return {key: item for key, item in (value or {}).items() if key not in fields}


def hold(written: Mapping[str, Any] | None, planned: ModelDeploymentStatus, verdicts: Sequence[str],
         sends_events: bool) -> HeldAnalysis | None:
    """The analysis to hold instead of writing `planned` over `written` (the status as the API has
    it), or None when this round must write. A round that analysed nothing keeps holding what it
    was given (its planned status has the overlay in it)."""
    if sends_events or list(verdicts) not in ([], ["Pass"]) or planned.analysis is None:
        return None
    step = _step_of(planned)
    written_status = dict(written or {})
    written_analysis = written_status.pop("analysis", None)
    if step is None or written_analysis is None or not written_analysis.get("passedIntervals"):
        return None  # the step's first pass is written: the step can end on it after a restart
    new = planned.to_dict()
    new_analysis = new.pop("analysis")
    if new_analysis == written_analysis:
        return None  # nothing to hold: the status as written is the status planned
    if new != written_status or _without(_PASS_FIELDS, new_analysis) != _without(_PASS_FIELDS, written_analysis):
        return None
    return HeldAnalysis(step, written_analysis.get("lastRun"), planned.analysis)
