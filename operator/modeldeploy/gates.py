"""Run the pre-traffic gates against one ready pod of each revision (HTTP; the I/O half of rollout.gates)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from .api.spec import ModelDeploymentSpec
from .caller_token import gate_headers
from .kubeapi import KubeApiError, KubeClient
from .outbound import METADATA_BODY_LIMIT, METRICS_BODY_LIMIT, HttpStatus, OutboundError, Unreachable, request
from .render import model_name
from .rollout import GateResult, Observed
from .rollout.gates import output_differences, signature_differences

HTTP_PORT = 8000
TIMEOUT_SECONDS = 5.0
# "Not now" answers (busy, or a pod's token check that cannot reach the API server): asked again, and
# the progress deadline still runs; every other error status fails the gates.
RETRIED_STATUSES = frozenset({429, 503})


def _http(method: str, url: str, body: Any = None, auth: Mapping[str, str] | None = None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    # Metadata is small; an inference answer may carry real tensors: the larger cap.
    cap = METADATA_BODY_LIMIT if body is None else METRICS_BODY_LIMIT
    answer = request(method, url, body=data, max_bytes=cap, timeout=TIMEOUT_SECONDS,
                     headers={"Content-Type": "application/json", "Accept": "application/json", **(auth or {})})
    return json.loads(answer or b"null")


class BadGoldenRequest(ValueError):
    """A smoke-test ConfigMap entry that is not an inference request: says which and why."""


def golden_request(config_map: str, key: str, text: str) -> dict[str, Any]:
    """One golden request of the smoke-test ConfigMap, checked before anything is sent."""
    where = f"smokeTest: ConfigMap {config_map} key {key}"
    try:
        request = json.loads(text)
    except ValueError as error:
        raise BadGoldenRequest(f"{where} is not JSON: {error}") from None
    if not isinstance(request, dict):
        raise BadGoldenRequest(f"{where} must be a JSON object (an inference request), not {type(request).__name__}")
    inputs = request.get("inputs")
    if not isinstance(inputs, list) or not inputs or not all(isinstance(entry, dict) for entry in inputs):
        raise BadGoldenRequest(f'{where} needs "inputs": a non-empty list of tensors (Open Inference Protocol)')
    for index, entry in enumerate(inputs):
        missing = [field for field in ("name", "shape", "datatype", "data") if field not in entry]
        if missing:
            raise BadGoldenRequest(f"{where}: inputs[{index}] lacks {', '.join(missing)}")
    return request


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
        auth = gate_headers(kube, spec, observed.namespace, observed.name)  # spec.access.requireToken
        notes = []
        if gates.signature:
            problems = signature_differences(_http("GET", canary_url, auth=auth), _http("GET", stable_url, auth=auth))
            if problems:
                return GateResult(False, "signature: " + "; ".join(problems))
            notes.append("signature matches the stable")
        if gates.smoke_test is not None:
            config_map = kube.get("v1", "ConfigMap", observed.namespace, gates.smoke_test.config_map_ref.name)
            if config_map is None:
                return GateResult(False, f"smokeTest: ConfigMap {gates.smoke_test.config_map_ref.name} not found")
            entries = sorted((config_map.get("data") or {}).items())
            if not entries:
                return GateResult(False, f"smokeTest: ConfigMap {config_map['metadata']['name']} has no data keys")
            for key, text in entries:
                request = golden_request(config_map["metadata"]["name"], key, text)
                canary_out = _http("POST", f"{canary_url}/infer", request, auth)
                stable_out = _http("POST", f"{stable_url}/infer", request, auth)
                problems = output_differences(canary_out, stable_out, gates.smoke_test.tolerance)
                if problems:
                    return GateResult(False, f"smokeTest {key}: " + "; ".join(problems))
            notes.append("smoke test outputs agree")
        return GateResult(True, ", ".join(notes))
    except BadGoldenRequest as error:
        return GateResult(False, str(error))
    except (Unreachable, KubeApiError):  # a pod, or the TokenRequest API, not reachable now: retried
        return None
    except HttpStatus as error:
        if error.code in RETRIED_STATUSES:
            return None
        return GateResult(False, f"gates: {error}")
    except OutboundError as error:  # an HTTP error, a redirect, an oversize answer: the status code, never the body
        return GateResult(False, f"gates: {error}")
    except ValueError:
        return GateResult(False, "gates: a model server's answer is not JSON")
