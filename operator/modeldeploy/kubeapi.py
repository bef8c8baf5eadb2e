"""The operator's only Kubernetes API client: generic, dict-based, synchronous and thread-safe.

One code path serves every kind: :data:`KINDS` maps ``(apiVersion, kind)`` to the URL parts, and
every call is a plain HTTP request over the official ``kubernetes`` package's transport
(``ApiClient.call_api``: auth, TLS, proxies and kubeconfig/in-cluster loading come from there).
The operator calls it from kopf handlers via ``asyncio.to_thread``; one instance is shared by all
threads (the transport is a urllib3 pool, which is thread-safe).

    kube = KubeClient.from_environment()            # in-cluster, else ~/.kube/config
    kube = KubeClient.from_kubeconfig(path)          # one kubeconfig file (the local control plane in tests)
    kube = KubeClient(host="http://127.0.0.1:8001")  # an explicit server (e.g. `kubectl proxy`)
    obj, changed = kube.apply(desired)               # create / merge-patch only what differs / no-op

Errors are :class:`KubeApiError` (``status``, ``reason``, ``message`` from the server's Status) with
the subclasses :class:`NotFound`, :class:`Conflict` (also :class:`AlreadyExists`) and :class:`Invalid`.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime
import json
import os
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import kubernetes.client
import kubernetes.config
import urllib3

from .live_match import is_subset  # re-exported: part of the client's contract
from .ratelimit import RequestLimiter

MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"

Obj = dict[str, Any]
RequestObserver = Callable[[str, int], None]  # (verb, HTTP status or 0): for the request metrics


@dataclasses.dataclass(frozen=True)
class KindInfo:
    """Where a kind lives in the REST API."""

    group: str
    version: str
    plural: str
    namespaced: bool = True

    def path(self, namespace: str | None, name: str | None = None, subresource: str | None = None) -> str:
        parts = [f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"]
        if self.namespaced and namespace:
            parts.append(f"namespaces/{namespace}")
        parts.append(self.plural)
        if name is not None:
            parts.append(name)
            if subresource:
                parts.append(subresource)
        return "/".join(parts)


KINDS: dict[tuple[str, str], KindInfo] = {
    ("apps/v1", "Deployment"): KindInfo("apps", "v1", "deployments"),
    ("v1", "Service"): KindInfo("", "v1", "services"),
    ("v1", "ConfigMap"): KindInfo("", "v1", "configmaps"),
    ("v1", "Pod"): KindInfo("", "v1", "pods"),
    ("v1", "Event"): KindInfo("", "v1", "events"),
    ("autoscaling/v2", "HorizontalPodAutoscaler"): KindInfo("autoscaling", "v2", "horizontalpodautoscalers"),
    ("policy/v1", "PodDisruptionBudget"): KindInfo("policy", "v1", "poddisruptionbudgets"),
    ("networking.k8s.io/v1", "NetworkPolicy"): KindInfo("networking.k8s.io", "v1", "networkpolicies"),
    ("gateway.networking.k8s.io/v1", "HTTPRoute"): KindInfo("gateway.networking.k8s.io", "v1", "httproutes"),
    ("serving.modeldeploy.dev/v1alpha1", "ModelDeployment"): KindInfo(
        "serving.modeldeploy.dev", "v1alpha1", "modeldeployments"
    ),
}


class KubeApiError(Exception):
    """A failed API call. ``status`` is the HTTP status (0 when the server was unreachable)."""

    def __init__(self, status: int, reason: str, message: str, body: Any = None) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status, self.reason, self.message, self.body = status, reason, message, body


class NotFound(KubeApiError):
    @property
    def kind_not_served(self) -> bool:
        """The API serves no such kind (a CRD not installed), rather than: no such object.

        An unknown group/version answers a plain-text "404 page not found", an unknown resource of
        a known group a Status without details; a missing object (or namespace) names itself.
        """
        body = self.body
        return not isinstance(body, dict) or not (body.get("details") or {}).get("name")


class Conflict(KubeApiError):
    """409: a stale resourceVersion (optimistic concurrency) or, as :class:`AlreadyExists`, a taken name."""


class Fenced(Exception):
    """A write was stopped before it was sent: this operator may no longer write (see KubeClient.fenced)."""


class AlreadyExists(Conflict):
    pass


class Invalid(KubeApiError):
    """422: the server refused the object or the patch (incl. a failed JSON-patch ``test``)."""


def _error(status: int, raw: bytes) -> KubeApiError:
    try:
        body = json.loads(raw) if raw else None
    except ValueError:
        body = raw.decode(errors="replace")
    is_status = isinstance(body, dict) and body.get("kind") == "Status"
    reason = str(body.get("reason") or "") if is_status else ""  # type: ignore[union-attr]
    message = str(body.get("message") or "") if is_status else str(body or "")  # type: ignore[union-attr]
    if status == 404:
        return NotFound(status, reason or "NotFound", message, body)
    if status == 409:
        cls = AlreadyExists if reason == "AlreadyExists" else Conflict
        return cls(status, reason or "Conflict", message, body)
    if status == 422:
        return Invalid(status, reason or "Invalid", message, body)
    return KubeApiError(status, reason or "Error", message, body)


def kind_info(api_version: str, kind: str) -> KindInfo:
    try:
        return KINDS[api_version, kind]
    except KeyError:
        raise KeyError(f"unknown kind {api_version}/{kind}: add it to modeldeploy.kubeapi.KINDS") from None


def format_label_selector(selector: str | Mapping[str, str] | None) -> str | None:
    if selector is None or isinstance(selector, str):
        return selector or None
    return ",".join(f"{key}={value}" for key, value in sorted(selector.items())) or None


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class KubeClient:
    """See the module docstring. All methods take and return plain dicts; all are thread-safe."""

    def __init__(
        self,
        host: str | None = None,
        *,
        api_client: kubernetes.client.ApiClient | None = None,
        user_agent: str = "modeldeploy-operator",
        timeout: float = 30.0,
        discover: bool = False,
    ) -> None:
        if api_client is None:
            configuration = kubernetes.client.Configuration()
            if host is None:
                raise ValueError("give a host, an api_client, or use KubeClient.from_environment()")
            configuration.host = host
            api_client = kubernetes.client.ApiClient(configuration)
        elif host is not None:
            api_client.configuration.host = host
        api_client.user_agent = user_agent
        self._api, self._timeout = api_client, timeout
        self._write_guard: Callable[[], bool] | None = None
        self._limiter: RequestLimiter | None = None
        self._observer: RequestObserver | None = None
        # The operator knows its kinds (KINDS, which the chart's RBAC mirrors); tools may discover others.
        self._discovered: dict[tuple[str, str], KindInfo] | None = {} if discover else None

    def kind_info(self, api_version: str, kind: str) -> KindInfo:
        """Where ``kind`` lives: from :data:`KINDS`, else (``discover=True``) from the API's discovery."""
        known = KINDS.get((api_version, kind))
        if known is not None:
            return known
        if self._discovered is None:
            return kind_info(api_version, kind)  # raises, naming KINDS
        if (api_version, kind) not in self._discovered:
            path = f"/apis/{api_version}" if "/" in api_version else f"/api/{api_version}"
            group, _, version = api_version.rpartition("/")
            for resource in self.request("GET", path).get("resources") or []:
                if "/" not in resource["name"]:
                    info = KindInfo(group, version, resource["name"], bool(resource.get("namespaced")))
                    self._discovered[api_version, resource["kind"]] = info
        try:
            return self._discovered[api_version, kind]
        except KeyError:
            raise KeyError(f"the API serves no kind {kind} in {api_version}") from None

    @classmethod
    def from_environment(cls, **kwargs: Any) -> KubeClient:
        """In a pod: the service account; elsewhere: the current kubeconfig context."""
        configuration = kubernetes.client.Configuration()
        try:
            kubernetes.config.load_incluster_config(client_configuration=configuration)
        except kubernetes.config.ConfigException:
            kubernetes.config.load_kube_config(client_configuration=configuration)
        return cls(api_client=kubernetes.client.ApiClient(configuration), **kwargs)

    @classmethod
    def from_kubeconfig(cls, path: str | os.PathLike[str], context: str | None = None, **kwargs: Any) -> KubeClient:
        """A client for one kubeconfig file (its current context unless ``context`` is given)."""
        configuration = kubernetes.client.Configuration()
        kubernetes.config.load_kube_config(config_file=os.fspath(path), context=context,
                                           client_configuration=configuration)
        return cls(api_client=kubernetes.client.ApiClient(configuration), **kwargs)

    def fenced(self, stopped: Callable[[], bool]) -> KubeClient:
        """This client (sharing its connections), refusing every write once ``stopped()`` is true.

        The operator's fence: kopf stops a daemon when its operator pauses (a peer of higher priority
        took over) or exits; a reconcile already running in a thread must not write after that.
        """
        clone = copy.copy(self)
        clone._write_guard = stopped
        return clone

    @property
    def host(self) -> str:
        return str(self._api.configuration.host)

    def close(self) -> None:
        self._api.close()

    # ----- transport -----

    def limited(self, limiter: RequestLimiter | None, observer: RequestObserver | None = None) -> KubeClient:
        """This client (sharing its connections) with a client-side rate limit and a request counter."""
        clone = copy.copy(self)
        clone._limiter, clone._observer = limiter, observer
        return clone

    def _send(self, method: str, path: str, body: Any, content_type: str, query: Sequence[tuple[str, str]],
              accept: str, timeout: float | tuple[float, float]) -> Any:
        if method != "GET" and self._write_guard is not None and self._write_guard():
            raise Fenced(f"{method} {path} not sent: this operator is stopping or paused (peering)")
        if self._limiter is not None:
            self._limiter.acquire()
        headers = {"Accept": accept}
        if body is not None:
            # Always explicit: the kubernetes client otherwise guesses json-patch for PATCH bodies.
            headers["Content-Type"] = content_type
        method, url, headers, body, _ = self._api.param_serialize(
            method=method,
            resource_path=path,
            query_params=list(query) or None,
            header_params=headers,
            body=body,
            auth_settings=["BearerToken"],
        )
        verb = "WATCH" if ("watch", "true") in query else method
        try:
            response = self._api.call_api(method, url, header_params=headers, body=body, _request_timeout=timeout)
        except (urllib3.exceptions.HTTPError, OSError) as e:
            self._observe(verb, 0)
            raise KubeApiError(0, "ConnectionError", f"{method} {url}: {e}") from e
        except kubernetes.client.ApiException as e:  # TLS failures and the like
            self._observe(verb, int(e.status or 0))
            raise KubeApiError(int(e.status or 0), "ConnectionError", str(e.reason)) from e
        self._observe(verb, response.status)
        return response

    def _observe(self, verb: str, status: int) -> None:
        if self._observer is not None:
            self._observer(verb, status)

    def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        content_type: str = "application/json",
        query: Sequence[tuple[str, str]] = (),
        accept: str = "application/json",
    ) -> Any:
        """One API call; returns the parsed JSON answer, raises :class:`KubeApiError` on non-2xx.

        ``accept``: another JSON rendering, e.g. ``application/json;as=Table;v=v1;g=meta.k8s.io``
        (the rows ``kubectl get`` prints).
        """
        response = self._send(method, path, body, content_type, query, accept, self._timeout)
        try:
            raw = response.read()
        except (urllib3.exceptions.HTTPError, OSError) as e:
            raise KubeApiError(0, "ConnectionError", f"{method} {path}: {e}") from e
        if not 200 <= response.status < 300:
            raise _error(response.status, raw or b"")
        return json.loads(raw) if raw else None

    def watch(self, path: str, query: Sequence[tuple[str, str]], server_timeout: int) -> Iterator[Obj]:
        """The events of one watch request (``{"type": ..., "object": ...}``), as the server sends them,
        until it ends the request after ``server_timeout`` seconds (or the connection breaks)."""
        query = [*query, ("watch", "true"), ("timeoutSeconds", str(server_timeout))]
        response = self._send("GET", path, None, "application/json", query, "application/json",
                              (self._timeout, server_timeout + 30.0))
        if not 200 <= response.status < 300:
            raise _error(response.status, response.read() or b"")
        stream = response.response  # urllib3's response: read line by line, never the whole body
        try:
            for line in stream:
                if line.strip():
                    yield dict(json.loads(line))
        except (urllib3.exceptions.HTTPError, OSError) as e:
            raise KubeApiError(0, "ConnectionError", f"watch {path}: {e}") from e
        finally:
            stream.release_conn()

    # ----- CRUD -----

    def get(self, api_version: str, kind: str, namespace: str | None, name: str) -> Obj | None:
        return self.get_live(api_version, kind, namespace, name)

    def get_live(self, api_version: str, kind: str, namespace: str | None, name: str) -> Obj | None:
        """A GET from the API server, never from a cache."""
        try:
            return dict(self.request("GET", self.kind_info(api_version, kind).path(namespace, name)))
        except NotFound:
            return None

    def list(
        self,
        api_version: str,
        kind: str,
        namespace: str | None = None,
        label_selector: str | Mapping[str, str] | None = None,
    ) -> list[Obj]:
        """All objects (of a namespace, or of all namespaces with ``namespace=None``), with apiVersion/kind."""
        selector = format_label_selector(label_selector)
        query = [("labelSelector", selector)] if selector else []
        answer = self.request("GET", self.kind_info(api_version, kind).path(namespace), query=query)
        # The API omits apiVersion/kind on list items; callers get complete objects.
        return [{"apiVersion": api_version, "kind": kind, **item} for item in answer.get("items") or []]

    def create(self, obj: Mapping[str, Any]) -> Obj:
        meta = obj.get("metadata") or {}
        path = self.kind_info(obj["apiVersion"], obj["kind"]).path(meta.get("namespace"))
        return dict(self.request("POST", path, body=dict(obj)))

    def replace(self, obj: Mapping[str, Any], subresource: str | None = None) -> Obj:
        """PUT: carries ``metadata.resourceVersion`` if the object has one (→ :class:`Conflict` if stale)."""
        meta = obj["metadata"]
        path = self.kind_info(obj["apiVersion"], obj["kind"]).path(meta.get("namespace"), meta["name"], subresource)
        return dict(self.request("PUT", path, body=dict(obj)))

    def merge_patch(
        self,
        api_version: str,
        kind: str,
        namespace: str | None,
        name: str,
        patch: Mapping[str, Any],
        subresource: str | None = None,
    ) -> Obj:
        """RFC 7386 merge patch (``None`` deletes a key; lists are replaced as a whole)."""
        path = self.kind_info(api_version, kind).path(namespace, name, subresource)
        return dict(self.request("PATCH", path, body=dict(patch), content_type=MERGE_PATCH))

    def delete(
        self, api_version: str, kind: str, namespace: str | None, name: str, propagation: str = "Background"
    ) -> bool:
        """Delete (or start deleting, if finalizers hold it); False if it was not there."""
        body = {"apiVersion": "v1", "kind": "DeleteOptions", "propagationPolicy": propagation}
        try:
            self.request("DELETE", self.kind_info(api_version, kind).path(namespace, name), body=body)
        except NotFound:
            return False
        return True

    # ----- idempotent helpers -----

    def apply(self, desired: Mapping[str, Any]) -> tuple[Obj, bool]:
        """Make the live object contain ``desired``; returns (live object, whether anything was written).

        Missing → create. Present and already containing every desired field (see :func:`is_subset`)
        → no request beyond the GET. Otherwise one merge patch with the desired fields (lists as a
        whole). ``status`` is not managed here (write it with ``merge_patch(..., subresource="status")``),
        and fields the live object has but ``desired`` lacks are left alone (as ``kubectl apply``
        does for fields it never set).
        """
        api_version, kind = desired["apiVersion"], desired["kind"]
        meta = desired["metadata"]
        namespace, name = meta.get("namespace"), meta["name"]
        wanted = {k: v for k, v in desired.items() if k != "status"}
        live = self.get(api_version, kind, namespace, name)
        if live is None:
            try:
                return self.create(wanted), True
            except AlreadyExists:  # created concurrently (or not ours, so not cached): compare with it
                live = self.get_live(api_version, kind, namespace, name)
                if live is None:
                    raise
        if is_subset(wanted, live):
            return live, False
        patch = {k: v for k, v in wanted.items() if k not in ("apiVersion", "kind")}
        return self.merge_patch(api_version, kind, namespace, name, patch), True

    def create_event(
        self,
        involved: Mapping[str, Any],
        reason: str,
        message: str,
        *,
        type: str = "Normal",
        component: str = "modeldeploy",
        instance: str | None = None,
        key: str | None = None,
    ) -> Obj:
        """A core v1 Event about ``involved`` (any object with apiVersion/kind/metadata).

        ``key`` names the Event (`<object>.<key>`): creating it twice is an AlreadyExists, not a duplicate.
        """
        meta = involved["metadata"]
        namespace = meta.get("namespace") or "default"
        now = _now()
        reference = {
            "apiVersion": involved["apiVersion"],
            "kind": involved["kind"],
            "name": meta["name"],
            "namespace": meta.get("namespace"),
            "uid": meta.get("uid"),
            "resourceVersion": meta.get("resourceVersion"),
        }
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": f"{meta['name']}.{key or uuid.uuid4().hex[:16]}", "namespace": namespace},
            "involvedObject": {k: v for k, v in reference.items() if v is not None},
            "reason": reason,
            "message": message[:1024],
            "type": type,
            "count": 1,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "source": {"component": component},
            "reportingComponent": component,
            "reportingInstance": instance or component,
        }
        return self.create(event)
