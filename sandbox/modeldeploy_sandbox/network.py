"""The sandbox's pod network: pod IPs in the API, loopback addresses on the machine.

A pod's IP must be a real cluster address: the API server refuses loopback addresses in
EndpointSlices ("may not be in the loopback range"), so the EndpointSlice controller would publish
nothing. So a pod gets an IP from its Node's ``spec.podCIDR`` (cut from 10.244.0.0/16 by the node
IPAM controller), and its processes listen on the loopback twin of that IP: ``10.244.N.K`` ↔
``127.244.N.K`` (Linux routes all of 127/8 to ``lo``). Traffic never leaves loopback.

Who needs to reach pods, and how:

- the sandbox's own load generator and Prometheus config translate with :func:`loopback_for`;
- everything else (the operator scraping ``/metrics``, its gates, a user's ``curl``) goes through
  :class:`PodNetworkProxy`, a plain HTTP forward proxy (``http_proxy=http://127.0.0.1:PORT``) that
  accepts pod IPs only and connects to their loopback twins, as a cluster network would route them.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import threading
from types import TracebackType

from modeldeploy_sandbox.controlplane import CLUSTER_CIDR

POD_NETWORK = ipaddress.IPv4Network(CLUSTER_CIDR)
LOOPBACK_TWIN = ipaddress.IPv4Network("127.244.0.0/16")
_OFFSET = int(LOOPBACK_TWIN.network_address) - int(POD_NETWORK.network_address)
MAX_HEADER_BYTES = 64 * 1024


def loopback_for(pod_ip: str) -> str:
    """``10.244.N.K`` -> ``127.244.N.K``; ValueError for an address outside the pod network."""
    address = ipaddress.IPv4Address(pod_ip)
    if address not in POD_NETWORK:
        raise ValueError(f"{pod_ip} is not in the sandbox pod network {POD_NETWORK}")
    return str(ipaddress.IPv4Address(int(address) + _OFFSET))


def pod_ip_for(loopback: str) -> str:
    """The inverse of :func:`loopback_for`."""
    address = ipaddress.IPv4Address(loopback)
    if address not in LOOPBACK_TWIN:
        raise ValueError(f"{loopback} is not a sandbox pod's loopback address ({LOOPBACK_TWIN})")
    return str(ipaddress.IPv4Address(int(address) - _OFFSET))


def _split_host_port(authority: str, default_port: int) -> tuple[str, int]:
    host, _, port = authority.rpartition(":") if ":" in authority else (authority, "", "")
    return host, int(port) if port else default_port


_HOP_BY_HOP = (b"connection:", b"proxy-connection:", b"keep-alive:")


def _one_shot(headers: bytes) -> bytes:
    """The request's headers with ``Connection: close``: one request per proxied connection.

    A client keeps its connection to a proxy open and reuses it for *any* host (Go's transport does
    for plain-HTTP targets: Prometheus scraping many pods through one proxy). The proxy pipes bytes to
    the first request's pod, so it must end the connection after that request's response.
    """
    lines = [line for line in headers.split(b"\r\n") if line and not line.lower().startswith(_HOP_BY_HOP)]
    return b"\r\n".join([*lines, b"Connection: close", b"", b""])


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while chunk := await reader.read(65536):
            writer.write(chunk)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        with contextlib.suppress(Exception):
            writer.close()


class PodNetworkProxy:
    """An HTTP forward proxy into the pod network on 127.0.0.1 (CONNECT and absolute-URI requests).

    Runs its own event loop in a thread; ``url`` is what ``http_proxy`` should say.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host, self.port = host, port
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.base_events.Server | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, name="pod-network-proxy", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> PodNetworkProxy:
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._serve, self.host, self.port), self._loop)
        self._server = future.result(10)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self

    def close(self) -> None:
        if self._server is not None:
            self._server.close()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    def __enter__(self) -> PodNetworkProxy:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    async def _refuse(self, writer: asyncio.StreamWriter, status: str, message: str) -> None:
        body = f"{message}\n".encode()
        writer.write(f"HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {len(body)}\r\n"
                     f"Connection: close\r\n\r\n".encode() + body)
        with contextlib.suppress(ConnectionError):
            await writer.drain()
        writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            writer.close()
            return
        if len(head) > MAX_HEADER_BYTES:
            await self._refuse(writer, "431 Request Header Fields Too Large", "request head too large")
            return
        request_line, _, rest = head.partition(b"\r\n")
        try:
            method, target, version = request_line.decode("latin-1").split(" ")
        except ValueError:
            await self._refuse(writer, "400 Bad Request", "malformed request line")
            return
        tunnel = method.upper() == "CONNECT"
        if tunnel:
            authority, path = target, ""
        elif target.startswith("http://"):
            authority, _, path = target[len("http://"):].partition("/")
            path = "/" + path
        else:
            await self._refuse(writer, "400 Bad Request", "only CONNECT and http:// absolute URIs are proxied")
            return
        host, port = _split_host_port(authority, 443 if tunnel else 80)
        try:
            loopback = loopback_for(host)
        except ValueError as error:
            await self._refuse(writer, "403 Forbidden", str(error))
            return
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(loopback, port)
        except OSError as error:
            await self._refuse(writer, "502 Bad Gateway", f"cannot connect to pod {host}:{port}: {error}")
            return
        if tunnel:
            writer.write(b"HTTP/1.1 200 Connection Established\r\n\r\n")
        else:
            upstream_writer.write(f"{method} {path} {version}\r\n".encode("latin-1") + _one_shot(rest))
        await asyncio.gather(_pipe(reader, upstream_writer), _pipe(upstream_reader, writer))
