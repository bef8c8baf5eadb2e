"""Run *this* operator (modeldeploy.handlers) in a thread against an API URL: tests, bench, demo."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from ..handlers import use_context
from ..kubeapi import KubeClient
from ..reconciler import Context
from ..settings import OperatorSettings
from .operator_runner import OperatorHandle, registry_from_module, running_operator, sandbox_settings


@contextlib.contextmanager
def running_modeldeploy(url: str, *, resync_seconds: float = 300.0,
                        context: Context | None = None) -> Iterator[tuple[OperatorHandle, Context]]:
    """The operator with its API client pointed at `url`; yields the kopf thread and the context."""
    registry = registry_from_module("modeldeploy.handlers")  # re-executes the module: inject after
    from .. import handlers  # the freshly executed module object

    kube = KubeClient(url)
    context = context or Context(kube=kube)
    handlers.use_context(context, OperatorSettings(metrics_port=0, resync_seconds=resync_seconds))
    try:
        with running_operator(url, registry=registry, settings=sandbox_settings()) as handle:
            yield handle, context
    finally:
        handlers.use_context(None)
        kube.close()


__all__ = ["running_modeldeploy", "use_context"]
