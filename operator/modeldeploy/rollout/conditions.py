"""kstatus conditions (Ready, Reconciling, Stalled) plus Available and RolloutProgressing.

Flux, Argo CD and `kubectl wait` read these; a condition's lastTransitionTime only moves when
its status flips, so a resync with nothing new writes nothing.
"""

from __future__ import annotations

from ..api.status import Condition, Phase

CONDITION_TYPES = ("Ready", "Reconciling", "Stalled", "Available", "RolloutProgressing")


def upsert(conditions: list[Condition], new: Condition) -> list[Condition]:
    out: list[Condition] = []
    for condition in conditions:
        if condition.type == new.type:
            if condition.status == new.status:
                new = new.model_copy(update={"last_transition_time": condition.last_transition_time})
            continue
        out.append(condition)
    out.append(new)
    order = {name: index for index, name in enumerate(CONDITION_TYPES)}
    return sorted(out, key=lambda condition: order.get(condition.type, len(order)))


def for_phase(
    conditions: list[Condition],
    *,
    phase: Phase,
    reason: str,
    message: str,
    available: bool,
    generation: int,
    now: str,
    rollout_reason: str | None = None,
) -> list[Condition]:
    """The full condition set for a phase. `reason` names why (InvalidSpec, ProgressDeadline, ...)."""

    def make(kind: str, status: bool, why: str, text: str = "") -> Condition:
        return Condition(type=kind, status="True" if status else "False", reason=why, message=text,
                         last_transition_time=now, observed_generation=generation)

    ready = phase == "Healthy"
    reconciling = phase in ("Pending", "Progressing", "Paused")
    stalled = phase in ("RolledBack", "Failed")
    updates = [
        make("Ready", ready, reason, message),
        make("Reconciling", reconciling, reason if reconciling else "Idle", message if reconciling else ""),
        make("Stalled", stalled, reason if stalled else "Idle", message if stalled else ""),
        make("Available", available, "StableServing" if available else "NoReadyStable"),
        make("RolloutProgressing", phase in ("Progressing", "Paused"), rollout_reason or reason,
             message if phase in ("Progressing", "Paused") else ""),
    ]
    for condition in updates:
        conditions = upsert(conditions, condition)
    return conditions
