"""Run the emulator on 127.0.0.1 in a background thread, with sync accessors for tests and demos.

    with running_emulator() as k8s:
        k8s.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "namespace": "ns"}})
        assert k8s.get("v1/configmaps", "ns", "a")["metadata"]["resourceVersion"]

The accessors act as a "user" would: they go through HTTP (so watches fire and all semantics
apply) with the sandbox User-Agent, so they are not counted in the emulator's request accounting.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import Any, TypeVar

import aiohttp.web

from modeldeploy.sandbox.emulator import MERGE_PATCH, SANDBOX_USER_AGENT, Emulator
from modeldeploy.sandbox.resources import ResourceDecl

T = TypeVar("T")


class EmulatorHTTPError(Exception):
    """A non-2xx answer to one of the handle's requests; ``body`` is the server's Status."""

    def __init__(self, status: int, body: Any) -> None:
        message = body.get("message") if isinstance(body, dict) else body
        super().__init__(f"HTTP {status}: {message}")
        self.status, self.body = status, body


def _parse_json(raw: bytes) -> Any:
    """A JSON document, or a watch stream (JSON lines) as a list of events."""
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return [json.loads(line) for line in raw.splitlines() if line.strip()]


class EmulatorHandle:
    """A running emulator: its URL, the emulator object, and thread-safe sync accessors."""

    def __init__(self, emulator: Emulator, url: str, loop: asyncio.AbstractEventLoop) -> None:
        self.emulator, self.url, self.loop = emulator, url, loop

    # ----- plumbing -----

    def call(self, fn: Callable[[], Awaitable[T]], timeout: float = 10.0) -> T:
        """Run a coroutine function inside the emulator's loop and wait for its result."""

        async def wrapper() -> T:
            return await fn()

        return asyncio.run_coroutine_threadsafe(wrapper(), self.loop).result(timeout)

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        content_type: str = "application/json",
        params: Mapping[str, str] | None = None,
        timeout: float = 10.0,
    ) -> tuple[int, Any]:
        """Raw HTTP to the emulator: returns (status, parsed JSON body or None); never raises on 4xx/5xx."""
        url = self.url + path + (f"?{urllib.parse.urlencode(params)}" if params else "")
        data = json.dumps(body).encode() if body is not None else None
        headers = {"User-Agent": f"{SANDBOX_USER_AGENT}-user", "Accept": "application/json"}
        if data is not None:
            headers["Content-Type"] = content_type
        req = urllib.request.Request(url, data=data, method=method.upper(), headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                status, raw = resp.status, resp.read()
        except urllib.error.HTTPError as e:
            status, raw = e.code, e.read()
        return status, _parse_json(raw)

    def _ok(self, method: str, path: str, body: Any = None, **kwargs: Any) -> Any:
        status, payload = self.request(method, path, body, **kwargs)
        if not 200 <= status < 300:
            raise EmulatorHTTPError(status, payload)
        return payload

    def decl(self, resource: str) -> ResourceDecl:
        return self.emulator.decl(resource)

    def path(
        self, resource: str, namespace: str | None = None, name: str | None = None, subresource: str | None = None
    ) -> str:
        return self.decl(resource).path(namespace, name, subresource)

    # ----- object accessors -----

    def get(self, resource: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        status, payload = self.request("GET", self.path(resource, namespace, name))
        if status == 404:
            return None
        if status != 200:
            raise EmulatorHTTPError(status, payload)
        return dict(payload)

    def list(
        self,
        resource: str,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> list[dict[str, Any]]:
        params = {k: v for k, v in (("labelSelector", label_selector), ("fieldSelector", field_selector)) if v}
        decl = self.decl(resource)
        items = self._ok("GET", decl.path(namespace), params=params)["items"]
        return [{"apiVersion": decl.api_version, "kind": decl.kind, **item} for item in items]

    def create(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        """Create ``obj``; a given ``status`` is then written through the status subresource.

        (The real API drops status on create; tests seeding a state want it kept.)
        """
        decl = self.emulator.decl_for_kind(obj["apiVersion"], obj["kind"])
        namespace = (obj.get("metadata") or {}).get("namespace") if decl.namespaced else None
        created: dict[str, Any] = self._ok("POST", decl.path(namespace), dict(obj))
        if decl.has_status and obj.get("status") is not None:
            meta = created["metadata"]
            created = self.patch(
                decl.key, meta.get("namespace"), meta["name"], {"status": obj["status"]}, subresource="status"
            )
        return created

    def patch(
        self,
        resource: str,
        namespace: str | None,
        name: str,
        patch: Any,
        *,
        subresource: str | None = None,
        content_type: str = MERGE_PATCH,
    ) -> dict[str, Any]:
        path = self.path(resource, namespace, name, subresource)
        return dict(self._ok("PATCH", path, patch, content_type=content_type))

    def replace(self, obj: Mapping[str, Any], *, subresource: str | None = None) -> dict[str, Any]:
        decl = self.emulator.decl_for_kind(obj["apiVersion"], obj["kind"])
        meta = obj["metadata"]
        return dict(self._ok("PUT", decl.path(meta.get("namespace"), meta["name"], subresource), dict(obj)))

    def delete(self, resource: str, namespace: str | None, name: str, *, propagation: str | None = None) -> bool:
        """Delete (or mark for deletion if finalizers block it); False if it was already absent."""
        body = {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": propagation} if propagation else None
        status, payload = self.request("DELETE", self.path(resource, namespace, name), body)
        if status == 404:
            return False
        if not 200 <= status < 300:
            raise EmulatorHTTPError(status, payload)
        return True

    # ----- fault injection & accounting (delegated; thread-safe) -----

    def fail_next(
        self, verb: str, resource: str | None = None, status: int = 500, count: int = 1, **kwargs: Any
    ) -> None:
        self.emulator.fail_next(verb, resource, status, count, **kwargs)

    def counts(self) -> dict[tuple[str, str], int]:
        return self.emulator.counts()

    def writes(self, resource: str | None = None) -> int:
        return self.emulator.writes(resource)

    def reset_counts(self) -> None:
        self.emulator.reset_counts()

    def collect_garbage(self) -> int:
        """Run a GC pass now (also with ``gc=False``); returns how many deletions it started."""

        async def sweep() -> int:
            return self.emulator.collect_garbage()

        return self.call(sweep)


class _ServerThread(threading.Thread):
    def __init__(self, host: str, port: int, emulator_kwargs: Mapping[str, Any]) -> None:
        super().__init__(name="k8s-emulator", daemon=True)
        self.host, self.port, self.kwargs = host, port, dict(emulator_kwargs)
        self.ready = threading.Event()
        self.handle: EmulatorHandle | None = None
        self.error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_event: asyncio.Event | None = None

    def run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as e:  # reported to the starting thread, which re-raises it
            self.error = e
        finally:
            self.ready.set()

    async def _serve(self) -> None:
        # Everything asyncio-bound is created here, inside the thread's own loop.
        self._loop, self._stop_event = asyncio.get_running_loop(), asyncio.Event()
        emulator = Emulator(**self.kwargs)
        async with emulator:  # kmock's stream feeder; also makes kmock render errors as 500s, not raise
            # A plain aiohttp server rather than kmock.Server: the latter patches aiohttp's DNS
            # resolution process-wide, which breaks when emulators stop in non-LIFO order.
            runner = aiohttp.web.ServerRunner(aiohttp.web.Server(emulator), handle_signals=False)
            await runner.setup()
            site = aiohttp.web.TCPSite(runner, self.host, self.port)
            await site.start()
            port = runner.addresses[0][1]
            await emulator.start_background()
            self.handle = EmulatorHandle(emulator, f"http://{self.host}:{port}", self._loop)
            self.ready.set()
            try:
                await self._stop_event.wait()
            finally:
                await emulator.stop_background()
                await runner.cleanup()

    def stop(self, timeout: float = 10.0) -> None:
        if self._loop is not None and self._stop_event is not None and not self._loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop may have just finished
                self._loop.call_soon_threadsafe(self._stop_event.set)
        self.join(timeout)


@contextlib.contextmanager
def running_emulator(
    *, host: str = "127.0.0.1", port: int = 0, start_timeout: float = 10.0, **emulator_kwargs: Any
) -> Iterator[EmulatorHandle]:
    """Start an :class:`Emulator` (kwargs: ``gc``, ``gc_delay``, ``declared``, ...) on a free port."""
    thread = _ServerThread(host, port, emulator_kwargs)
    thread.start()
    if not thread.ready.wait(start_timeout) or thread.handle is None:
        thread.stop()
        raise RuntimeError("the Kubernetes emulator did not start") from thread.error
    try:
        yield thread.handle
    finally:
        thread.stop()


def wait_until(
    predicate: Callable[[], T], timeout: float = 10.0, interval: float = 0.02, message: str = "condition"
) -> T:
    """Poll ``predicate`` until it returns something truthy; return that, or fail with the last value."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {message}; last value: {result!r}")
        time.sleep(interval)
