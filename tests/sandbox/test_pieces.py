"""Unit tests of the sandbox's own pieces (no cluster): command lines, back-off, pod IPs and their
loopback twins, the pod network proxy, Prometheus' pod targets, the generated models."""

from __future__ import annotations

import http.server
import socket
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import onnx
import pytest

from modeldeploy_sandbox.addresses import PodAddressPool, is_loopback
from modeldeploy_sandbox.container_runner import Backoff
from modeldeploy_sandbox.network import PodNetworkProxy, loopback_for, pod_ip_for
from modeldeploy_sandbox.onnx_models import corrupt_model, linear_model, other_signature_model, sha256_digest
from modeldeploy_sandbox.process import UnsupportedContainer, plan_launch
from modeldeploy_sandbox.prometheus import pod_targets
from modeldeploy_sandbox.quantities import parse_quantity

TEST_CIDR = "10.244.250.0/29"  # far from the node CIDRs a cluster hands out first (10.244.0-3.0/24)


def test_backoff_doubles_from_the_base_up_to_the_cap() -> None:
    assert [Backoff().delay(n) for n in range(1, 7)] == [1, 2, 4, 8, 10, 10]
    assert Backoff(base=0.5, cap=1).delay(3) == 1


def test_fetch_and_serve_become_modelserver_processes_with_mapped_paths(tmp_path: Path) -> None:
    volumes = {"model-repository": tmp_path / "volumes/model-repository", "tmp": tmp_path / "volumes/tmp"}
    mounts = [{"name": "model-repository", "mountPath": "/models"}, {"name": "tmp", "mountPath": "/tmp"}]
    fetch = {
        "name": "fetch",
        "args": ["fetch", "http://127.0.0.1:1/m.onnx", "--into", "/models", "--model", "m"],
        "volumeMounts": mounts,
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
    launch = plan_launch(fetch, volumes=volumes, address="127.0.0.7", pod_dir=tmp_path, attempt=1)
    assert launch.argv[:4] == (sys.executable, "-m", "modelserver", "fetch")
    assert launch.argv[6] == str(tmp_path / "volumes/model-repository")
    assert launch.argv[-2:] == ("--termination-log", str(tmp_path / "termination-log/fetch-1"))
    assert launch.env["TMPDIR"] == str(tmp_path / "volumes/tmp")
    assert launch.message_policy == "FallbackToLogsOnError"

    serve = {
        "name": "server",
        "args": ["serve", "--model-repository=/models/x"],
        "volumeMounts": mounts,
        "env": [{"name": "MODELSERVER_FAULT_LATENCY_MS", "value": "5"}, {"name": "S", "valueFrom": {}}],
    }
    launch = plan_launch(serve, volumes=volumes, address="127.0.0.7", pod_dir=tmp_path, attempt=2)
    assert launch.argv[4:] == (f"--model-repository={tmp_path}/volumes/model-repository/x", "--host", "127.0.0.7")
    assert launch.env["MODELSERVER_FAULT_LATENCY_MS"] == "5" and "S" not in launch.env
    assert not any(key.startswith("PYTEST") for key in launch.env)  # nothing of this process leaks in

    # A GPU pod's server (``--device cuda``) runs on the CPU: the sandbox's GPU nodes have no CUDA.
    gpu = {**serve, "args": ["serve", "--model-repository=/models/x", "--device", "cuda"]}
    launch = plan_launch(gpu, volumes=volumes, address="127.0.0.7", pod_dir=tmp_path, attempt=1)
    assert launch.argv[5:] == ("--device", "cpu", "--host", "127.0.0.7")

    # An interpreter under /tmp (a CI checkout there) is the host's, not a path in the pod.
    launch = plan_launch(serve, volumes=volumes, address="a", pod_dir=tmp_path, attempt=3, python="/tmp/ci/bin/python")
    assert launch.argv[0] == "/tmp/ci/bin/python"

    with pytest.raises(UnsupportedContainer, match="tritonserver"):
        plan_launch(
            {"name": "server", "command": ["tritonserver"]}, volumes={}, address="a", pod_dir=tmp_path, attempt=1
        )


def test_quantities() -> None:
    assert [parse_quantity(q) for q in ("500m", "2Gi", "1", "1e3", "1k", 3)] == [0.5, 2.0**31, 1, 1000, 1000, 3]
    with pytest.raises(ValueError):
        parse_quantity("2 apples")


def test_pod_ips_come_from_the_node_cidr_skip_busy_twins_and_are_reused() -> None:
    pool = PodAddressPool(TEST_CIDR, ports=(18999,))
    with socket.socket() as busy:
        busy.bind((loopback_for("10.244.250.2"), 18999))
        busy.listen()
        first = pool.allocate()
        assert first == "10.244.250.3"  # .1 is the node's bridge; .2 has its port taken on its twin
    second = pool.allocate()
    assert second == "10.244.250.2"
    # Another pool on the same CIDR (a second cluster in this process) never hands out the same IPs.
    other = PodAddressPool(TEST_CIDR, ports=(18999,))
    assert other.allocate() == "10.244.250.4"
    pool.release("10.244.250.3")
    assert other.allocate() == "10.244.250.3" and pool.allocate() == "10.244.250.5"
    assert pool.allocate() == "10.244.250.6" and pool.allocate() is None and other.allocate() is None
    for ip in pool.taken():
        pool.release(ip)
    for ip in other.taken():
        other.release(ip)
    assert pool.taken() == other.taken() == set()
    assert loopback_for("10.244.3.7") == "127.244.3.7" and pod_ip_for("127.244.3.7") == "10.244.3.7"
    with pytest.raises(ValueError):
        loopback_for("10.96.0.1")  # a Service IP is not a pod IP
    assert is_loopback("127.0.0.9") and not is_loopback("10.0.0.1") and not is_loopback("nonsense")


class _Named(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive unless told otherwise

    def do_GET(self) -> None:
        body = str(self.connection.getsockname()[0]).encode()  # which pod answered: its loopback address
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture()
def two_pods() -> Iterator[tuple[int, list[str]]]:
    """Two HTTP servers on the loopback twins of 10.244.250.2 and .3, on the same port."""
    first = http.server.ThreadingHTTPServer((loopback_for("10.244.250.2"), 0), _Named)
    port = int(first.server_address[1])
    second = http.server.ThreadingHTTPServer((loopback_for("10.244.250.3"), port), _Named)
    threads = [threading.Thread(target=s.serve_forever, daemon=True) for s in (first, second)]
    for thread in threads:
        thread.start()
    yield port, ["10.244.250.2", "10.244.250.3"]
    for server in (first, second):
        server.shutdown()
        server.server_close()


def _exchange(sock: socket.socket, request: bytes) -> bytes:
    """Send, then read until the other side closes."""
    sock.sendall(request)
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def test_the_pod_network_proxy_reaches_pod_ips_one_request_per_connection(two_pods: tuple[int, list[str]]) -> None:
    port, ips = two_pods
    with PodNetworkProxy() as proxy:
        for ip in ips:
            with socket.create_connection((proxy.host, proxy.port), timeout=5) as sock:
                # A keep-alive client (Go's transport) reuses its proxy connection for any host: the proxy
                # forwards one request and closes, so that no later request can reach the first pod.
                answer = _exchange(sock, f"GET http://{ip}:{port}/metrics HTTP/1.1\r\nHost: {ip}:{port}\r\n"
                                         f"Connection: keep-alive\r\n\r\n".encode())
            head, _, body = answer.partition(b"\r\n\r\n")
            assert b" 200 " in head.split(b"\r\n")[0], answer
            assert body == loopback_for(ip).encode()
        with socket.create_connection((proxy.host, proxy.port), timeout=5) as sock:
            refused = _exchange(sock, b"GET http://10.96.0.1:443/ HTTP/1.1\r\nHost: x\r\n\r\n")
        assert refused.startswith(b"HTTP/1.1 403 Forbidden") and b"not in the sandbox pod network" in refused


def test_prometheus_pod_targets_are_what_kubernetes_sd_and_the_documented_relabelling_keep() -> None:
    def pod(name: str, ip: str | None, managed: bool = True) -> dict[str, Any]:
        labels = {"modeldeploy.dev/revision": "resnet-a"}
        if managed:
            labels["app.kubernetes.io/managed-by"] = "modeldeploy"
        ports = [{"name": "http", "containerPort": 8000}, {"name": "metrics", "containerPort": 8002}]
        return {"metadata": {"name": name, "namespace": "ml", "labels": labels},
                "spec": {"initContainers": [{"name": "fetch"}], "containers": [{"name": "server", "ports": ports}]},
                "status": {"podIP": ip} if ip else {}}

    targets = pod_targets([pod("b", "10.244.0.5"), pod("a", "10.244.0.4"), pod("pending", None),
                           pod("other", "10.244.0.6", managed=False)])
    assert targets == [
        {"targets": ["10.244.0.4:8002"], "labels": {"namespace": "ml", "pod": "a", "revision": "resnet-a"}},
        {"targets": ["10.244.0.5:8002"], "labels": {"namespace": "ml", "pod": "b", "revision": "resnet-a"}},
    ]


def test_generated_models_have_the_expected_signatures() -> None:
    linear = onnx.load_from_string(linear_model(seed=1))
    assert [i.name for i in linear.graph.input] == ["input"] and [o.name for o in linear.graph.output] == ["output"]
    dims = [d.dim_param or d.dim_value for d in linear.graph.output[0].type.tensor_type.shape.dim]
    assert dims == ["batch", 3]  # a symbolic batch dim: [-1, 3] on the inference protocol
    assert linear_model(seed=1) == linear_model(seed=1) != linear_model(seed=2)
    other = onnx.load_from_string(other_signature_model())
    assert [i.name for i in other.graph.input] == ["features"]
    with pytest.raises(Exception):  # noqa: B017 - onnx raises protobuf's DecodeError
        onnx.load_from_string(corrupt_model())
    assert sha256_digest(b"") == "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def test_the_crash_fault_is_parsed_but_armed_only_from_the_process_environment() -> None:
    from modelserver.faults import Faults

    before = threading.active_count()
    faults = Faults.from_env({"MODELSERVER_TEST_FAULTS": "1", "MODELSERVER_FAULT_CRASH_AFTER_S": "0.5"})
    assert faults.crash_after_s == 0.5 and not faults.active
    assert threading.active_count() == before  # no timer: this test process must live on
