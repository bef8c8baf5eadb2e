"""Run the pre-traffic gates against one ready pod of each revision (HTTP; the I/O half of rollout.gates)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from .api.spec import ModelDeploymentSpec
from .kubeapi import KubeClient
from .render import model_name
from .rollout import GateResult, Observed
from .rollout.gates import output_differences, signature_differences

HTTP_PORT = 8000
TIMEOUT_SECONDS = 5.0


def _http(method: str, url: str, body: Any = None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method,
                                     headers={"Content-Type": "application/json", "Accept": "application/json"})
    with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:
        return json.loads(response.read() or b"null")


def _ready_address(observed: Observed, revision: str) -> str | None:
    return next((pod.address for pod in observed.pods_of(revision) if pod.ready and pod.address), None)


def run_gates(kube: KubeClient, observed: Observed, spec: ModelDeploymentSpec, stable: str,
              candidate: str) -> GateResult | None:
    """The gates' verdict, or None when a pod could not be reached (retried; the deadline still runs)."""
    gates = spec.rollout.gates
    if not gates.signature and gates.smoke_test is None:
        return GateResult(True, "no gates configured")
    canary_ip, stable_ip = _ready_address(observed, candidate), _ready_address(observed, stable)
    if canary_ip is None or stable_ip is None:
        return None
    model = model_name(spec, observed.name)
    canary_url, stable_url = (f"http://{ip}:{HTTP_PORT}/v2/models/{model}" for ip in (canary_ip, stable_ip))
    try:
        notes = []
        if gates.signature:
            problems = signature_differences(_http("GET", canary_url), _http("GET", stable_url))
            if problems:
                return GateResult(False, "signature: " + "; ".join(problems))
            notes.append("signature matches the stable")
        if gates.smoke_test is not None:
            config_map = kube.get("v1", "ConfigMap", observed.namespace, gates.smoke_test.config_map_ref.name)
            if config_map is None:
                return GateResult(False, f"smokeTest: ConfigMap {gates.smoke_test.config_map_ref.name} not found")
            for key, text in sorted((config_map.get("data") or {}).items()):
                request = json.loads(text)
                canary_out = _http("POST", f"{canary_url}/infer", request)
                stable_out = _http("POST", f"{stable_url}/infer", request)
                problems = output_differences(canary_out, stable_out, gates.smoke_test.tolerance)
                if problems:
                    return GateResult(False, f"smokeTest {key}: " + "; ".join(problems))
            notes.append("smoke test outputs agree")
        return GateResult(True, ", ".join(notes))
    except urllib.error.HTTPError as error:
        return GateResult(False, f"gates: {error.url} answered {error.code}: {error.read()[:200]!r}")
    except ValueError as error:
        return GateResult(False, f"gates: unreadable answer: {error}")
    except (urllib.error.URLError, OSError):
        return None
