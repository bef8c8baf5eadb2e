"""An in-memory Kubernetes API server with the semantics an operator depends on.

It subclasses kmock's ``KubernetesEmulator`` for request parsing, API discovery and the kmock
DSL for non-object URLs, but serves every object request (``/api(s)/.../<plural>[/...]``) itself,
because the stock emulator is too naive for an operator (no resourceVersions, no conflicts, no
status subresource, no selectors, no garbage collection). What it adds:

- ``metadata.uid``, ``creationTimestamp``, ``generation`` (bumped when anything outside metadata
  and status changes) and ``resourceVersion`` from one global counter, bumped on every real
  change; a write that changes nothing bumps nothing and emits no watch event (as the real
  server does — operators rely on this to avoid feedback loops);
- optimistic concurrency (409 ``Conflict``), 409 ``AlreadyExists``, ``generateName``;
- PATCH as ``merge-patch+json`` / ``strategic-merge-patch+json`` (both RFC 7386 here: lists
  are replaced) and ``json-patch+json`` (RFC 6902, a failed ``test`` is 422 ``Invalid``), PUT;
- status subresource: ``.../status`` writes change only ``.status``, main writes ignore it,
  status never bumps ``generation``; a minimal ``scale`` subresource for Deployments;
- label and field selectors, ``limit``/``continue``, watches that resume from a
  ``resourceVersion`` (410 ``Expired`` when too old), ``sendInitialEvents``, ``timeoutSeconds``;
- finalizers and ``deletionTimestamp``; background garbage collection by ownerReferences
  (propagation ``Background``/``Foreground``/``Orphan``), switchable with ``gc=False``;
- fault injection (:meth:`Emulator.fail_next`) and request accounting (:meth:`Emulator.counts`).

Not emulated: admission/validation against schemas, server-side apply, quantity canonicalisation,
label-selector transitions in watches (an object leaving a watch's selector sends no DELETED).

All state lives in one event loop and every mutation runs without awaiting in between, so the
store needs no lock; the thread-safe parts (fault rules, counters) are guarded by a mutex.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import copy
import dataclasses
import json
import threading
from collections.abc import Iterable, Mapping
from typing import Any

import aiohttp.web
import attrs
import kmock
from kmock._internal import apps, rendering

from modeldeploy.sandbox import mutations, selectors
from modeldeploy.sandbox.resources import ALL_VERBS, DEFAULT_RESOURCES, ResourceDecl

ObjKey = tuple[str, str | None, str]  # (resource key, namespace or None, name)

MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
JSON_PATCH = "application/json-patch+json"

# Requests whose User-Agent starts with this are sandbox actors (test "users", the pod simulator),
# not the operator: they are served normally but not counted in the request accounting.
SANDBOX_USER_AGENT = "modeldeploy-sandbox"

WRITE_VERBS = frozenset({"create", "update", "patch", "delete", "deletecollection"})
_REASONS = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    409: "Conflict",
    410: "Expired",
    415: "UnsupportedMediaType",
    422: "Invalid",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
    504: "Timeout",
}


class ApiStatusError(Exception):
    """An error answered as a ``kind: Status`` body, as the real API server does."""

    def __init__(
        self, code: int, message: str, reason: str | None = None, details: Mapping[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.code, self.message = code, message
        self.reason = reason or _REASONS.get(code, "Unknown")
        self.details = dict(details or {})

    def body(self) -> dict[str, Any]:
        return {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "details": self.details,
            "code": self.code,
        }


@dataclasses.dataclass
class _Fault:
    verb: str
    resource: str | None
    status: int
    count: int
    namespace: str | None
    name: str | None
    message: str | None

    def matches(self, verb: str, resource: str, namespace: str | None, name: str | None) -> bool:
        return (
            self.verb == verb
            and self.resource in (None, resource)
            and self.namespace in (None, namespace)
            and self.name in (None, name)
        )


@dataclasses.dataclass(eq=False)  # hashed by identity: kept in sets of live watches
class _Watch:
    queue: asyncio.Queue[dict[str, Any] | None]
    namespace: str | None
    name: str | None
    labels: selectors.Predicate
    fields: selectors.Predicate

    def wants(self, obj: Mapping[str, Any]) -> bool:
        meta = obj.get("metadata") or {}
        return (
            (self.namespace is None or meta.get("namespace") == self.namespace)
            and (self.name is None or meta.get("name") == self.name)
            and self.labels(obj)
            and self.fields(obj)
        )


@attrs.define(kw_only=True)
class Emulator(kmock.KubernetesEmulator):
    """The Kubernetes API emulator. Serve it with :func:`~.emulator_server.running_emulator`."""

    gc: bool = True  # ownerReference garbage collection, as the cluster's GC controller does
    gc_delay: float = 0.0  # seconds before a GC sweep (the real GC is asynchronous too)
    declared: Iterable[ResourceDecl] = DEFAULT_RESOURCES
    watch_history: int = 10_000  # events kept for resuming watches; older resourceVersions → 410
    max_recorded_requests: int = 10_000  # kmock keeps every request for assertions; cap the memory

    _decls: dict[str, ResourceDecl] = attrs.field(factory=dict, init=False)
    _store: dict[ObjKey, dict[str, Any]] = attrs.field(factory=dict, init=False)
    _rv: int = attrs.field(default=0, init=False)
    _log: collections.deque[tuple[int, str, dict[str, Any]]] = attrs.field(factory=collections.deque, init=False)
    _compacted_rv: int = attrs.field(default=0, init=False)
    _watches: dict[str, set[_Watch]] = attrs.field(factory=lambda: collections.defaultdict(set), init=False)
    _mutex: threading.Lock = attrs.field(factory=threading.Lock, init=False)
    _faults: list[_Fault] = attrs.field(factory=list, init=False)
    _counts: collections.Counter[tuple[str, str]] = attrs.field(factory=collections.Counter, init=False)
    _gc_wakeup: asyncio.Event | None = attrs.field(default=None, init=False)
    _gc_task: asyncio.Task[None] | None = attrs.field(default=None, init=False)

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        for decl in self.declared:
            self.declare(decl)

    def declare(self, decl: ResourceDecl) -> None:
        """Serve one more resource (e.g. a CRD of a test); also shown in API discovery."""
        self._decls[decl.key] = decl
        self.resources[decl.key] = kmock.ResourceInfo(
            kind=decl.kind,
            namespaced=decl.namespaced,
            singular=decl.kind.lower(),
            verbs=set(ALL_VERBS),
            shortnames=set(decl.shortnames),
            subresources=set(decl.subresources),
        )

    def decl(self, resource: str) -> ResourceDecl:
        """Find a declared resource by key (``apps/v1/deployments``), plural or short name."""
        if resource in self._decls:
            return self._decls[resource]
        for decl in self._decls.values():
            if resource in (decl.plural, decl.qualified, *decl.shortnames):
                return decl
        raise KeyError(f"resource {resource!r} is not declared in the emulator")

    def decl_for_kind(self, api_version: str, kind: str) -> ResourceDecl:
        for decl in self._decls.values():
            if decl.api_version == api_version and decl.kind == kind:
                return decl
        raise KeyError(f"{api_version}/{kind} is not declared in the emulator")

    # ----- lifecycle (called by the server runner inside the loop) -----

    async def start_background(self) -> None:
        self._gc_wakeup = asyncio.Event()
        self._gc_task = asyncio.create_task(self._gc_loop(), name="emulator-gc")

    async def stop_background(self) -> None:
        """End all watch streams (else the HTTP server waits for them) and stop the GC."""
        for watches in self._watches.values():
            for watch in watches:
                watch.queue.put_nowait(None)
        if self._gc_task is not None:
            self._gc_task.cancel()
            await asyncio.gather(self._gc_task, return_exceptions=True)

    # ----- fault injection & accounting (thread-safe) -----

    def fail_next(
        self,
        verb: str,
        resource: str | None = None,
        status: int = 500,
        count: int = 1,
        *,
        namespace: str | None = None,
        name: str | None = None,
        message: str | None = None,
    ) -> None:
        """Make the next ``count`` matching requests fail with ``status`` without applying them.

        ``verb``: create/update/patch/delete (also get/list/watch); ``resource``: the exact key as
        counted, e.g. ``apps/v1/deployments`` or ``serving.modeldeploy.dev/v1alpha1/modeldeployments/status``
        (None = any resource).
        """
        with self._mutex:
            self._faults.append(_Fault(verb, resource, status, count, namespace, name, message))

    def counts(self) -> dict[tuple[str, str], int]:
        """Requests served by (verb, resource[/subresource]); sandbox actors are not counted."""
        with self._mutex:
            return dict(self._counts)

    def writes(self, resource: str | None = None) -> int:
        """Write requests (create/update/patch/delete) in total, or of one resource incl. its subresources."""
        with self._mutex:
            return sum(
                n
                for (verb, res), n in self._counts.items()
                if verb in WRITE_VERBS and (resource is None or res == resource or res.startswith(resource + "/"))
            )

    def reset_counts(self) -> None:
        with self._mutex:
            self._counts.clear()

    def _take_fault(self, verb: str, resource: str, namespace: str | None, name: str | None) -> _Fault | None:
        with self._mutex:
            for fault in self._faults:
                if fault.matches(verb, resource, namespace, name):
                    fault.count -= 1
                    if fault.count <= 0:
                        self._faults.remove(fault)
                    return fault
        return None

    # ----- direct store access (loop thread only; for the runner's accessors & assertions) -----

    def stored(self, resource: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        decl = self.decl(resource)
        obj = self._store.get((decl.key, namespace if decl.namespaced else None, name))
        return copy.deepcopy(obj) if obj is not None else None

    @property
    def resource_version(self) -> int:
        return self._rv

    # ----- request dispatching -----

    async def _handle(self, request: rendering.Request) -> aiohttp.web.StreamResponse:
        if len(self._requests) > self.max_recorded_requests:
            del self._requests[: len(self._requests) - self.max_recorded_requests]
        if request.resource is None or request.resource.plural is None:
            # Discovery (/api, /apis/<group>/<version>, /version) and user-defined kmock reactions.
            return await apps.RawHandler._handle(self, request)
        try:
            return await self._serve(request)
        except ApiStatusError as e:
            return aiohttp.web.json_response(e.body(), status=e.code)

    async def _serve(self, request: rendering.Request) -> aiohttp.web.StreamResponse:
        assert request.resource is not None
        key = f"{request.resource.group}/{request.resource.version}/{request.resource.plural}".lstrip("/")
        decl = self._decls.get(key)
        if decl is None:
            raise ApiStatusError(404, "the server could not find the requested resource")
        if request.namespace is not None and not decl.namespaced:
            raise ApiStatusError(404, "the server could not find the requested resource")
        sub = request.subresource
        if sub is not None and sub not in decl.subresources:
            raise ApiStatusError(404, "the server could not find the requested resource")
        verb = _verb(request)
        label = f"{decl.key}/{sub}" if sub else decl.key
        if not _header(request, "User-Agent").startswith(SANDBOX_USER_AGENT):
            with self._mutex:
                self._counts[verb, label] += 1
        if (fault := self._take_fault(verb, label, request.namespace, request.name)) is not None:
            raise ApiStatusError(fault.status, fault.message or f"injected failure of {verb} {label}")

        ns = request.namespace if decl.namespaced else None
        if verb == "watch":
            return await self._watch(request, decl, ns)
        if verb == "list":
            return _json(self._list(request, decl, ns))
        if verb == "create":
            return _json(self._create(decl, ns, _body(request)), 201)
        if verb == "deletecollection":
            return _json(self._delete_collection(request, decl, ns))
        assert request.name is not None
        key3: ObjKey = (decl.key, ns, request.name)
        if verb == "get":
            obj = self._get(decl, key3)
            return _json(_scale_view(obj) if sub == "scale" else obj)
        if verb == "update":
            return _json(self._update(decl, key3, sub, _body(request)))
        if verb == "patch":
            return _json(self._patch(decl, key3, sub, _body(request), _header(request, "Content-Type")))
        if verb == "delete":
            options = _body(request, required=False) or {}
            policy = options.get("propagationPolicy") or request.params.get("propagationPolicy") or "Background"
            return _json(self._delete(decl, key3, policy, options.get("preconditions") or {}))
        raise ApiStatusError(405, f"the server does not allow this method on the requested resource ({verb})")

    # ----- reads -----

    def _get(self, decl: ResourceDecl, key: ObjKey) -> dict[str, Any]:
        obj = self._store.get(key)
        if obj is None:
            raise ApiStatusError(
                404,
                f'{decl.qualified} "{key[2]}" not found',
                details={"name": key[2], "group": decl.group, "kind": decl.plural},
            )
        return copy.deepcopy(obj)

    def _select(self, request: rendering.Request, decl: ResourceDecl, ns: str | None) -> list[dict[str, Any]]:
        try:
            labels = selectors.parse_label_selector(request.params.get("labelSelector"))
            fields = selectors.parse_field_selector(request.params.get("fieldSelector"))
        except selectors.SelectorError as e:
            raise ApiStatusError(400, str(e)) from e
        return [
            obj
            for (res, obj_ns, _), obj in sorted(self._store.items(), key=lambda kv: (kv[0][1] or "", kv[0][2]))
            if res == decl.key and (ns is None or obj_ns == ns) and labels(obj) and fields(obj)
        ]

    def _list(self, request: rendering.Request, decl: ResourceDecl, ns: str | None) -> dict[str, Any]:
        objs = self._select(request, decl, ns)
        offset = int(request.params.get("continue") or 0)
        limit = int(request.params.get("limit") or 0)
        page = objs[offset : offset + limit] if limit > 0 else objs[offset:]
        more = limit > 0 and offset + limit < len(objs)
        # As in the real API, list items carry no apiVersion/kind: the list itself does.
        items = [{k: copy.deepcopy(v) for k, v in obj.items() if k not in ("apiVersion", "kind")} for obj in page]
        metadata: dict[str, Any] = {"resourceVersion": str(self._rv)}
        if more:
            metadata.update({"continue": str(offset + limit), "remainingItemCount": len(objs) - offset - limit})
        return {"apiVersion": decl.api_version, "kind": f"{decl.kind}List", "metadata": metadata, "items": items}

    async def _watch(
        self, request: rendering.Request, decl: ResourceDecl, ns: str | None
    ) -> aiohttp.web.StreamResponse:
        params = request.params
        try:
            watch = _Watch(
                asyncio.Queue(),
                ns,
                request.name,
                selectors.parse_label_selector(params.get("labelSelector")),
                selectors.parse_field_selector(params.get("fieldSelector")),
            )
        except selectors.SelectorError as e:
            raise ApiStatusError(400, str(e)) from e
        since = params.get("resourceVersion") or ""
        backlog: list[dict[str, Any]]
        # The backlog and the registration happen without awaiting: no event can fall in between.
        if since in ("", "0") or params.get("sendInitialEvents") == "true":
            backlog = [{"type": "ADDED", "object": copy.deepcopy(obj)} for obj in self._select(request, decl, ns)]
            if params.get("sendInitialEvents") == "true":
                backlog.append(
                    {
                        "type": "BOOKMARK",
                        "object": {
                            "apiVersion": decl.api_version,
                            "kind": decl.kind,
                            "metadata": {
                                "resourceVersion": str(self._rv),
                                "annotations": {"k8s.io/initial-events-end": "true"},
                            },
                        },
                    }
                )
        elif not since.isdigit() or int(since) < self._compacted_rv:
            backlog = [
                {
                    "type": "ERROR",
                    "object": ApiStatusError(410, f"too old resource version: {since} ({self._compacted_rv})").body(),
                }
            ]
            watch.queue.put_nowait(None)
        else:
            backlog = [event for rv, res, event in self._log if res == decl.key and rv > int(since)]
        self._watches[decl.key].add(watch)

        response = aiohttp.web.StreamResponse(headers={"Content-Type": "application/json"})
        raw_request = request._raw_request
        assert raw_request is not None
        timeout = float(params["timeoutSeconds"]) if params.get("timeoutSeconds") else None
        try:
            await response.prepare(raw_request)
            for event in backlog:
                if event["type"] in ("ERROR", "BOOKMARK") or watch.wants(event["object"]):
                    await response.write(json.dumps(event).encode() + b"\n")
            async with asyncio.timeout(timeout):
                while (live := await watch.queue.get()) is not None:
                    if watch.wants(live["object"]):
                        await response.write(json.dumps(live).encode() + b"\n")
        except (TimeoutError, ConnectionError):
            pass  # the server-side timeout or a client gone: just end the stream
        finally:
            self._watches[decl.key].discard(watch)
        with contextlib.suppress(ConnectionError):
            await response.write_eof()
        return response

    # ----- writes -----

    def _create(self, decl: ResourceDecl, ns: str | None, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise ApiStatusError(400, "the body of the request must be a JSON object")
        obj = copy.deepcopy(body)
        meta = obj["metadata"] = dict(obj.get("metadata") or {})
        if decl.namespaced:
            body_ns = meta.get("namespace")
            if ns is not None and body_ns not in (None, ns):
                raise ApiStatusError(
                    400, "the namespace of the provided object does not match the namespace sent on the request"
                )
            ns = meta["namespace"] = ns or body_ns or "default"
        else:
            meta.pop("namespace", None)
        if not meta.get("name"):
            if not meta.get("generateName"):
                raise ApiStatusError(
                    422, f"{decl.kind} is invalid: metadata.name: Required value: name or generateName is required"
                )
            meta["name"] = mutations.generate_name(meta["generateName"])
        key: ObjKey = (decl.key, ns, meta["name"])
        if key in self._store:
            raise ApiStatusError(
                409,
                f'{decl.qualified} "{meta["name"]}" already exists',
                reason="AlreadyExists",
                details={"name": meta["name"], "group": decl.group, "kind": decl.plural},
            )
        obj["apiVersion"], obj["kind"] = decl.api_version, decl.kind
        for field in ("resourceVersion", *mutations.SYSTEM_METADATA):
            meta.pop(field, None)
        meta.update(uid=mutations.new_uid(), creationTimestamp=mutations.now_rfc3339(), generation=1)
        if decl.has_status:
            obj.pop("status", None)  # the status subresource ignores status on create, too
        self._commit(key, obj, "ADDED")
        if meta.get("ownerReferences"):
            self._wake_gc()
        return copy.deepcopy(obj)

    def _update(self, decl: ResourceDecl, key: ObjKey, sub: str | None, body: Any) -> dict[str, Any]:
        old = self._get(decl, key)
        if not isinstance(body, dict):
            raise ApiStatusError(400, "the body of the request must be a JSON object")
        if sub == "scale":
            return _scale_view(self._write(decl, key, old, _from_scale(old, body), sub))
        if (body.get("metadata") or {}).get("name") not in (None, key[2]):
            raise ApiStatusError(400, "the name of the object does not match the name on the URL")
        return self._write(decl, key, old, copy.deepcopy(body), sub)

    def _patch(self, decl: ResourceDecl, key: ObjKey, sub: str | None, patch: Any, content_type: str) -> dict[str, Any]:
        old = self._get(decl, key)
        base = _scale_view(old) if sub == "scale" else old
        media = content_type.split(";")[0].strip().lower()
        try:
            if media in (MERGE_PATCH, STRATEGIC_MERGE_PATCH):
                if not isinstance(patch, dict):
                    raise mutations.PatchError("a merge patch must be a JSON object")
                new = mutations.merge_patch(base, patch)
            elif media == JSON_PATCH:
                new = mutations.json_patch(base, patch)
            else:
                raise ApiStatusError(
                    415,
                    f"the body of the request was in an unknown format - accepted media "
                    f"types include: {JSON_PATCH}, {MERGE_PATCH}, {STRATEGIC_MERGE_PATCH}",
                )
        except mutations.PatchError as e:
            raise ApiStatusError(422, str(e)) from e
        if sub == "scale":
            _check_rv(decl, key, base, new)
            return _scale_view(self._write(decl, key, old, _from_scale(old, new), sub))
        return self._write(decl, key, old, new, sub)

    def _write(
        self, decl: ResourceDecl, key: ObjKey, old: dict[str, Any], new: dict[str, Any], sub: str | None
    ) -> dict[str, Any]:
        """The common tail of PUT and PATCH: concurrency, status split, system fields, no-op detection."""
        _check_rv(decl, key, old, new)
        if sub == "status":
            status = new.get("status")
            new = copy.deepcopy(old)
            new.pop("status", None)
            if status is not None:
                new["status"] = status
        elif decl.has_status and sub != "scale":
            new.pop("status", None)  # a write to the main resource ignores .status
            if "status" in old:
                new["status"] = old["status"]
        new = mutations.keep_system_fields(old, new)
        old_meta, meta = old["metadata"], new["metadata"]
        if old_meta.get("deletionTimestamp") and set(meta.get("finalizers") or ()) - set(
            old_meta.get("finalizers") or ()
        ):
            raise ApiStatusError(
                422,
                f'{decl.kind} "{key[2]}" is invalid: metadata.finalizers: Forbidden: '
                "no new finalizers can be added if the object is being deleted",
            )
        if not meta.get("finalizers"):
            meta.pop("finalizers", None)
        if mutations.same(mutations.without_rv(new), mutations.without_rv(old)):
            return old  # no change: no new resourceVersion, no watch event
        if not mutations.same(mutations.spec_part(new), mutations.spec_part(old)):
            meta["generation"] = int(old_meta.get("generation") or 0) + 1
        if meta.get("deletionTimestamp") and not meta.get("finalizers"):
            self._remove(key, new)  # the last finalizer is gone: the deletion completes now
        else:
            self._commit(key, new, "MODIFIED")
        if mutations.owner_uids(new) != mutations.owner_uids(old):
            self._wake_gc()
        return copy.deepcopy(new)

    def _delete(self, decl: ResourceDecl, key: ObjKey, policy: str, preconditions: Mapping[str, Any]) -> dict[str, Any]:
        old = self._get(decl, key)
        meta = old["metadata"]
        for field in ("uid", "resourceVersion"):
            if preconditions.get(field) not in (None, meta.get(field)):
                raise ApiStatusError(
                    409,
                    f"Precondition failed: {field} in precondition: "
                    f"{preconditions[field]}, {field} in object meta: {meta.get(field)}",
                    reason="Conflict",
                )
        if policy not in ("Background", "Foreground", "Orphan"):
            raise ApiStatusError(400, f"unsupported propagationPolicy: {policy!r}")
        return self._delete_object(key, policy)

    def _delete_object(self, key: ObjKey, policy: str = "Background") -> dict[str, Any]:
        obj = copy.deepcopy(self._store[key])
        meta = obj["metadata"]
        if policy == "Orphan":
            self._orphan_dependents(meta["uid"])
        finalizers = list(meta.get("finalizers") or [])
        if policy == "Foreground" and "foregroundDeletion" not in finalizers and self.gc:
            finalizers.append("foregroundDeletion")
        if not finalizers:
            self._remove(key, obj)
        elif not meta.get("deletionTimestamp") or finalizers != meta.get("finalizers"):
            meta.setdefault("deletionTimestamp", mutations.now_rfc3339())
            meta.setdefault("deletionGracePeriodSeconds", 0)
            meta["finalizers"] = finalizers
            self._commit(key, obj, "MODIFIED")
        self._wake_gc()
        return copy.deepcopy(obj)

    def _delete_collection(self, request: rendering.Request, decl: ResourceDecl, ns: str | None) -> dict[str, Any]:
        doomed = self._select(request, decl, ns)
        for obj in doomed:
            meta = obj["metadata"]
            self._delete_object((decl.key, meta.get("namespace"), meta["name"]))
        return {
            "apiVersion": decl.api_version,
            "kind": f"{decl.kind}List",
            "metadata": {"resourceVersion": str(self._rv)},
            "items": doomed,
        }

    def _orphan_dependents(self, uid: str) -> None:
        for key, obj in list(self._store.items()):
            if uid in mutations.owner_uids(obj):
                new = copy.deepcopy(obj)
                new["metadata"]["ownerReferences"] = [
                    ref for ref in new["metadata"]["ownerReferences"] if ref.get("uid") != uid
                ]
                if not new["metadata"]["ownerReferences"]:
                    del new["metadata"]["ownerReferences"]
                self._commit(key, new, "MODIFIED")

    # ----- the single point of change: versions, events, the kmock mirror -----

    def _commit(self, key: ObjKey, obj: dict[str, Any], event_type: str) -> None:
        self._rv += 1
        obj["metadata"]["resourceVersion"] = str(self._rv)
        self._store[key] = obj
        self._publish(key, event_type, obj)
        mirror = self.objects
        if key in mirror:
            mirror[key].create(copy.deepcopy(obj))
        else:
            mirror[key] = copy.deepcopy(obj)

    def _remove(self, key: ObjKey, obj: dict[str, Any]) -> None:
        self._rv += 1
        obj["metadata"]["resourceVersion"] = str(self._rv)
        self._store.pop(key, None)
        self._publish(key, "DELETED", obj)
        if key in self.objects:
            self.objects[key].delete()
        self._wake_gc()  # owners in foreground deletion may be waiting for this one

    def _publish(self, key: ObjKey, event_type: str, obj: dict[str, Any]) -> None:
        event = {"type": event_type, "object": copy.deepcopy(obj)}  # one snapshot, shared read-only
        self._log.append((self._rv, key[0], event))
        while len(self._log) > self.watch_history:
            self._compacted_rv = self._log.popleft()[0]
        for watch in self._watches.get(key[0], ()):
            watch.queue.put_nowait(event)

    # ----- garbage collection -----

    def _wake_gc(self) -> None:
        if self.gc and self._gc_wakeup is not None:
            self._gc_wakeup.set()

    async def _gc_loop(self) -> None:
        assert self._gc_wakeup is not None
        while True:
            await self._gc_wakeup.wait()
            await asyncio.sleep(self.gc_delay)
            self._gc_wakeup.clear()
            self.collect_garbage()

    def collect_garbage(self) -> int:
        """One GC pass to a fixed point; returns how many deletions it started. Loop thread only."""
        started = 0
        while True:
            live = {obj["metadata"]["uid"]: obj for obj in self._store.values()}
            foreground = {
                uid for uid, obj in live.items() if "foregroundDeletion" in (obj["metadata"].get("finalizers") or ())
            }
            changed = False
            for key, obj in list(self._store.items()):
                owners = mutations.owner_uids(obj)
                if (
                    key in self._store
                    and owners
                    and not obj["metadata"].get("deletionTimestamp")
                    and all(uid not in live or uid in foreground for uid in owners)
                ):
                    self._delete_object(key)
                    started += 1
                    changed = True
            dependents = {uid for obj in self._store.values() for uid in mutations.owner_uids(obj)}
            for uid in foreground - dependents:
                obj = live[uid]
                key = (
                    self.decl_for_kind(obj["apiVersion"], obj["kind"]).key,
                    obj["metadata"].get("namespace"),
                    obj["metadata"]["name"],
                )
                new = copy.deepcopy(obj)
                new["metadata"]["finalizers"] = [f for f in new["metadata"]["finalizers"] if f != "foregroundDeletion"]
                if not new["metadata"]["finalizers"]:
                    self._remove(key, new)
                else:
                    self._commit(key, new, "MODIFIED")
                changed = True
            if not changed:
                return started


def _check_rv(decl: ResourceDecl, key: ObjKey, old: Mapping[str, Any], new: Mapping[str, Any]) -> None:
    wanted = (new.get("metadata") or {}).get("resourceVersion")
    if wanted and wanted != old["metadata"].get("resourceVersion"):
        raise ApiStatusError(
            409,
            f'Operation cannot be fulfilled on {decl.qualified} "{key[2]}": the object '
            "has been modified; please apply your changes to the latest version and try again",
            reason="Conflict",
            details={"name": key[2], "group": decl.group, "kind": decl.plural},
        )


def _scale_view(obj: Mapping[str, Any]) -> dict[str, Any]:
    meta = obj["metadata"]
    return {
        "apiVersion": "autoscaling/v1",
        "kind": "Scale",
        "metadata": {
            k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp") if k in meta
        },
        "spec": {"replicas": (obj.get("spec") or {}).get("replicas", 1)},
        "status": {"replicas": (obj.get("status") or {}).get("replicas", 0)},
    }


def _from_scale(old: Mapping[str, Any], scale: Mapping[str, Any]) -> dict[str, Any]:
    new = copy.deepcopy(dict(old))
    new.setdefault("spec", {})["replicas"] = (scale.get("spec") or {}).get("replicas", 1)
    return new


def _verb(request: rendering.Request) -> str:
    method, has_name = request.method.value, request.name is not None
    if method == "GET":
        if request.params.get("watch") in ("true", "1"):
            return "watch"
        return "get" if has_name else "list"
    table = {
        ("POST", False): "create",
        ("PUT", True): "update",
        ("PATCH", True): "patch",
        ("DELETE", True): "delete",
        ("DELETE", False): "deletecollection",
    }
    return table.get((method, has_name), method.lower())


def _header(request: rendering.Request, name: str) -> str:
    for key, value in request.headers.items():
        if key.lower() == name.lower():
            return value
    return ""


def _body(request: rendering.Request, required: bool = True) -> Any:
    if not request.body:
        if required:
            raise ApiStatusError(400, "the request body is required")
        return None
    try:
        return json.loads(request.body)
    except ValueError as e:
        raise ApiStatusError(400, f"the request body is not valid JSON: {e}") from e


def _json(payload: Any, status: int = 200) -> aiohttp.web.Response:
    return aiohttp.web.json_response(payload, status=status)
