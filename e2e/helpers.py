"""Helpers of the e2e tests: adapted samples, waiting on status, inference and load through the API server."""

from __future__ import annotations

import copy
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from modeldeploy.api import API_VERSION, KIND
from modeldeploy.kubeapi import KubeApiError, KubeClient

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "samples" / "cpu-onnx.yaml"
INFER_BODY = {"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32", "data": [0.1, 0.2, 0.3, 0.4]}]}


@dataclass(frozen=True)
class Model:
    uri: str
    digest: str


def model_deployment(name: str, namespace: str, model: Model, *, env: dict[str, str] | None = None,
                     **rollout: Any) -> dict[str, Any]:
    """samples/cpu-onnx.yaml adapted to kind: the generated model, small pods, short steps."""
    obj: dict[str, Any] = copy.deepcopy(yaml.safe_load(SAMPLE.read_text()))
    obj["metadata"] = {"name": name, "namespace": namespace}
    spec = obj["spec"]
    spec["model"].update({"uri": model.uri, "digest": model.digest, "version": 1})
    spec["model"].pop("name", None)
    spec["runtime"]["env"] = [{"name": key, "value": value} for key, value in (env or {}).items()]
    spec["resources"] = {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "512Mi"}}
    spec["autoscaling"] = {"minReplicas": 2, "maxReplicas": 2}
    spec["rollout"] = {
        "strategy": "canary",
        "steps": [{"weight": 25, "pause": "20s"}, {"weight": 50, "pause": "20s"}],
        "progressDeadlineSeconds": 600,
        "analysis": {"interval": "10s", "minSamples": 20, "failureLimit": 2,
                     "checks": [{"metric": "successRate", "min": 0.95, "maxDrop": 0.02},
                                {"metric": "latencyP99", "max": "2s"}]},
        **rollout,
    }
    return obj  # kind's apiserver validates it against the CRD


def spec_patch(model: Model, env: dict[str, str] | None = None) -> dict[str, Any]:
    """A merge patch that makes a new revision: another model (and optionally runtime env)."""
    patch: dict[str, Any] = {"spec": {"model": {"uri": model.uri, "digest": model.digest}}}
    if env is not None:
        # Fault injection (MODELSERVER_FAULT_*) takes effect only with the test-only flag.
        env = {"MODELSERVER_TEST_FAULTS": "1", **env}
        patch["spec"]["runtime"] = {"env": [{"name": key, "value": value} for key, value in env.items()]}
    return patch


def get_md(kube: KubeClient, namespace: str, name: str) -> dict[str, Any]:
    obj = kube.get(API_VERSION, KIND, namespace, name)
    assert obj is not None, f"ModelDeployment {namespace}/{name} is gone"
    return obj


def condition(obj: dict[str, Any], kind: str) -> dict[str, Any]:
    found: dict[str, Any] = next((c for c in obj.get("status", {}).get("conditions", []) if c["type"] == kind), {})
    return found


def events(kube: KubeClient, namespace: str, name: str) -> list[dict[str, Any]]:
    answer = kube.request("GET", f"/api/v1/namespaces/{namespace}/events",
                          query=[("fieldSelector", f"involvedObject.name={name}")])
    items: list[dict[str, Any]] = answer.get("items") or []
    return sorted(items, key=lambda event: event.get("lastTimestamp") or "")


def wait_for(kube: KubeClient, namespace: str, name: str, predicate: Callable[[dict[str, Any]], bool],
             what: str, timeout: float = 300.0, on_poll: Callable[[dict[str, Any]], None] | None = None,
             ) -> dict[str, Any]:
    """Poll the ModelDeployment until `predicate` holds; on timeout fail with its status and events."""
    deadline = time.monotonic() + timeout
    obj = get_md(kube, namespace, name)
    while time.monotonic() < deadline:
        obj = get_md(kube, namespace, name)
        if on_poll is not None:
            on_poll(obj)
        if predicate(obj):
            return obj
        time.sleep(2)
    recent = [f"{e.get('type')} {e.get('reason')}: {e.get('message')}" for e in events(kube, namespace, name)[-15:]]
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}\nstatus: "
                         f"{json.dumps(obj.get('status'), indent=1)}\nevents:\n" + "\n".join(recent))


def phase_is(*phases: str) -> Callable[[dict[str, Any]], bool]:
    def check(obj: dict[str, Any]) -> bool:
        status = obj.get("status") or {}
        return bool(status.get("phase") in phases
                    and status.get("observedGeneration") == obj["metadata"]["generation"])
    return check


def infer(kube: KubeClient, namespace: str, service: str, model: str) -> dict[str, Any]:
    """One inference through the API server's service proxy (no port-forward, no ingress)."""
    path = f"/api/v1/namespaces/{namespace}/services/{service}:http/proxy/v2/models/{model}/infer"
    answer: dict[str, Any] = kube.request("POST", path, body=INFER_BODY)
    return answer


@dataclass
class Load:
    """Steady inference traffic to a ModelDeployment's Service from a few threads."""

    kube: KubeClient
    namespace: str
    name: str
    threads: int = 4
    ok: int = 0
    failed: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _workers: list[threading.Thread] = field(default_factory=list)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                infer(self.kube, self.namespace, self.name, self.name)
                with self._lock:
                    self.ok += 1
            except KubeApiError:
                with self._lock:
                    self.failed += 1
                time.sleep(0.05)

    def __enter__(self) -> Load:
        self._workers = [threading.Thread(target=self._run, daemon=True) for _ in range(self.threads)]
        for worker in self._workers:
            worker.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for worker in self._workers:
            worker.join(timeout=30)


