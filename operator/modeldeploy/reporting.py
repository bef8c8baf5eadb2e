"""Status and Events on their way to the API, and errors on their way into status.

The I/O half of :mod:`modeldeploy.rollout.errors`: a failed child write is tagged with the child
(:func:`writing`), any exception of a reconcile becomes a :class:`ReconcileError`
(:func:`reconcile_error`), and :func:`write_status` writes a status and its Events.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
from collections.abc import Iterator, Sequence
from typing import Any

from .api import API_VERSION, KIND
from .kubeapi import AlreadyExists, KubeApiError, KubeClient, NotFound
from .rollout.errors import ApiFailure, ChildRef, ReconcileError, classify_api_failure, unexpected
from .rollout.model import EventRecord
from .telemetry import OperatorMetrics

logger = logging.getLogger("modeldeploy")


class ChildWriteFailed(Exception):
    """The API server refused a write of one child; `error` has its answer."""

    def __init__(self, child: ChildRef, error: KubeApiError) -> None:
        super().__init__(f"{child.kind} {child.name}: {error}")
        self.child, self.error = child, error


@contextlib.contextmanager
def writing(api_version: str, kind: str, name: str) -> Iterator[None]:
    """Name the child in any API error of the block, so status can say which child was refused."""
    try:
        yield
    except KubeApiError as error:
        raise ChildWriteFailed(ChildRef(api_version, kind, name), error) from error


def api_failure(error: KubeApiError, child: ChildRef | None = None) -> ApiFailure:
    """The API server's answer as plain data for the planner's classification."""
    body = error.body if isinstance(error.body, dict) else {}
    causes = (body.get("details") or {}).get("causes") or []
    return ApiFailure(status=error.status, reason=error.reason, message=error.message, child=child,
                      fields=tuple(str(cause["field"]) for cause in causes if cause.get("field")),
                      kind_not_served=isinstance(error, NotFound) and error.kind_not_served)


def reconcile_error(exc: BaseException) -> ReconcileError:
    """What status says about an exception that ended a reconcile."""
    if isinstance(exc, ChildWriteFailed):
        return classify_api_failure(api_failure(exc.error, exc.child))
    if isinstance(exc, KubeApiError):
        return classify_api_failure(api_failure(exc))
    return unexpected(type(exc).__name__, str(exc))


def status_patch(old: Any, new: Any) -> Any:
    """RFC 7386 patch turning `old` into `new`: keys that disappeared are sent as null."""
    if not isinstance(old, dict) or not isinstance(new, dict):
        return new
    patch = {key: None for key in old if key not in new}
    for key, value in new.items():
        if key not in old:
            patch[key] = value
        elif old[key] != value:
            patch[key] = status_patch(old[key], value)
    return patch


def write_status(kube: KubeClient, metrics: OperatorMetrics, obj: dict[str, Any], new: dict[str, Any],
                 events: Sequence[EventRecord], *, guarded: bool = True,
                 replayed: Sequence[EventRecord] = ()) -> list[EventRecord]:
    """Patch status from what `obj` holds to `new` (if different), then emit `events`; the ones
    that could not be sent are returned (status keeps them in recentEvents: they are sent later).

    guarded: the patch carries the resourceVersion read, so a concurrent write (a user's intent)
    makes it a Conflict and the caller plans again rather than overwrite it.
    """
    old = obj.get("status") or {}
    meta = obj["metadata"]
    if new != old:
        patch: dict[str, Any] = {"status": status_patch(old, new)}
        if guarded:
            patch["metadata"] = {"resourceVersion": meta.get("resourceVersion")}
        kube.merge_patch(API_VERSION, KIND, meta["namespace"], meta["name"], patch, subresource="status")
        metrics.api_writes.labels(KIND).inc()
    return send_events(kube, metrics, obj, events, replayed=replayed)


def event_key(obj: dict[str, Any], event: EventRecord) -> str:
    """The same transition of the same object always makes the same Event name."""
    identity = "|".join((str(obj["metadata"].get("uid", "")), event.at, event.reason, event.message))
    return hashlib.sha256(identity.encode()).hexdigest()[:16]


def send_events(kube: KubeClient, metrics: OperatorMetrics, obj: dict[str, Any],
                events: Sequence[EventRecord], *, replayed: Sequence[EventRecord] = ()) -> list[EventRecord]:
    """Create each Event once (an AlreadyExists means it was sent before); the unsent ones are returned.
    `replayed` ones (from status, after a restart) are looked up first: most were sent, and a read is
    cheaper than a refused write."""
    unsent: list[EventRecord] = []
    namespace = obj["metadata"]["namespace"]
    for event in [*replayed, *events]:
        key = event_key(obj, event)
        try:
            if event in replayed and kube.get("v1", "Event", namespace, f"{obj['metadata']['name']}.{key}"):
                continue
            kube.create_event(obj, event.reason, event.message, type=event.type, key=key)
            metrics.api_writes.labels("Event").inc()
        except AlreadyExists:
            pass
        except KubeApiError as error:
            logger.warning("event %s of %s/%s not sent yet: %s", event.reason, obj["metadata"]["namespace"],
                           obj["metadata"]["name"], error)
            unsent.append(event)
    return unsent
