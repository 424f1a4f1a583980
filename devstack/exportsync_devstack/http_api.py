"""The gateway's HTTP face: reads bodies (Content-Length or chunked) within the 10 MB limit,
answers 413 before reading an oversized body, and carries out drops and slow answers."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from typing import Any
from urllib.parse import urlsplit

from .gateway import Gateway, GatewayReply
from .serving import BackgroundServer, QuietHandler, TrackingHTTPServer

__all__ = ["ApiHTTPServer", "serve_api"]

_CHUNK = 64 * 1024
_DRAIN_LIMIT = 64 * 1024 * 1024  # past this, close instead of reading a runaway body


class _TooLarge(Exception):
    pass


class _BadRequest(Exception):
    pass


class ApiHTTPServer(TrackingHTTPServer):
    def __init__(self, address: tuple[str, int], gateway: Gateway) -> None:
        self.gateway = gateway
        self._accepted: dict[int, float] = {}
        self._accepted_lock = threading.Lock()
        super().__init__(address, _ApiHandler)

    def process_request(self, request: Any, client_address: Any) -> None:
        # Stamp a new connection's first request on accept, in the accept loop: starting its
        # thread and parsing its headers can take a while on a busy machine, and that wait must
        # not shorten the gap the usage plan sees between a key's requests.
        with self._accepted_lock:
            self._accepted[id(request)] = self.gateway.arrival()
        super().process_request(request, client_address)

    def accepted_at(self, request: Any) -> float | None:
        with self._accepted_lock:
            return self._accepted.pop(id(request), None)


class _ApiHandler(QuietHandler):
    server: ApiHTTPServer
    _first_arrival: float | None = None

    def setup(self) -> None:
        super().setup()
        self._first_arrival = self.server.accepted_at(self.request)

    def _declared_length(self) -> int | None:
        raw = self.headers.get("Content-Length")
        if raw is None:
            return None
        try:
            length = int(raw)
        except ValueError:
            return -1
        return length if length >= 0 else -1

    def _is_chunked(self) -> bool:
        return "chunked" in (self.headers.get("Transfer-Encoding") or "").lower()

    def _path(self) -> str:
        return urlsplit(self.path).path

    def handle_expect_100(self) -> bool:
        # Refuse before "100 Continue": the client then never sends the oversized body.
        length = self._declared_length()
        if not self._is_chunked() and length is not None and length > self.server.gateway.max_body:
            reply = self.server.gateway.reject_too_large(self.command, self._path())
            self.send_bytes(reply.status, reply.headers, reply.body, close=True)
            return False
        return super().handle_expect_100()

    def _drain(self, remaining: int) -> None:
        while remaining > 0:
            data = self.rfile.read(min(_CHUNK, remaining))
            if not data:
                return
            remaining -= len(data)

    def _read_exact(self, length: int) -> bytes:
        data = self.rfile.read(length)
        if len(data) != length:
            raise _BadRequest("body shorter than Content-Length")
        return data

    def _read_chunked(self, limit: int) -> bytes:
        parts: list[bytes] = []
        total = 0
        too_large = False
        while True:
            line = self.rfile.readline(1024)
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError as exc:
                raise _BadRequest("bad chunk size") from exc
            if size == 0:
                break
            total += size
            if total > limit:
                too_large = True
            if total > _DRAIN_LIMIT:
                raise _TooLarge
            if too_large:
                self._drain(size)
            else:
                parts.append(self._read_exact(size))
            self.rfile.readline(1024)  # the CRLF after each chunk
        while self.rfile.readline(8192) not in (b"\r\n", b"\n", b""):
            pass  # trailers
        if too_large:
            raise _TooLarge
        return b"".join(parts)

    def _serve(self) -> None:
        gateway = self.server.gateway
        # The connection's accept for its first request, else now (before the body is read).
        arrived = self._first_arrival if self._first_arrival is not None else gateway.arrival()
        self._first_arrival = None
        url = urlsplit(self.path)
        try:
            if self._is_chunked():
                body = self._read_chunked(gateway.max_body)
            else:
                length = self._declared_length() or 0
                if length < 0:
                    raise _BadRequest("bad Content-Length")
                if length > gateway.max_body:
                    # Answer first, then drain what the client is still sending so it reads
                    # the 413 instead of a connection reset; a runaway body is cut off.
                    reply = gateway.reject_too_large(self.command, url.path)
                    self.send_bytes(reply.status, reply.headers, reply.body, close=True)
                    if length <= _DRAIN_LIMIT:
                        self._drain(length)
                    return
                body = self._read_exact(length) if length else b""
        except _TooLarge:
            reply = gateway.reject_too_large(self.command, url.path)
            self.send_bytes(reply.status, reply.headers, reply.body, close=True)
            return
        except _BadRequest:
            message = json.dumps({"message": "Bad Request"}).encode()
            self.send_bytes(400, (("Content-Type", "application/json"),), message, close=True)
            return
        reply = gateway.handle(
            self.command,
            url.path,
            query=url.query,
            headers=list(self.headers.items()),
            body=body,
            source_ip=str(self.client_address[0]),
            arrived=arrived,
        )
        self._send_reply(reply)

    def _send_reply(self, reply: GatewayReply) -> None:
        if reply.drop:
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        if reply.delay and self.server.stopping.wait(reply.delay):
            self.close_connection = True
            return
        self.send_bytes(reply.status, reply.headers, reply.body)

    do_GET = _serve  # noqa: N815 -- http.server's dispatch name
    do_POST = _serve  # noqa: N815 -- http.server's dispatch name
    do_PUT = _serve  # noqa: N815 -- http.server's dispatch name
    do_DELETE = _serve  # noqa: N815 -- http.server's dispatch name
    do_PATCH = _serve  # noqa: N815 -- http.server's dispatch name
    do_HEAD = _serve  # noqa: N815 -- http.server's dispatch name
    do_OPTIONS = _serve  # noqa: N815 -- http.server's dispatch name


def serve_api(gateway: Gateway, host: str = "127.0.0.1", port: int = 0) -> BackgroundServer:
    """Start the API on host:port (0 picks a free port); the caller stops it."""
    return BackgroundServer(ApiHTTPServer((host, port), gateway), "devstack-api").start()
