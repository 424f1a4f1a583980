"""A threaded HTTP server on its own thread that stops cleanly: accept loop ended, keep-alive
connections woken, every request thread joined."""

from __future__ import annotations

import contextlib
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["BackgroundServer", "QuietHandler", "TrackingHTTPServer"]


class TrackingHTTPServer(ThreadingHTTPServer):
    """Knows its open connections so stop() can wake idle keep-alive readers."""

    daemon_threads = False  # server_close() joins the request threads
    block_on_close = True

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler]) -> None:
        self.stopping = threading.Event()
        self._live: set[socket.socket] = set()
        self._live_lock = threading.Lock()
        super().__init__(address, handler)

    def track(self, conn: socket.socket) -> None:
        with self._live_lock:
            self._live.add(conn)

    def untrack(self, conn: socket.socket) -> None:
        with self._live_lock:
            self._live.discard(conn)

    def wake_connections(self) -> None:
        # SHUT_RD ends blocked reads with EOF but lets an in-flight answer still be written.
        with self._live_lock:
            live = list(self._live)
        for conn in live:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RD)


class QuietHandler(BaseHTTPRequestHandler):
    """HTTP/1.1 handler that registers its connection and logs through structlog, not stderr."""

    server: TrackingHTTPServer
    protocol_version = "HTTP/1.1"
    timeout = 60  # an idle or stalled client cannot hold a thread forever

    def setup(self) -> None:
        super().setup()
        self.server.track(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.untrack(self.connection)

    def log_message(self, format: str, *args: Any) -> None:
        """Silence http.server's own stderr lines; the gateway logs structured events."""

    def send_bytes(
        self, status: int, headers: tuple[tuple[str, str], ...], body: bytes, close: bool = False
    ) -> None:
        self.send_response(status)
        for key, value in headers:
            if key.lower() not in ("content-length", "connection", "transfer-encoding"):
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        self.wfile.flush()


class BackgroundServer:
    """Runs `serve_forever` on a thread; `url` once started; `stop()` is idempotent."""

    def __init__(self, server: TrackingHTTPServer, name: str) -> None:
        self.server = server
        # A short poll interval keeps stop() (and so every test teardown) quick.
        self._thread = threading.Thread(
            target=server.serve_forever, args=(0.05,), name=name, daemon=True
        )
        self._stopped = False

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> BackgroundServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        self.server.stopping.set()
        if self._thread.is_alive():
            self.server.shutdown()
            self._thread.join()
        self.server.wake_connections()
        self.server.server_close()
