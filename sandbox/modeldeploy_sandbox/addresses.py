"""Pod IPs from a Node's ``spec.podCIDR``, each with its loopback twin free to listen on.

Each pod gets its own IP so every pod can listen on the real ports (8000/8001/8002) as it would in
a cluster. An IP is handed out only if those ports are free on its loopback twin (a leftover process
of another run would otherwise make the pod crash with "address in use"), and is reused, lowest
first, once its pod is gone. The network and gateway addresses (.0, .1) and broadcast are skipped.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import threading
from collections.abc import Iterable

from modeldeploy_sandbox.network import loopback_for

DEFAULT_PORTS = (8000, 8001, 8002)
_IN_PROCESS: set[str] = set()  # every pool's taken IPs (see the module docstring)
_IN_PROCESS_LOCK = threading.Lock()


def ports_free(address: str, ports: Iterable[int]) -> bool:
    """Whether every port can be bound on ``address`` (SO_REUSEADDR, like the servers themselves)."""
    for port in ports:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((address, port))
            except OSError:
                return False
    return True


def is_loopback(address: str) -> bool:
    with contextlib.suppress(ValueError):
        return ipaddress.ip_address(address).is_loopback
    return False


class PodAddressPool:
    """Thread-safe allocator of pod IPs in one node's pod CIDR."""

    def __init__(self, cidr: str, ports: Iterable[int] = DEFAULT_PORTS) -> None:
        self.network = ipaddress.IPv4Network(cidr)
        self.ports = tuple(ports)
        self._taken: set[str] = set()
        self._lock = threading.Lock()

    def allocate(self) -> str | None:
        """The lowest free pod IP whose loopback twin has its ports free, or None if there is none."""
        with self._lock, _IN_PROCESS_LOCK:
            for host in list(self.network.hosts())[1:]:  # .1 is the node's bridge in a real CNI
                ip = str(host)
                if ip not in _IN_PROCESS and ports_free(loopback_for(ip), self.ports):
                    self._taken.add(ip)
                    _IN_PROCESS.add(ip)
                    return ip
        return None

    def release(self, ip: str) -> None:
        with self._lock, _IN_PROCESS_LOCK:
            if ip in self._taken:
                self._taken.discard(ip)
                _IN_PROCESS.discard(ip)

    def taken(self) -> set[str]:
        with self._lock:
            return set(self._taken)
