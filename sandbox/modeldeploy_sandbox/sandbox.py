"""One namespace of a :class:`~.cluster.LocalCluster` with what a scenario needs: model files, the
operator, and the reads and waits of a user with kubectl.

    with Sandbox(cluster) as sb, sb.run_operator():
        model = sb.artifacts.linear("resnet/1/model.onnx")
        sb.apply(model_deployment("resnet", model))
        sb.wait_for_phase("resnet", "Healthy", timeout=60)
        with sb.loadgen("resnet", rate=20, duration=5) as load:
            load.wait()
        assert load.report().success_rate() == 1.0

``apply`` goes to the real apiserver, which defaults and validates with the CRD (a refusal raises
:class:`~modeldeploy.kubeapi.Invalid` with the apiserver's message). Closing deletes the namespace
and waits until the kubelet has ended every pod in it; the namespace controller removes the rest
a few seconds later.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import time
from collections.abc import Callable, Iterator, Mapping
from types import TracebackType
from typing import Any

from modeldeploy.kubeapi import Conflict, KubeClient
from modeldeploy_sandbox.artifacts import Artifact, ArtifactServer
from modeldeploy_sandbox.cluster import LocalCluster
from modeldeploy_sandbox.kubelet import PodProcesses
from modeldeploy_sandbox.loadgen import LoadGenerator
from modeldeploy_sandbox.operator_process import OperatorProcess
from modeldeploy_sandbox.waiting import wait_until

API_VERSION = "serving.modeldeploy.dev/v1alpha1"
KIND = "ModelDeployment"
_counter = itertools.count(1)


def model_deployment(
    name: str, artifact: Artifact, *, strategy: str = "immediate", **spec: Any
) -> dict[str, Any]:
    """A ModelDeployment serving ``artifact``; ``spec`` keys (``runtime=...``) override the defaults."""
    body: dict[str, Any] = {
        "model": {"uri": artifact.url, "digest": artifact.digest},
        "autoscaling": {"minReplicas": 1, "maxReplicas": 2},
        "rollout": {"strategy": strategy},
        **spec,
    }
    return {"apiVersion": API_VERSION, "kind": KIND, "metadata": {"name": name}, "spec": body}


class Sandbox:
    """See the module docstring. ``namespace``: a fresh unique one by default."""

    def __init__(self, cluster: LocalCluster, namespace: str | None = None) -> None:
        self.cluster = cluster
        self.namespace = namespace or f"sb-{os.getpid()}-{next(_counter)}"
        self.kube: KubeClient = cluster.admin
        self.kubelet = cluster.kubelet
        self._stack = contextlib.ExitStack()
        self.artifacts: ArtifactServer
        self.operator: OperatorProcess | None = None

    # ----- lifecycle -----

    def __enter__(self) -> Sandbox:
        try:
            self.cluster.create_namespace(self.namespace)
            self._stack.callback(self.cluster.delete_namespace, self.namespace, until_gone=False)
            self.artifacts = self._stack.enter_context(ArtifactServer())
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._release_finalizers()
        self._stack.close()

    def _release_finalizers(self) -> None:
        """With no operator left to finalize them, ModelDeployments would hold the namespace forever."""
        with contextlib.suppress(Exception):
            for obj in self.kube.list(API_VERSION, KIND, self.namespace):
                if obj["metadata"].get("finalizers"):
                    self.kube.merge_patch(API_VERSION, KIND, self.namespace, obj["metadata"]["name"],
                                          {"metadata": {"finalizers": None}})

    @contextlib.contextmanager
    def run_operator(self, *, values: Mapping[str, Any] | None = None, server: str | None = None,
                     env: Mapping[str, str] | None = None, peering: str | None = None,
                     priority: int = 0) -> Iterator[OperatorProcess]:
        """The operator (its own process, as the chart's ServiceAccount) for this namespace."""
        with self.cluster.operator([self.namespace], values=values, server=server, env=env, peering=peering,
                                   priority=priority) as process:
            self.operator = process
            try:
                yield process
            finally:
                self.operator = None

    # ----- acting as a user -----

    def apply(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        """Create the ModelDeployment, or replace its spec (``kubectl apply`` of a whole manifest)."""
        wanted = dict(obj)
        meta = {**(wanted.get("metadata") or {}), "namespace": self.namespace}
        wanted["metadata"] = meta
        for _ in range(10):  # optimistic concurrency: the operator writes status meanwhile
            live = self.kube.get(API_VERSION, KIND, self.namespace, meta["name"])
            if live is None:
                return self.kube.create(wanted)
            merged = {**live, "spec": wanted["spec"]}
            merged["metadata"] = {**live["metadata"],
                                  **{k: v for k, v in meta.items() if k in ("labels", "annotations")}}
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

    def running_pods(self, *, ready: bool | None = None) -> list[PodProcesses]:
        """The sandbox kubelet's running pods of this namespace (``ready=True``: the ready ones only)."""
        return [p for p in self.kubelet.pods() if p.namespace == self.namespace and ready in (None, p.ready)]

    def deployments(self, name: str) -> list[dict[str, Any]]:
        return self.kube.list("apps/v1", "Deployment", self.namespace, {"modeldeploy.dev/name": name})

    def events(self, name: str | None = None) -> list[dict[str, Any]]:
        events = self.kube.list("v1", "Event", self.namespace)
        return [e for e in events if name is None or (e.get("involvedObject") or {}).get("name") == name]

    def wait_for_events(self, name: str, reason: str, count: int = 1, timeout: float = 15.0) -> list[dict[str, Any]]:
        """At least `count` Events of `reason` about `name`. The operator sends a round's Events after that
        round's status write, so a test that has seen a status waits for the Events of the same round."""
        def found() -> list[dict[str, Any]]:
            matching = [e for e in self.events(name) if e.get("reason") == reason]
            return matching if len(matching) >= count else []
        return wait_until(found, timeout=timeout, message=f"{count} {reason} Event(s) about {name}")

    def describe(self, name: str) -> str:
        """A short multi-line summary for failure messages: status, Deployments, pods, logs."""
        status = self.status(name)
        lines = [f"{name}: phase={status.get('phase')} reason={status.get('reason')} message={status.get('message')}",
                 f"  conditions: {status.get('conditions')}"]
        for deployment in self.deployments(name):
            lines.append(f"  deployment {deployment['metadata']['name']}: {deployment.get('status')}")
        for pod in self.pods(name):
            pod_status = pod.get("status") or {}
            states = [(c["name"], list(c.get("state") or {}), c.get("restartCount"))
                      for c in [*pod_status.get("initContainerStatuses", []), *pod_status.get("containerStatuses", [])]]
            lines.append(f"  pod {pod['metadata']['name']} {pod.get('spec', {}).get('nodeName')} "
                         f"{pod_status.get('phase')} {pod_status.get('podIP')} {states}")
            for container in ("fetch", "server"):
                log = self.kubelet.logs(self.namespace, pod["metadata"]["name"], container, lines=5)
                lines += [f"    {container}| {line}" for line in log.splitlines()]
        lines += [f"  event {e.get('reason')}: {e.get('message')}" for e in self.events()[-8:]]
        lines.append(f"  kubelet errors: {self.kubelet.errors[-3:]}")
        if self.operator is not None:
            lines += [f"  operator| {line}" for line in self.operator.log_tail(15).splitlines()]
        return "\n".join(lines)

    def wait_for(self, name: str, predicate: Callable[[dict[str, Any]], Any], timeout: float = 60.0,
                 what: str = "condition") -> dict[str, Any]:
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
        return LoadGenerator(self.kube, self.namespace, name, rate=rate, duration=duration, **options)
