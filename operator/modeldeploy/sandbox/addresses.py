"""Loopback addresses for sandbox pods: 127.0.0.2, 127.0.0.3, ... (Linux routes all of 127/8 locally).

Each pod gets its own address so every pod can listen on the real ports (8000/8001/8002) as it
would in a cluster. An address is handed out only if those ports are free on it (a leftover
process of another run would otherwise make the pod crash with "address in use"), and is
reused, lowest first, once its pod is gone.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import threading
from collections.abc import Iterable

DEFAULT_PORTS = (8000, 8001, 8002)


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


class AddressPool:
    """Thread-safe allocator of 127.0.0.N, N in [first, last]."""

    def __init__(self, first: int = 2, last: int = 254, ports: Iterable[int] = DEFAULT_PORTS) -> None:
        if not 1 <= first <= last <= 254:
            raise ValueError(f"bad address range 127.0.0.{first}-{last}")
        self.first, self.last, self.ports = first, last, tuple(ports)
        self._taken: set[str] = set()
        self._lock = threading.Lock()

    def allocate(self) -> str | None:
        """The lowest free address whose ports are free, or None if there is none."""
        with self._lock:
            for n in range(self.first, self.last + 1):
                address = f"127.0.0.{n}"
                if address not in self._taken and ports_free(address, self.ports):
                    self._taken.add(address)
                    return address
        return None

    def release(self, address: str) -> None:
        with self._lock:
            self._taken.discard(address)

    def taken(self) -> set[str]:
        with self._lock:
            return set(self._taken)
