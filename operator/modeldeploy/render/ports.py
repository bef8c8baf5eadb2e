"""The runtime contract's ports: the same for Triton and modelserver (DESIGN section 5)."""

from __future__ import annotations

HTTP_PORT = 8000
GRPC_PORT = 8001
METRICS_PORT = 8002

# name -> (port, appProtocol). gRPC is HTTP/2 without TLS inside the cluster.
PORTS: dict[str, tuple[int, str]] = {
    "http": (HTTP_PORT, "http"),
    "grpc": (GRPC_PORT, "kubernetes.io/h2c"),
    "metrics": (METRICS_PORT, "http"),
}
