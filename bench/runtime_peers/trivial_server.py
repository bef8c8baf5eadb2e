"""A trivial HTTP/1.1 keep-alive server answering every request with one canned v2 response.

Used to measure the load generator's own ceiling: it does no inference and almost no work, so
the requests/s reached against it bound what the client can drive on this machine.
Usage: python trivial_server.py PORT
"""

from __future__ import annotations

import asyncio
import json
import sys

_BODY = json.dumps(
    {
        "model_name": "trivial",
        "outputs": [{"name": "output", "datatype": "FP32", "shape": [1, 10], "data": [0.0] * 10}],
    }
).encode()
_RESPONSE = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
    + str(len(_BODY)).encode()
    + b"\r\n\r\n"
    + _BODY
)


class _Proto(asyncio.Protocol):
    def __init__(self) -> None:
        self.buf = bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            length = 0
            for line in bytes(self.buf[:end]).split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value.strip())
            total = end + 4 + length
            if len(self.buf) < total:
                return  # body not complete yet
            del self.buf[:total]
            assert self.transport is not None
            self.transport.write(_RESPONSE)


async def _main(port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(_Proto, "127.0.0.1", port)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(_main(int(sys.argv[1])))
