"""A WSGI server thread that sleeps until someone connects: the /metrics endpoint's.

`socketserver`'s `serve_forever` wakes every 0.5 s to look for a shutdown request, so an idle
daemon with metrics on would still wake twice a second. This thread instead blocks in one
`select` without a timeout on the listening socket and a self-pipe: a connection wakes it to
serve that request (on a thread of its own, as prometheus_client does), and `close()` writes a
byte to the pipe. Nobody scraping: no wake-ups at all.
"""

from __future__ import annotations

import os
import select
import socket
import threading
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer
from wsgiref.types import WSGIApplication

__all__ = ["QuietServer"]


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True  # a scrape in progress never holds the process at exit


class _SilentHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """A scrape is not an event worth a log line."""


class QuietServer:
    """`app` served on host:port (port 0: any free port) from a thread that only wakes for a
    connection or for `close()`."""

    def __init__(self, app: WSGIApplication, host: str, port: int) -> None:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        server_class = type("_Server", (_ThreadingServer,), {"address_family": family[0][0]})
        self._server: WSGIServer = server_class((host, port), _SilentHandler)
        self._server.set_app(app)
        self._server.timeout = 0  # handle_request() only after select() said a client waits
        self._wake_r, self._wake_w = os.pipe2(os.O_CLOEXEC)
        self.thread = threading.Thread(target=self._serve, name="exportsync-metrics", daemon=True)
        self.thread.start()

    @property
    def address(self) -> tuple[str, int]:
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    def _serve(self) -> None:
        listening = self._server.socket.fileno()
        while True:
            # No timeout: the thread sleeps until a connection or close().
            ready, _, _ = select.select([listening, self._wake_r], [], [])
            if self._wake_r in ready:
                return
            # The socket is readable: handle_request() accepts at once and hands the
            # connection to a thread of its own.
            self._server.handle_request()

    def close(self) -> None:
        """Stop accepting, wait for the thread, and free the socket and the pipe."""
        os.write(self._wake_w, b"x")
        self.thread.join(5)
        self._server.server_close()
        os.close(self._wake_r)
        os.close(self._wake_w)
