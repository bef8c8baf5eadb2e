"""Errors a reconcile could not get past, turned into status. Pure: plain data in, plain data out.

The reconciler describes each failed API call as an :class:`ApiFailure` (the API server's status,
reason and own message, and the child it was writing) or an unexpected exception by its type and
text; :func:`classify_api_failure` names it and :func:`failed_status` writes it into status:

- Stalled (``Stalled=True``, phase ``Failed``): waiting alone will not help. The API server refuses
  a child built from the spec (``InvalidSpec``), the spec needs an API the cluster does not serve
  (``CRDNotInstalled``), the operator may not write a child (``Forbidden``), or the operator has a
  bug (``OperatorError``).
- Transient (``Reconciling=True``, ``Ready=False``, phase kept): a 5xx, a timeout, a 409 on a
  child, an API server that cannot be reached (``TransientError``).

Both are retried with back-off (:func:`backoff_seconds`): an admission webhook may be fixed, a CRD
installed, RBAC granted, and a spec change wakes the operator at once anyway.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from ..api.status import MAX_RECENT_EVENTS, Condition, ModelDeploymentStatus, Phase, RecordedEvent
from .builder import iso
from .conditions import for_phase
from .model import EventRecord

# Reasons of errors a reconcile could not get past, besides InvalidSpec (docs/troubleshooting.md).
RECONCILE_REASONS = ("CRDNotInstalled", "Forbidden", "TransientError", "OperatorError")
MAX_MESSAGE = 1024
# Seconds before retry n (0-based). Transient errors stop growing at TRANSIENT_CAP: they tend to heal.
BACKOFF_SECONDS = (1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
TRANSIENT_CAP = 30.0

# Where a field of a child comes from in the ModelDeployment's spec, so the message says what to fix.
SPEC_SOURCES: tuple[tuple[str, str, str], ...] = (
    ("Deployment", "spec.template.spec.affinity", "spec.resources.affinity"),
    ("Deployment", "spec.template.spec.nodeSelector", "spec.resources.nodeSelector"),
    ("Deployment", "spec.template.spec.tolerations", "spec.resources.tolerations"),
    ("Deployment", "spec.template.spec.runtimeClassName", "spec.resources.runtimeClassName"),
    ("Deployment", "spec.template.spec.containers[0].image", "spec.runtime.image"),
    ("Deployment", "spec.template.spec.containers[0].env", "spec.runtime.env"),
    ("Deployment", "spec.template.spec.containers[0].resources", "spec.resources"),
    ("Deployment", "spec.template.spec.initContainers[0].resources", "spec.resources"),
    ("HorizontalPodAutoscaler", "spec.behavior", "spec.autoscaling.behavior"),
    ("HorizontalPodAutoscaler", "spec.metrics", "spec.autoscaling.metrics"),
    ("HTTPRoute", "spec.hostnames", "spec.rollout.traffic.gateway.hostnames"),
    ("HTTPRoute", "spec.parentRefs", "spec.rollout.traffic.gateway.parentRefs"),
)
# APIs users install as a product, by group: named as they know them, and what to do.
KNOWN_APIS = {
    "gateway.networking.k8s.io": ("the Gateway API CRDs ({kind} {api_version}) are not installed",
                                  "install Gateway API (standard channel) or set spec.rollout.traffic.router: service"),
}
UNKNOWN_API = ("the CRD of {kind} ({api_version}) is not installed", "install it")


@dataclass(frozen=True)
class ChildRef:
    """A child object of the ModelDeployment."""

    api_version: str
    kind: str
    name: str


@dataclass(frozen=True)
class ApiFailure:
    """A failed API call, as the API server answered it."""

    status: int  # HTTP status; 0 when the API server was not reached
    reason: str  # the Status reason: Invalid, Forbidden, NotFound, ...
    message: str  # the API server's own words
    child: ChildRef | None = None  # the child being written; None: a read, or the ModelDeployment itself
    fields: tuple[str, ...] = ()  # the fields the API server named (Status details.causes)
    kind_not_served: bool = False  # a 404 because the API serves no such kind at all


@dataclass(frozen=True)
class ReconcileError:
    """What status says about an error: its reason, its message, and whether it waits for a person."""

    reason: str
    message: str
    stalled: bool


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MAX_MESSAGE else text[: MAX_MESSAGE - 1] + "…"


def spec_sources(child: ChildRef, fields: tuple[str, ...]) -> list[str]:
    """The spec fields the named child fields were rendered from, in order, without repeats."""
    found: list[str] = []
    for field in fields:
        for kind, prefix, source in SPEC_SOURCES:
            if kind == child.kind and field.startswith(prefix) and source not in found:
                found.append(source)
    return found


def _missing_api(failure: ApiFailure) -> ReconcileError:
    child = failure.child
    kind, api_version = (child.kind, child.api_version) if child else ("a kind", "an API")
    what, advice = KNOWN_APIS.get(api_version.rpartition("/")[0], UNKNOWN_API)
    return ReconcileError("CRDNotInstalled", _short(
        f"{what.format(kind=kind, api_version=api_version)}: {advice}; "
        f"the API server answered {failure.status}: {failure.message.strip()}"), stalled=True)


def classify_api_failure(failure: ApiFailure) -> ReconcileError:
    """Name an API failure, in the API server's words."""
    child = failure.child
    target = f"{child.kind} {child.name}" if child else "the ModelDeployment"
    if failure.status == 404 and failure.kind_not_served:
        return _missing_api(failure)
    if failure.status in (400, 422) and child is not None:
        sources = spec_sources(child, failure.fields)
        hint = f" (check {', '.join(sources)})" if sources else ""
        return ReconcileError("InvalidSpec", _short(
            f"the API server refused {target}{hint}: {failure.message}"), stalled=True)
    if failure.status in (400, 422):
        # Our own status write refused: the CRD and the operator disagree, a bug of ours.
        return ReconcileError("OperatorError", _short(
            f"the API server refused the operator's request ({failure.status} {failure.reason}): "
            f"{failure.message}"), stalled=True)
    if failure.status == 403:
        what = f"to write {target}" if child else "a request"
        return ReconcileError("Forbidden", _short(
            f"the API server forbade the operator {what}: {failure.message} "
            "(check the operator's RBAC and the cluster's admission policies)"), stalled=True)
    if failure.status == 0:
        return ReconcileError("TransientError", _short(
            f"the API server could not be reached or did not answer: {failure.message}"), stalled=False)
    return ReconcileError("TransientError", _short(
        f"writing {target} failed ({failure.status} {failure.reason}): {failure.message}"
        if child else f"an API request failed ({failure.status} {failure.reason}): {failure.message}"),
        stalled=False)


def unexpected(type_name: str, text: str) -> ReconcileError:
    """An exception the reconcile did not expect: a bug, never a reason to stop trying."""
    return ReconcileError("OperatorError", _short(
        f"unexpected {type_name}: {text}; the operator retries with back-off "
        "(a bug: please report it with the operator's log)"), stalled=True)


def backoff_seconds(attempt: int, error: ReconcileError) -> float:
    """Seconds before retry `attempt` (0: the first retry) after `error`."""
    delay = BACKOFF_SECONDS[min(attempt, len(BACKOFF_SECONDS) - 1)]
    return delay if error.stalled else min(delay, TRANSIENT_CAP)


def _condition(conditions: list[Condition], kind: str) -> Condition | None:
    return next((condition for condition in conditions if condition.type == kind), None)


def failed_status(previous: ModelDeploymentStatus, error: ReconcileError, *, generation: int,
                  now: datetime) -> tuple[ModelDeploymentStatus, list[EventRecord]]:
    """`previous` with `error` in phase, message and conditions, and the Event to emit (once per error).

    Nothing else of `previous` changes: what the failed reconcile planned did not all happen, and the
    next one plans again from the children as they are.
    """
    status = previous.model_copy(deep=True)
    status.observed_generation = generation
    shown_in = "Stalled" if error.stalled else "Reconciling"
    before = _condition(previous.conditions, shown_in)
    is_new = before is None or before.status != "True" or (before.reason, before.message) != (
        error.reason, error.message)
    # Every kstatus condition is rewritten for this generation, so Flux and Argo CD read it as a whole:
    # stalled -> Failed; transient -> Reconciling (Ready=False, even while the stable keeps serving:
    # Available says that), the phase staying what it was.
    status.message = error.message
    unsettled: dict[str, Phase] = {"Pending": "Pending", "Progressing": "Progressing", "Paused": "Paused"}
    shown: Phase = "Failed" if error.stalled else unsettled.get(previous.phase, "Pending")
    settled = previous.phase not in ("Pending", "Progressing", "Paused")
    if error.stalled:
        status.phase = "Failed"
    elif settled and previous.observed_generation != generation:
        # A generation that was never rolled out is not Healthy (a `phase == Healthy` wait must not pass).
        status.phase = shown = "Progressing" if previous.stable_revision else "Pending"
    status.conditions = for_phase(status.conditions, phase=shown, reason=error.reason, message=error.message,
                                  available=status.ready_replicas > 0, generation=generation, now=iso(now))
    events = [EventRecord("Warning", error.reason, error.message[:1024], iso(now))] if is_new else []
    status.recent_events = [*status.recent_events, *(
        RecordedEvent(type=event.type, reason=event.reason, message=event.message, at=event.at)
        for event in events)][-MAX_RECENT_EVENTS:]
    return status, events
