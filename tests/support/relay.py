"""A loopback relay between a daemon and the devstack that can hold an answer, or answer 503.

`Relay(upstream)` forwards every request to `upstream` (the devstack's API) and returns its
answer. `hold_next()` makes it keep the next POST's answer until `release()`: the request is
forwarded (the server stores what it carries) but the daemon hears nothing until then. With
`fake_status=503` the held answer is a 503 instead of the real one (which was still stored).
`mangle_next()` rewrites every result status of the next 200 answer to ``"ok"``, a status the
contract does not name (an API of another version). A request the upstream drops is dropped.
"""

from __future__ import annotations

import http.client
import json
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
        self._mangle = False
        self.mangled = 0
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

    def mangle_next(self) -> None:
        with self._lock:
            self._mangle = True

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
        except (OSError, http.client.HTTPException):
            handler.close_connection = True  # dropped upstream: dropped here too
            return
        with self._lock:
            hold = self._hold and handler.command == "POST"
            fake = self._fake_status
            if hold:
                self._hold = False
                self.posts += 1
            if self._mangle and handler.command == "POST" and status == 200:
                changed = _mangled(data)
                if changed is not None:
                    self._mangle = False
                    self.mangled += 1
                    data = changed
        if hold:
            self.holding.set()
            self._release.wait(120)
            if fake is not None:
                status, data, kind = fake, b'{"message": "Service Unavailable"}', "application/json"
        try:
            handler.send_response(status)
            handler.send_header("Content-Type", kind)
            handler.send_header("Content-Length", str(len(data)))
            handler.end_headers()
            handler.wfile.write(data)
        except OSError:
            handler.close_connection = True  # the daemon went away (a kill -9) before the answer

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


def _mangled(data: bytes) -> bytes | None:
    """The answer with every result's status "ok"; None when it has no results."""
    try:
        doc = json.loads(data)
    except ValueError:
        return None
    results = doc.get("results") if isinstance(doc, dict) else None
    if not isinstance(results, list) or not results:
        return None
    for result in results:
        if isinstance(result, dict):
            result["status"] = "ok"
    return json.dumps(doc).encode()
