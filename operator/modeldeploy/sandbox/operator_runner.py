"""Run a kopf operator in a background thread against an API server URL (the emulator, usually).

    with running_emulator() as k8s, running_operator(k8s.url, module="modeldeploy.handlers"):
        k8s.create(sample)
        wait_until(lambda: k8s.get("apps/v1/deployments", "ns", "x"))

The operator gets its own thread and event loop (kopf must not share pytest's loop), logs in to
``url`` without auth (a ``@kopf.on.login`` handler added to the registry), and is stopped through
kopf's stop flag; an operator crash is re-raised when the context exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import importlib
import sys
import threading
import weakref
from collections.abc import Callable, Collection, Iterator
from typing import Any

import kopf

from modeldeploy.sandbox.emulator_server import wait_until

__all__ = ["OperatorHandle", "registry_from_module", "running_operator", "sandbox_settings", "wait_until"]


def sandbox_settings(settings: kopf.OperatorSettings | None = None) -> kopf.OperatorSettings:
    """Settings for an operator in tests: standalone, annotation storages, never SIGKILL the process."""
    settings = settings or kopf.OperatorSettings()
    settings.peering.standalone = True  # no peering resources in the emulator
    settings.peering.mandatory = False
    # Kopf's default storage writes into .status.kopf, which the real CRD's status schema lacks.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage()
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage()
    # If kopf exits for any reason other than the stop flag, it would SIGKILL its thread after
    # this timeout — i.e. the whole pytest process.
    settings.process.ultimate_exiting_timeout = None
    settings.networking.request_timeout = 10
    settings.networking.error_backoffs = [0.1, 0.2, 0.5]
    settings.batching.exit_timeout = 0.5
    return settings


@dataclasses.dataclass
class _LoginTarget:
    url: str = ""


# One login handler per registry, re-pointed at each run's URL: registries are often reused
# between tests, and stale login handlers would keep offering old servers to kopf.
_login_targets: weakref.WeakKeyDictionary[kopf.OperatorRegistry, _LoginTarget] = weakref.WeakKeyDictionary()


def _point_login(registry: kopf.OperatorRegistry, url: str) -> None:
    target = _login_targets.get(registry)
    if target is None:
        target = _login_targets[registry] = _LoginTarget()

        @kopf.on.login(registry=registry, id="modeldeploy-sandbox-login")
        def login(**_: Any) -> kopf.ConnectionInfo:
            return kopf.ConnectionInfo(server=target.url, insecure=True, priority=100)

    target.url = url


def registry_from_module(name: str) -> kopf.OperatorRegistry:
    """A fresh registry holding the handlers that module ``name`` registers at import time.

    The module is (re-)executed with a fresh default registry, so each call gets its own copy of
    the handlers. Re-executing replaces the module's globals: keep handler modules side-effect free.
    """
    registry = kopf.OperatorRegistry()
    previous = kopf.get_default_registry()
    kopf.set_default_registry(registry)
    try:
        module = sys.modules.get(name)
        if module is None:
            importlib.import_module(name)
        else:
            importlib.reload(module)
    finally:
        kopf.set_default_registry(previous)
    return registry


class OperatorHandle(threading.Thread):
    """A kopf operator running in its own thread and event loop."""

    def __init__(
        self,
        url: str,
        registry: kopf.OperatorRegistry,
        settings: kopf.OperatorSettings,
        namespaces: Collection[str],
        memo: Any,
    ) -> None:
        super().__init__(name="kopf-operator", daemon=True)
        self.url, self.registry, self.settings = url, registry, settings
        self.namespaces, self.memo = list(namespaces), memo
        self.stop_flag = threading.Event()
        self.ready_flag = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            asyncio.run(
                kopf.operator(
                    registry=self.registry,
                    settings=self.settings,
                    standalone=True,
                    clusterwide=not self.namespaces,
                    namespaces=self.namespaces,
                    stop_flag=self.stop_flag,
                    ready_flag=self.ready_flag,
                    memo=self.memo,
                )
            )
        except BaseException as e:  # re-raised in the test's thread by stop()
            self.error = e

    def stop(self, timeout: float = 10.0, reraise: bool = True) -> None:
        self.stop_flag.set()
        self.join(timeout)
        if self.is_alive():
            raise RuntimeError(f"the kopf operator did not stop within {timeout}s")
        if reraise and self.error is not None:
            raise RuntimeError("the kopf operator crashed") from self.error


@contextlib.contextmanager
def running_operator(
    url: str,
    *,
    registry: kopf.OperatorRegistry | None = None,
    module: str | None = None,
    handlers: Callable[[kopf.OperatorRegistry], None] | None = None,
    settings: kopf.OperatorSettings | None = None,
    namespaces: Collection[str] = (),
    memo: Any = None,
    ready_timeout: float = 10.0,
    stop_timeout: float = 10.0,
) -> Iterator[OperatorHandle]:
    """Run kopf against ``url`` until the block exits.

    Handlers come from ``registry``, or from a ``module`` (see :func:`registry_from_module`), or
    from ``handlers(registry)`` registering them into a fresh registry (``registry=`` in decorators).
    ``settings`` default to :func:`sandbox_settings`; ``namespaces`` empty means cluster-wide.
    """
    if registry is None:
        registry = registry_from_module(module) if module else kopf.OperatorRegistry()
    if handlers is not None:
        handlers(registry)
    _point_login(registry, url)
    operator = OperatorHandle(url, registry, settings or sandbox_settings(), namespaces, memo)
    operator.start()
    if not operator.ready_flag.wait(ready_timeout):
        operator.stop(reraise=False)
        raise RuntimeError("the kopf operator did not become ready") from operator.error
    try:
        yield operator
    finally:
        operator.stop(stop_timeout)
