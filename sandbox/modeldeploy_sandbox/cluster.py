"""A whole local cluster: the real control plane, its cluster-wide objects, the sandbox kubelet with
its Nodes, and the pod network. ``modeldeploy sandbox up``, the tests and ``make demo`` all start this.

    with LocalCluster() as cluster:
        cluster.create_namespace("ml")
        kubeconfig = cluster.operator_kubeconfig(["ml"])     # the chart's RBAC + a TokenRequest token
        with cluster.operator(["ml"]) as op: ...               # the operator as that ServiceAccount

The operator's ServiceAccount lives in ``modeldeploy-system`` as the chart installs it, and its
requests are in the apiserver's audit log (:meth:`LocalCluster.forbidden` lists its 403s).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import yaml

from modeldeploy.kubeapi import KubeClient, NotFound
from modeldeploy_sandbox import chart, manifests
from modeldeploy_sandbox.binaries import KubeBinaries, ensure_binaries
from modeldeploy_sandbox.controlplane import ISSUER, ControlPlane, kubeconfig_document
from modeldeploy_sandbox.kubelet import Kubelet
from modeldeploy_sandbox.network import PodNetworkProxy
from modeldeploy_sandbox.nodes import SandboxNode
from modeldeploy_sandbox.operator_process import OperatorProcess

OPERATOR_GROUP = f"system:serviceaccounts:{chart.RELEASE_NAMESPACE}"
TOKEN_SECONDS = 24 * 3600
# Pod Security Admission as a production namespace has it: the model pods must pass "restricted".
RESTRICTED = {"pod-security.kubernetes.io/enforce": "restricted", "pod-security.kubernetes.io/warn": "restricted"}


class LocalCluster:
    def __init__(
        self,
        binaries: KubeBinaries | None = None,
        *,
        nodes: Sequence[SandboxNode] | None = None,
        gateway_api: bool = True,
        directory: Path | None = None,
        kubelet_options: Mapping[str, Any] | None = None,
        kubelet_class: type[Kubelet] = Kubelet,
    ) -> None:
        self.control_plane = ControlPlane(binaries or ensure_binaries(), directory, audit_groups=(OPERATOR_GROUP,))
        self.gateway_api = gateway_api
        self._nodes = nodes
        self._kubelet_options = dict(kubelet_options or {})
        self._kubelet_class = kubelet_class
        self._stack = contextlib.ExitStack()
        self.admin: KubeClient
        self.kubelet: Kubelet
        self.network: PodNetworkProxy
        self.started_seconds = 0.0

    @property
    def version(self) -> str:
        return self.control_plane.version

    @property
    def directory(self) -> Path:
        return self.control_plane.directory

    def start(self) -> LocalCluster:
        started = time.monotonic()
        try:
            self._stack.enter_context(self.control_plane)
            self.admin = self.control_plane.client()
            self._stack.callback(self.admin.close)
            manifests.install_cluster_objects(self.admin, gateway_api=self.gateway_api)
            self.network = self._stack.enter_context(PodNetworkProxy())
            kubelet_client = self.control_plane.client(user_agent="modeldeploy-sandbox-kubelet", timeout=10.0)
            self._stack.callback(kubelet_client.close)
            self.kubelet = self._stack.enter_context(
                self._kubelet_class(kubelet_client, self._nodes, kubelet_version=self.version,
                                    **self._kubelet_options))
        except BaseException:
            self._stack.close()
            raise
        self.started_seconds = time.monotonic() - started
        return self

    def stop(self) -> None:
        self._stack.close()  # LIFO: the kubelet (and its processes) first, the control plane last

    def __enter__(self) -> LocalCluster:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    # ----- namespaces -----

    def create_namespace(self, name: str, labels: Mapping[str, str] | None = None) -> None:
        self.admin.create({"apiVersion": "v1", "kind": "Namespace",
                           "metadata": {"name": name, "labels": {**RESTRICTED, **(labels or {})}}})

    def delete_namespace(self, name: str, timeout: float = 60.0, *, until_gone: bool = True) -> None:
        """Delete and wait until it is gone: the namespace controller and the kubelet end its pods.

        ``until_gone=False`` waits only until its pods are: it deletes them itself right away (nothing can
        make new ones in a terminating namespace), and leaves the rest to the namespace controller, which
        starts only 5 s after the deletion (``namespaceDeletionGracePeriod``) and then deletes the pods
        first and everything else on a later pass: ~10 s for a namespace with pods, against ~0.5 s.
        """
        if not self.admin.delete("v1", "Namespace", None, name):
            return
        deadline = time.monotonic() + timeout
        if not until_gone:
            with contextlib.suppress(NotFound):
                self.admin.request("DELETE", f"/api/v1/namespaces/{name}/pods")
        while (self.admin.get("v1", "Namespace", None, name) is not None if until_gone
               else not self.namespace_is_empty(name)):
            if time.monotonic() > deadline:
                raise TimeoutError(f"namespace {name} still {'there' if until_gone else 'has pods'} "
                                   f"after {timeout}s")
            time.sleep(0.1)

    # ----- the operator, as the chart's ServiceAccount -----

    def install_operator_rbac(self, values: Mapping[str, Any], shard: str | None = None) -> str:
        """The chart's ServiceAccount(s) and RBAC for ``values``; returns the (``shard``'s) ServiceAccount's name."""
        if self.admin.get("v1", "Namespace", None, chart.RELEASE_NAMESPACE) is None:
            with contextlib.suppress(Exception):
                self.admin.create({"apiVersion": "v1", "kind": "Namespace",
                                   "metadata": {"name": chart.RELEASE_NAMESPACE}})
        for obj in chart.rbac_objects(values):
            manifests.server_side_apply(self.admin, obj)
        return chart.service_account(values, shard)

    def service_account_kubeconfig(self, namespace: str, account: str, path: Path) -> Path:
        """A kubeconfig holding a TokenRequest token of ServiceAccount ``namespace/account``."""
        request = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                   "spec": {"audiences": [ISSUER], "expirationSeconds": TOKEN_SECONDS}}
        answer = self.admin.request("POST", f"/api/v1/namespaces/{namespace}/serviceaccounts/{account}/token",
                                    body=request)
        document = kubeconfig_document(self.control_plane.server, self.control_plane.ca_pem,
                                       user=f"system:serviceaccount:{namespace}:{account}",
                                       token=answer["status"]["token"])
        path.write_text(yaml.safe_dump(document))
        return path

    def operator_kubeconfig(self, values: Mapping[str, Any], path: Path | None = None,
                            shard: str | None = None) -> Path:
        """The chart's RBAC for ``values`` applied, then a kubeconfig with its (``shard``'s) ServiceAccount's token."""
        account = self.install_operator_rbac(values, shard)
        path = path or self.directory / f"operator-{time.time_ns()}.kubeconfig"
        return self.service_account_kubeconfig(chart.RELEASE_NAMESPACE, account, path)

    @contextlib.contextmanager
    def operator(self, namespaces: Sequence[str] | None = None, *, values: Mapping[str, Any] | None = None,
                 server: str | None = None, env: Mapping[str, str] | None = None,
                 peering: str | None = None, priority: int = 0,
                 shard: str | None = None) -> Iterator[OperatorProcess]:
        """The operator for ``namespaces`` (None: cluster-wide) until the block exits.

        ``values`` are extra chart values; ``server`` points the operator at another URL in front of the
        apiserver (the fault-injection proxy); ``peering``/``priority``: one replica of several (kopf
        peering; the KopfPeering object must exist) instead of a standalone operator; ``shard``: with the
        chart's ``shards`` in ``values``, that shard's Deployment, as its own ServiceAccount.
        """
        # The sandbox's Prometheus servers listen on 127.0.0.1 (any port): the chart's allow-list admits them.
        chart_values: dict[str, Any] = {"operator": {"logFormat": "plain"},
                                        "prometheus": {"allowedAddresses": ["http://127.0.0.1"]}, **(values or {})}
        if namespaces:
            chart_values["watchNamespaces"] = list(namespaces)
        kubeconfig = self.operator_kubeconfig(chart_values, shard=shard)
        if server is not None:
            document = yaml.safe_load(kubeconfig.read_text())
            document["clusters"][0]["cluster"]["server"] = server
            kubeconfig.write_text(yaml.safe_dump(document))
        with OperatorProcess(kubeconfig, chart_values=chart_values, proxy=self.network.url, env=env,
                             log_path=self.directory / f"operator-{time.time_ns()}.log",
                             peering=peering, priority=priority, shard=shard) as process:
            yield process

    def forbidden(self) -> list[str]:
        """Every request of the operator's ServiceAccount that the apiserver refused with 403."""
        return [f"{e.get('verb')} {e.get('requestURI')}: {(e.get('responseStatus') or {}).get('message', '')}"
                for e in self.control_plane.audit_events()
                if (e.get("responseStatus") or {}).get("code") == 403
                # NamespaceLifecycle's 403 (a namespace of another test being deleted) is no RBAC refusal.
                and "because it is being terminated" not in (e.get("responseStatus") or {}).get("message", "")]

    def namespace_is_empty(self, namespace: str) -> bool:
        try:
            return not self.admin.list("v1", "Pod", namespace)
        except NotFound:
            return True
