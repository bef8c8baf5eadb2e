"""The operator as a caller of token-checked models (spec.access.requireToken): its gates present a token
of its own ServiceAccount with the model's audience, from the TokenRequest API, reused until 80% of its life.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from .api.spec import ModelDeploymentSpec
from .kubeapi import KubeClient
from .render.access import requires_token, token_audience
from .settings import access_peers

TOKEN_SECONDS = 600  # the API server's minimum is 600
REUSE_FRACTION = 0.8

_lock = threading.Lock()
_tokens: dict[str, tuple[str, float]] = {}  # audience -> (token, reuse until, monotonic)


def caller_token(kube: KubeClient, audience: str, clock: Callable[[], float] = time.monotonic) -> str:
    """A token of the operator's ServiceAccount for `audience` (KubeApiError when the API refuses)."""
    with _lock:
        cached = _tokens.get(audience)
        if cached is not None and clock() < cached[1]:
            return cached[0]
    peers = access_peers()
    answer = kube.request(
        "POST", f"/api/v1/namespaces/{peers.operator_namespace}/serviceaccounts/{peers.operator_service_account}/token",
        body={"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
              "spec": {"audiences": [audience], "expirationSeconds": TOKEN_SECONDS}})
    token = str(answer["status"]["token"])
    with _lock:
        _tokens[audience] = (token, clock() + TOKEN_SECONDS * REUSE_FRACTION)
    return token


def gate_headers(kube: KubeClient, spec: ModelDeploymentSpec, namespace: str, name: str) -> dict[str, str]:
    """The Authorization header the gates send to the model's pods; none when they check no token."""
    if not requires_token(spec):
        return {}
    return {"Authorization": f"Bearer {caller_token(kube, token_audience(namespace, name))}"}
