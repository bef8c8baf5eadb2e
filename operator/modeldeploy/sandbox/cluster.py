"""The whole sandbox in one object: emulated API server, pod simulator, artifact server, load.

    with Sandbox() as sb, sb.run_operator():
        model = sb.artifacts.linear("resnet/1/model.onnx")
        sb.apply(model_deployment("resnet", model))
        sb.wait_for_phase("resnet", "Healthy", timeout=60)
        with sb.loadgen("resnet", rate=20, duration=5) as load:
            load.wait()
        assert load.report().success_rate() == 1.0

``apply`` goes through the CRD's admission (defaults + OpenAPI/CEL validation, as the API server
would with the generated CRD) before writing; a refused object raises :class:`AdmissionError`.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Mapping
from types import TracebackType
from typing import Any

from modeldeploy.kubeapi import Conflict, KubeClient
from modeldeploy.sandbox.artifacts import Artifact, ArtifactServer
from modeldeploy.sandbox.emulator import SANDBOX_USER_AGENT
from modeldeploy.sandbox.emulator_server import EmulatorHandle, running_emulator
from modeldeploy.sandbox.kubelet import Kubelet
from modeldeploy.sandbox.loadgen import LoadGenerator

API_VERSION = "serving.modeldeploy.dev/v1alpha1"
KIND = "ModelDeployment"
MD = f"{API_VERSION}/modeldeployments"


class AdmissionError(ValueError):
    """The object was refused, as ``kubectl apply`` against the real CRD would be."""


def model_deployment(
    name: str, artifact: Artifact, *, namespace: str = "ml", strategy: str = "immediate", **spec: Any
) -> dict[str, Any]:
    """A ModelDeployment serving ``artifact``; ``spec`` keys (``runtime=...``) override the defaults."""
    body: dict[str, Any] = {
        "model": {"uri": artifact.url, "digest": artifact.digest},
        "autoscaling": {"minReplicas": 1, "maxReplicas": 2},
        "rollout": {"strategy": strategy},
        **spec,
    }
    return {"apiVersion": API_VERSION, "kind": KIND, "metadata": {"name": name, "namespace": namespace}, "spec": body}


class Sandbox:
    """See the module docstring. ``kubelet_options`` go to :class:`~.kubelet.Kubelet`."""

    def __init__(
        self,
        namespace: str = "ml",
        *,
        admission: bool = True,
        gc: bool = True,
        kubelet_options: Mapping[str, Any] | None = None,
    ) -> None:
        self.namespace, self.admission, self.gc = namespace, admission, gc
        self.kubelet_options = dict(kubelet_options or {})
        self._stack = contextlib.ExitStack()
        self.emulator: EmulatorHandle
        self.kubelet: Kubelet
        self.artifacts: ArtifactServer
        self.kube: KubeClient

    # ----- lifecycle -----

    def __enter__(self) -> Sandbox:
        try:
            self.emulator = self._stack.enter_context(running_emulator(gc=self.gc))
            self.artifacts = self._stack.enter_context(ArtifactServer())
            self.kube = KubeClient(self.emulator.url, user_agent=f"{SANDBOX_USER_AGENT}-user")
            self._stack.callback(self.kube.close)
            self.kubelet = self._stack.enter_context(
                Kubelet(self.emulator.url, expand_deployments=True, **self.kubelet_options)
            )
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stack.close()  # LIFO: the kubelet (and its processes) first, the emulator last

    @contextlib.contextmanager
    def run_operator(self, resync_seconds: float = 300.0) -> Iterator[Any]:
        """The real operator (``modeldeploy.handlers``) against this sandbox until the block exits."""
        from modeldeploy.sandbox.modeldeploy_operator import running_modeldeploy  # imports kopf + handlers

        with running_modeldeploy(self.emulator.url, resync_seconds=resync_seconds) as (handle, _context):
            yield handle

    # ----- acting as a user -----

    def apply(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        """Create the ModelDeployment, or replace its spec (``kubectl apply`` of a whole manifest)."""
        wanted = dict(obj)
        wanted.setdefault("metadata", {})
        wanted["metadata"] = {"namespace": self.namespace, **wanted["metadata"]}
        if self.admission:
            from modeldeploy.api.admission import admit

            wanted, refusals = admit(wanted)
            if refusals:
                raise AdmissionError("; ".join(refusals))
        meta = wanted["metadata"]
        for _ in range(5):  # optimistic concurrency: the operator writes annotations meanwhile
            live = self.kube.get(API_VERSION, KIND, meta["namespace"], meta["name"])
            if live is None:
                return self.kube.create(wanted)
            merged = {**live, "spec": wanted["spec"]}
            merged["metadata"] = {
                **live["metadata"],
                **{k: v for k, v in meta.items() if k in ("labels", "annotations")},
            }
            try:
                return self.kube.replace(merged)
            except Conflict:
                time.sleep(0.05)
        raise RuntimeError(f"could not apply {meta['name']}: kept conflicting")

    def delete(self, name: str) -> bool:
        return self.kube.delete(API_VERSION, KIND, self.namespace, name)

    # ----- observing -----

    def get(self, name: str) -> dict[str, Any] | None:
        return self.kube.get(API_VERSION, KIND, self.namespace, name)

    def status(self, name: str) -> dict[str, Any]:
        return (self.get(name) or {}).get("status") or {}

    def pods(self, name: str, revision: str | None = None) -> list[dict[str, Any]]:
        selector = {"modeldeploy.dev/name": name, **({"modeldeploy.dev/revision": revision} if revision else {})}
        return self.kube.list("v1", "Pod", self.namespace, selector)

    def deployments(self, name: str) -> list[dict[str, Any]]:
        return self.kube.list("apps/v1", "Deployment", self.namespace, {"modeldeploy.dev/name": name})

    def describe(self, name: str) -> str:
        """A short multi-line summary for failure messages: status, Deployments, pods."""
        status = self.status(name)
        lines = [f"{name}: phase={status.get('phase')} reason={status.get('reason')} message={status.get('message')}"]
        for deployment in self.deployments(name):
            lines.append(f"  deployment {deployment['metadata']['name']}: {deployment.get('status')}")
        for pod in self.pods(name):
            pod_status = pod.get("status") or {}
            states = [
                (c["name"], list(c.get("state") or {}), c.get("restartCount"))
                for c in [*pod_status.get("initContainerStatuses", []), *pod_status.get("containerStatuses", [])]
            ]
            lines.append(
                f"  pod {pod['metadata']['name']} {pod_status.get('phase')} {pod_status.get('podIP')} {states}"
            )
            for container in ("fetch", "server"):
                log = self.kubelet.logs(self.namespace, pod["metadata"]["name"], container, lines=5)
                lines += [f"    {container}| {line}" for line in log.splitlines()]
        lines.append(f"  kubelet: {self.kubelet.pods()} errors={self.kubelet.errors[-3:]}")
        return "\n".join(lines)

    def wait_for(self, name: str, predicate: Any, timeout: float = 60.0, what: str = "condition") -> dict[str, Any]:
        """Poll the ModelDeployment's status until ``predicate(status)``; the status, or TimeoutError."""
        deadline = time.monotonic() + timeout
        while True:
            status = self.status(name)
            if predicate(status):
                return status
            if time.monotonic() > deadline:
                raise TimeoutError(f"timed out after {timeout}s waiting for {what}\n{self.describe(name)}")
            time.sleep(0.1)

    def wait_for_phase(self, name: str, phase: str, timeout: float = 60.0) -> dict[str, Any]:
        return self.wait_for(name, lambda s: s.get("phase") == phase, timeout, f"{name} phase {phase}")

    def loadgen(self, name: str, rate: float = 20.0, duration: float | None = None, **options: Any) -> LoadGenerator:
        """A load generator for ``name`` (not started: use ``with`` or ``.start()``)."""
        return LoadGenerator(self.emulator.url, self.namespace, name, rate=rate, duration=duration, **options)
