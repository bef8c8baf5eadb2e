"""Pod IPs from a Node's ``spec.podCIDR``, each with its loopback twin free to listen on.

Each pod gets its own IP so every pod can listen on the real ports (8000/8001/8002) as it would in
a cluster. An IP is handed out only if those ports are free on its loopback twin (a leftover process
of another run would otherwise make the pod crash with "address in use"), and is reused, lowest
first, once its pod is gone. The network and gateway addresses (.0, .1) and broadcast are skipped.

Every local cluster on the machine cuts the same pod CIDRs, so two test sessions running at once
would both hand out 10.244.0.2 and one pod would crash. An IP is therefore also held, while its pod
lives, by an advisory lock on a file named after it (:data:`LOCK_DIRECTORY`): the kernel drops the
lock when the holding process ends, so a crashed session holds nothing.
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import os
import socket
import tempfile
import threading
from collections.abc import Iterable
from pathlib import Path

from modeldeploy_sandbox.network import loopback_for

DEFAULT_PORTS = (8000, 8001, 8002)
LOCK_DIRECTORY = Path(tempfile.gettempdir()) / "modeldeploy-pod-ips"
_IN_PROCESS: dict[str, int] = {}  # every pool's taken IPs -> their lock file (see the module docstring)
_IN_PROCESS_LOCK = threading.Lock()


def _lock_ip(ip: str) -> int | None:
    """An open descriptor holding ``ip``'s machine-wide lock, or None if another process holds it."""
    LOCK_DIRECTORY.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(LOCK_DIRECTORY / ip, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(descriptor)
        return None
    return descriptor


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
                if ip in _IN_PROCESS or not ports_free(loopback_for(ip), self.ports):
                    continue
                descriptor = _lock_ip(ip)
                if descriptor is None:  # another session's pod has it (its process may not listen yet)
                    continue
                self._taken.add(ip)
                _IN_PROCESS[ip] = descriptor
                return ip
        return None

    def release(self, ip: str) -> None:
        with self._lock, _IN_PROCESS_LOCK:
            if ip in self._taken:
                self._taken.discard(ip)
                descriptor = _IN_PROCESS.pop(ip, None)
                if descriptor is not None:
                    os.close(descriptor)  # closing drops the lock

    def taken(self) -> set[str]:
        with self._lock:
            return set(self._taken)
