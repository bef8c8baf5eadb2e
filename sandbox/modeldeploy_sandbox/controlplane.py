"""A real Kubernetes control plane on loopback: etcd, kube-apiserver, kube-controller-manager and
kube-scheduler, built from their Go modules (:mod:`.binaries`), with certificates made on the spot.

    with ControlPlane() as cp:                     # up in a few seconds once the binaries are cached
        cp.kubeconfig                              # admin (system:masters) kubeconfig file
        kube = cp.client()                         # modeldeploy.kubeapi.KubeClient as that admin

What a production cluster has, and the sandbox keeps: RBAC and Node authorization, the admission
plugins that are on by default plus NodeRestriction and OwnerReferencesPermissionEnforcement (as
OpenShift enables it), ServiceAccount token signing (TokenRequest), node CIDR allocation (pod IPs come
from each Node's ``spec.podCIDR``), and the controllers' own ServiceAccount credentials. What it
lacks: a real kubelet and container runtime (the sandbox kubelet, :mod:`.kubelet`, stands in),
kube-proxy (:mod:`.network` routes to pods), DNS and a metrics server.

Every process runs in its own session with its log in the sandbox directory; :meth:`ControlPlane.stop`
ends them all (SIGTERM, then SIGKILL) and removes the directory.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import yaml

from modeldeploy.kubeapi import KubeClient
from modeldeploy_sandbox.binaries import KubeBinaries, ensure_binaries
from modeldeploy_sandbox.pki import CertFiles, CertificateAuthority, service_account_keys

SERVICE_CIDR = "10.96.0.0/16"
CLUSTER_CIDR = "10.244.0.0/16"  # node podCIDRs (/24 each) are cut from it by the node IPAM controller
ADVERTISE_ADDRESS = "10.240.0.1"  # only written into the `kubernetes` Endpoints; nothing dials it
ISSUER = "https://kubernetes.default.svc.cluster.local"
# On top of the plugins a kube-apiserver enables by default: what kubeadm and OpenShift add.
EXTRA_ADMISSION_PLUGINS = ("NodeRestriction", "OwnerReferencesPermissionEnforcement")
READY_TIMEOUT_S = 60.0
_PR_SET_PDEATHSIG = 1


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _die_with_parent() -> None:
    """In the child before exec: SIGKILL it if the process that started it dies (no orphans)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def rss_bytes(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


@dataclasses.dataclass
class Component:
    name: str
    process: subprocess.Popen[bytes]
    log_path: Path
    argv: tuple[str, ...] = ()
    env: Mapping[str, str] | None = None

    def alive(self) -> bool:
        return self.process.poll() is None

    def log_tail(self, lines: int = 20) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""



def _end(component: Component, first: signal.Signals | None, grace: float) -> None:
    """Send `first` to the component's process group (None: it already ended), SIGKILL after `grace`."""
    if first is not None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(component.process.pid, first)
    try:
        component.process.wait(grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(component.process.pid, signal.SIGKILL)
        component.process.wait(5.0)

class ControlPlaneError(RuntimeError):
    pass


def kubeconfig_document(server: str, ca: bytes, *, user: str, client: CertFiles | None = None,
                        token: str | None = None, namespace: str | None = None) -> dict[str, Any]:
    """A kubeconfig with one cluster/user/context; credentials embedded (a client certificate or a token)."""
    import base64

    credentials: dict[str, Any] = {}
    if client is not None:
        credentials["client-certificate-data"] = base64.b64encode(client.cert.read_bytes()).decode()
        credentials["client-key-data"] = base64.b64encode(client.key.read_bytes()).decode()
    if token is not None:
        credentials["token"] = token
    context: dict[str, Any] = {"cluster": "modeldeploy-sandbox", "user": user}
    if namespace:
        context["namespace"] = namespace
    return {
        "apiVersion": "v1", "kind": "Config", "current-context": "modeldeploy-sandbox",
        "clusters": [{"name": "modeldeploy-sandbox",
                      "cluster": {"server": server, "certificate-authority-data": base64.b64encode(ca).decode()}}],
        "users": [{"name": user, "user": credentials}],
        "contexts": [{"name": "modeldeploy-sandbox", "context": context}],
    }


class ControlPlane:
    """See the module docstring. ``directory``: where certificates, kubeconfigs, logs and etcd's data go
    (a new temporary directory by default, removed on stop)."""

    def __init__(self, binaries: KubeBinaries | None = None, directory: Path | None = None,
                 *, apiserver_flags: Sequence[str] = (), audit_groups: Sequence[str] = (),
                 controllers: bool = True) -> None:
        self.binaries = binaries or ensure_binaries()
        self._own_directory = directory is None
        self.directory = directory or Path(tempfile.mkdtemp(prefix="modeldeploy-cp-"))
        self.directory.mkdir(parents=True, exist_ok=True)
        self.apiserver_flags = tuple(apiserver_flags)
        self.audit_groups = tuple(audit_groups)  # whose requests the audit log records (metadata only)
        self.audit_log = self.directory / "audit.log"
        self.with_controllers = controllers  # False: etcd and kube-apiserver only (a benchmark's floor)
        self.components: dict[str, Component] = {}
        self.started_seconds = 0.0
        self.port = 0
        self.kubeconfig = self.directory / "admin.kubeconfig"
        self._etcd_data: Path | None = None
        self._lock = threading.Lock()

    @property
    def version(self) -> str:
        return self.binaries.version

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    # ----- lifecycle -----

    def __enter__(self) -> ControlPlane:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def start(self) -> ControlPlane:
        started = time.monotonic()
        try:
            self._prepare()
            self._start_etcd()
            self._start_apiserver()
            deadline = started + READY_TIMEOUT_S
            # The controllers refuse to start until the apiserver has bootstrapped its RBAC policy.
            self._wait_healthy("kube-apiserver", self.port, "/readyz", deadline)
            if self.with_controllers:
                self._start_controllers()
                self._wait_ready(deadline)
        except BaseException:
            self.stop()
            raise
        self.started_seconds = time.monotonic() - started
        return self

    def stop(self) -> None:
        """Stop every component, last started first, each before the next; remove the files.

        In order because each needs the next one to stop cleanly: a kube-apiserver whose etcd is gone
        waits seconds for it before exiting. Each gets SIGTERM, then SIGKILL after 5 s.
        """
        with self._lock:
            components = list(reversed(self.components.values()))
            self.components.clear()
        for component in components:
            _end(component, signal.SIGTERM if component.alive() else None, grace=5.0)
        if self._etcd_data is not None:
            shutil.rmtree(self._etcd_data, ignore_errors=True)
        if self._own_directory:
            shutil.rmtree(self.directory, ignore_errors=True)

    def restart(self, name: str, *, kill: bool = True, down_seconds: float = 0.0,
                timeout: float = READY_TIMEOUT_S) -> float:
        """End component ``name`` (SIGKILL by default, as a crash; else SIGTERM) and start it again with
        the same command line: same ports, same etcd data. Returns the seconds until the apiserver was
        ready again (an etcd restart is over when the apiserver can read from it)."""
        component = self.components[name]
        began = time.monotonic()
        _end(component, signal.SIGKILL if kill else signal.SIGTERM, grace=10.0)
        time.sleep(down_seconds)  # the outage itself: how long the component stays away
        self._spawn(name, component.argv, component.env)
        self._wait_healthy("kube-apiserver", self.port, "/readyz", time.monotonic() + timeout)
        return time.monotonic() - began

    # ----- setup -----

    def _prepare(self) -> None:
        pki = self.directory / "pki"
        ca = CertificateAuthority(pki)
        self.ca_pem = ca.pem
        self.ca_path = ca.cert_path
        self.port = free_port()
        self._serving = ca.issue("apiserver", "kube-apiserver", server_names=(
            "localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
            "kubernetes.default.svc.cluster.local"), server_ips=("127.0.0.1", "10.96.0.1", ADVERTISE_ADDRESS))
        self._sa = service_account_keys(pki)
        self._admin = ca.issue("admin", "kubernetes-admin", organizations=("system:masters",))
        self.kubeconfig.write_text(yaml.safe_dump(
            kubeconfig_document(self.server, ca.pem, user="kubernetes-admin", client=self._admin)))
        self._component_kubeconfigs: dict[str, Path] = {}
        for name, user in (("kube-controller-manager", "system:kube-controller-manager"),
                           ("kube-scheduler", "system:kube-scheduler")):
            client = ca.issue(name, user)
            path = self.directory / f"{name}.kubeconfig"
            path.write_text(yaml.safe_dump(kubeconfig_document(self.server, ca.pem, user=user, client=client)))
            self._component_kubeconfigs[name] = path

    def _spawn(self, name: str, argv: Sequence[str], env: Mapping[str, str] | None = None) -> Component:
        log_path = self.directory / f"{name}.log"
        with open(log_path, "ab") as log:
            process = subprocess.Popen(
                list(argv), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True, env={**os.environ, **(env or {})},
                preexec_fn=_die_with_parent if threading.current_thread() is threading.main_thread() else None,
            )
        component = Component(name, process, log_path, tuple(argv), env)
        with self._lock:
            self.components[name] = component
        return component

    def _start_etcd(self) -> None:
        # In memory where the machine has /dev/shm: etcd's writes are the apiserver's floor.
        data = Path(tempfile.mkdtemp(prefix="modeldeploy-etcd-", dir="/dev/shm" if Path("/dev/shm").is_dir() else None))
        self._etcd_data = data
        (self.directory / "etcd-data").symlink_to(data)
        self.etcd_port, peer = free_port(), free_port()
        self._spawn("etcd", [
            str(self.binaries.path("etcd")), "--name=sandbox", f"--data-dir={data}",
            f"--listen-client-urls=http://127.0.0.1:{self.etcd_port}",
            f"--advertise-client-urls=http://127.0.0.1:{self.etcd_port}",
            f"--listen-peer-urls=http://127.0.0.1:{peer}",
            f"--initial-advertise-peer-urls=http://127.0.0.1:{peer}",
            f"--initial-cluster=sandbox=http://127.0.0.1:{peer}",
            "--unsafe-no-fsync", "--log-level=warn", "--quota-backend-bytes=2147483648",
        ])

    def _audit_flags(self) -> list[str]:
        if not self.audit_groups:
            return []
        policy = {"apiVersion": "audit.k8s.io/v1", "kind": "Policy", "omitStages": ["RequestReceived"],
                  "rules": [{"level": "Metadata", "userGroups": list(self.audit_groups)}, {"level": "None"}]}
        path = self.directory / "audit-policy.yaml"
        path.write_text(yaml.safe_dump(policy))
        return [f"--audit-policy-file={path}", f"--audit-log-path={self.audit_log}", "--audit-log-format=json",
                "--audit-log-maxsize=0"]

    def compact_etcd(self) -> int:
        """Compact etcd's history up to now, as the apiserver does every 5 minutes: a watch from an
        older resourceVersion then gets 410 Gone. Returns the revision compacted to."""
        base = f"http://127.0.0.1:{self.etcd_port}/v3/kv"

        def post(path: str, body: dict[str, Any]) -> dict[str, Any]:
            request = urllib.request.Request(f"{base}/{path}", data=json.dumps(body).encode(),
                                             headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(request, timeout=10) as answer:
                return dict(json.loads(answer.read()))

        revision = int(post("range", {"key": "AA=="})["header"]["revision"])  # any key: the header has it
        post("compaction", {"revision": str(revision), "physical": True})
        return revision

    def audit_events(self) -> list[dict[str, Any]]:
        """What the audit log holds so far (the requests of ``audit_groups``), oldest first."""
        try:
            text = self.audit_log.read_text()
        except OSError:
            return []
        return [json.loads(line) for line in text.splitlines() if line.strip().endswith("}")]

    def _start_apiserver(self) -> None:
        pki = self.directory / "pki"
        self._spawn("kube-apiserver", [
            str(self.binaries.path("kube-apiserver")),
            f"--etcd-servers=http://127.0.0.1:{self.etcd_port}",
            "--bind-address=127.0.0.1", f"--secure-port={self.port}", f"--advertise-address={ADVERTISE_ADDRESS}",
            f"--tls-cert-file={self._serving.cert}", f"--tls-private-key-file={self._serving.key}",
            f"--client-ca-file={pki / 'ca.crt'}",
            f"--service-account-issuer={ISSUER}", f"--api-audiences={ISSUER}",
            f"--service-account-key-file={self._sa.cert}", f"--service-account-signing-key-file={self._sa.key}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--authorization-mode=Node,RBAC",
            f"--enable-admission-plugins={','.join(EXTRA_ADMISSION_PLUGINS)}",
            "--allow-privileged=false", "--profiling=false", "--v=0",
            # ConfigMaps are watched straight from etcd: after compact_etcd() an old resourceVersion
            # gets a real 410 Gone (the watch cache would still serve it from its window).
            "--watch-cache-sizes=configmaps#0",
            *self._audit_flags(), *self.apiserver_flags,
        ])

    def _start_controllers(self) -> None:
        pki = self.directory / "pki"
        kcm = self._component_kubeconfigs["kube-controller-manager"]
        self.controller_manager_port = free_port()
        self._spawn("kube-controller-manager", [
            str(self.binaries.path("kube-controller-manager")),
            f"--kubeconfig={kcm}", f"--authentication-kubeconfig={kcm}", f"--authorization-kubeconfig={kcm}",
            "--bind-address=127.0.0.1", f"--secure-port={self.controller_manager_port}",
            "--use-service-account-credentials=true", f"--service-account-private-key-file={self._sa.key}",
            f"--root-ca-file={pki / 'ca.crt'}", "--leader-elect=false",
            "--allocate-node-cidrs=true", f"--cluster-cidr={CLUSTER_CIDR}", "--node-cidr-mask-size=24",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            # With its own ServiceAccount per controller it first makes ~40 accounts and tokens: at the
            # default 20 requests/s that alone took 5 s of an 8 s start (3 s with this).
            "--kube-api-qps=100", "--kube-api-burst=200", "--v=0",
        ])
        scheduler = self._component_kubeconfigs["kube-scheduler"]
        self.scheduler_port = free_port()
        self._spawn("kube-scheduler", [
            str(self.binaries.path("kube-scheduler")),
            f"--kubeconfig={scheduler}", f"--authentication-kubeconfig={scheduler}",
            f"--authorization-kubeconfig={scheduler}",
            "--bind-address=127.0.0.1", f"--secure-port={self.scheduler_port}", "--leader-elect=false", "--v=0",
        ])

    # ----- readiness -----

    def _healthy(self, port: int, path: str) -> bool:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE  # the components' self-signed serving certificates
        if port == self.port:
            context = ssl.create_default_context(cafile=str(self.ca_path))
            context.load_cert_chain(str(self._admin.cert), str(self._admin.key))
        try:
            with urllib.request.urlopen(f"https://127.0.0.1:{port}{path}", context=context, timeout=2) as answer:
                return bool(answer.status == 200)
        except OSError:
            return False

    def _wait_healthy(self, name: str, port: int, path: str, deadline: float) -> None:
        while not self._healthy(port, path):
            self._check_alive()
            if time.monotonic() > deadline:
                raise ControlPlaneError(f"{name} was not healthy within {READY_TIMEOUT_S:.0f}s:\n"
                                        f"{self.components[name].log_tail()}")
            time.sleep(0.05)

    def _wait_ready(self, deadline: float) -> None:
        self._wait_healthy("kube-controller-manager", self.controller_manager_port, "/healthz", deadline)
        self._wait_healthy("kube-scheduler", self.scheduler_port, "/healthz", deadline)
        # The controllers are up once the ServiceAccount controller made the default namespace's account.
        kube = self.client()
        try:
            while kube.get("v1", "ServiceAccount", "default", "default") is None:
                self._check_alive()
                if time.monotonic() > deadline:
                    raise ControlPlaneError("kube-controller-manager made no ServiceAccount in time:\n"
                                            f"{self.components['kube-controller-manager'].log_tail()}")
                time.sleep(0.1)
        finally:
            kube.close()

    def _check_alive(self) -> None:
        for component in list(self.components.values()):
            if not component.alive():
                raise ControlPlaneError(f"{component.name} exited with code {component.process.returncode}:\n"
                                        f"{component.log_tail()}")

    # ----- clients and measurements -----

    def client(self, **kwargs: Any) -> KubeClient:
        """The operator's API client, as the admin."""
        return KubeClient.from_kubeconfig(self.kubeconfig, **{"discover": True, **kwargs})

    def rss(self) -> dict[str, int]:
        """Resident memory of each component, in bytes."""
        return {name: rss_bytes(c.process.pid) for name, c in self.components.items() if c.alive()}

    def logs(self) -> Iterator[tuple[str, str]]:
        for name, component in self.components.items():
            yield name, component.log_tail(40)
