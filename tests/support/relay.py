"""A loopback relay between a daemon and the devstack that can hold an answer, or answer 503.

`Relay(upstream)` forwards every request to `upstream` (the devstack's API) and returns its
answer. `hold_next()` makes it keep the next POST's answer until `release()`: the request is
forwarded (the server stores what it carries) but the daemon hears nothing until then. With
`fake_status=503` the held answer is a 503 instead of the real one (which was still stored).
"""

from __future__ import annotations

import threading
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from urllib.parse import urlsplit

__all__ = ["Relay"]

_HOP = {"host", "content-length", "connection", "transfer-encoding"}


class Relay:
    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.holding = threading.Event()  # a request's answer is being held
        self._release = threading.Event()
        self._hold = False
        self._fake_status: int | None = None
        self._lock = threading.Lock()
        self.posts = 0
        relay = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                return

            def do_POST(self) -> None:
                relay._forward(self)

            def do_GET(self) -> None:
                relay._forward(self)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        path = urlsplit(self.upstream).path
        return f"http://{host!s}:{port}{path}"

    def hold_next(self, *, fake_status: int | None = None) -> None:
        with self._lock:
            self._hold = True
            self._fake_status = fake_status
            self._release.clear()
            self.holding.clear()

    def release(self) -> None:
        self._release.set()

    def _forward(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else None
        parts = urlsplit(self.upstream)
        target = f"{parts.scheme}://{parts.netloc}{handler.path}"
        headers = {k: v for k, v in handler.headers.items() if k.lower() not in _HOP}
        request = urllib.request.Request(target, data=body, headers=headers, method=handler.command)  # noqa: S310 -- loopback
        try:
            with urllib.request.urlopen(request, timeout=60) as answer:  # noqa: S310 -- loopback
                status, data = answer.status, answer.read()
                kind = answer.headers.get("Content-Type", "application/json")
        except urllib.error.HTTPError as exc:
            status, data = exc.code, exc.read()
            kind = exc.headers.get("Content-Type", "application/json")
        with self._lock:
            hold = self._hold and handler.command == "POST"
            fake = self._fake_status
            if hold:
                self._hold = False
                self.posts += 1
        if hold:
            self.holding.set()
            self._release.wait(120)
            if fake is not None:
                status, data, kind = fake, b'{"message": "Service Unavailable"}', "application/json"
        handler.send_response(status)
        handler.send_header("Content-Type", kind)
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    def __enter__(self) -> Relay:
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._release.set()
        self._server.shutdown()
        self._server.server_close()
