"""HTTP servers on 127.0.0.1 that answer each GET (and POST) as a test says, and record the paths asked."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Callable, Iterator

Answer = Callable[[http.server.BaseHTTPRequestHandler], None]
Start = Callable[[Answer], tuple[str, list[str]]]


def answering_servers() -> Iterator[Start]:
    """A fixture body: yields start(answer) -> (base URL, the paths asked so far); stops every server after."""
    servers: list[http.server.ThreadingHTTPServer] = []

    def start(answer: Answer) -> tuple[str, list[str]]:
        paths: list[str] = []
        lock = threading.Lock()

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                with lock:
                    paths.append(self.path)
                answer(self)

            do_POST = do_GET

            def log_message(self, *args: object) -> None:
                pass

        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}", paths

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()
