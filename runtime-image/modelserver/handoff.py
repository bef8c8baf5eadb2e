"""HTTP connections handed from the supervisor to the workers, round-robin (``--workers N``).

The supervisor owns the HTTP listening socket; each accepted connection is sent, as a file
descriptor over a Unix datagram socket (``SCM_RIGHTS``), to the next worker in turn, which adopts it
into its own event loop. Why not ``SO_REUSEPORT`` for HTTP as for gRPC: the kernel hashes each
connection to a listener, so 8 keep-alive connections split 6/2 or worse about 3 times in 10 and one
worker then does most of the work for as long as the connections live; round-robin splits them
evenly. The cost is one ``sendmsg``/``recvmsg`` per new connection, nothing per request.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from typing import TYPE_CHECKING

from modelserver.http_server import HttpProtocol

if TYPE_CHECKING:
    from modelserver.http_server import HttpServer

log = logging.getLogger("modelserver.workers")

_BATCH = 64  # descriptors taken from the channel per wake-up at most


def channel_pair() -> tuple[socket.socket, socket.socket]:
    """(supervisor end, worker end); datagrams keep one connection per message."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    ours.setblocking(False)
    return ours, theirs


async def distribute(listener: socket.socket, channels: list[socket.socket]) -> None:
    """Accept on ``listener`` forever, giving each connection to the next worker that takes it."""
    loop = asyncio.get_running_loop()
    listener.setblocking(False)
    turn = 0
    while True:
        try:
            conn, _ = await loop.sock_accept(listener)
        except OSError as exc:  # e.g. out of descriptors: keep serving the connections we have
            log.error("accept failed", extra={"error": str(exc)})
            await asyncio.sleep(0.1)
            continue
        with conn:  # our copy of the descriptor; the worker holds its own
            for attempt in range(len(channels)):
                channel = channels[(turn + attempt) % len(channels)]
                try:
                    socket.send_fds(channel, [b"c"], [conn.fileno()])
                except OSError:  # that worker is gone or not keeping up: try the next one
                    continue
                turn = (turn + attempt + 1) % len(channels)
                break
            else:
                log.warning("no worker took a connection; closed")


class ConnectionReceiver:
    """Worker side: adopt the connections the supervisor sends into ``server``'s event loop."""

    def __init__(self, server: HttpServer, channel_fd: int) -> None:
        self.server = server
        self.channel = socket.socket(fileno=channel_fd)
        self.channel.setblocking(False)
        self._adopting: set[asyncio.Task[object]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self.channel.fileno(), self._readable)

    def stop(self) -> None:
        """Take no more connections (draining); the adopted ones are the HTTP server's to finish."""
        if self._loop is not None:
            self._loop.remove_reader(self.channel.fileno())
            self._loop = None
        self.channel.close()

    def _readable(self) -> None:
        loop = self._loop
        if loop is None:
            return
        for _ in range(_BATCH):
            try:
                _, fds, _, _ = socket.recv_fds(self.channel, 16, 4)
            except BlockingIOError:
                return
            except OSError as exc:
                log.error("connection channel failed", extra={"error": str(exc)})
                self.stop()
                return
            for fd in fds:
                sock = socket.socket(fileno=fd)
                if self.server.closing:
                    sock.close()
                    continue
                task = loop.create_task(self._adopt(loop, sock))
                self._adopting.add(task)
                task.add_done_callback(self._adopting.discard)

    async def _adopt(self, loop: asyncio.AbstractEventLoop, sock: socket.socket) -> None:
        try:
            await loop.connect_accepted_socket(lambda: HttpProtocol(self.server), sock)
        except OSError:  # the client went away meanwhile
            with contextlib.suppress(OSError):
                sock.close()
