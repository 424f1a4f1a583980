"""A loopback HTTP proxy in front of moto's server that answers scripted AWS faults for requests
whose body holds a marker (a throttle, a 5xx, a dropped connection) and forwards the rest."""

from __future__ import annotations

import contextlib
import http.client
import socket
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

__all__ = ["DROP", "DYNAMO_THROTTLE", "S3_SLOW_DOWN", "Fault", "flaky_proxy"]


@dataclass(frozen=True)
class Fault:
    status: int = 0  # 0: drop the connection without an answer
    content_type: str = ""
    body: bytes = b""


DYNAMO_THROTTLE = Fault(
    400,
    "application/x-amz-json-1.0",
    b'{"__type":"com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",'
    b'"message":"The level of configured provisioned throughput for the table was exceeded."}',
)
S3_SLOW_DOWN = Fault(
    503,
    "application/xml",
    b"<?xml version='1.0' encoding='UTF-8'?><Error><Code>SlowDown</Code>"
    b"<Message>Please reduce your request rate.</Message></Error>",
)
DROP = Fault()


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, upstream: str, faults: Mapping[bytes, Fault]) -> None:
        self.upstream = urlsplit(upstream)
        self.faults = faults
        self.hits: dict[bytes, int] = dict.fromkeys(faults, 0)
        self.lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _Handler)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _relay(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        for marker, fault in self.server.faults.items():
            if marker in body:
                with self.server.lock:
                    self.server.hits[marker] += 1
                self._fail(fault)
                return
        upstream = http.client.HTTPConnection(
            self.server.upstream.hostname or "127.0.0.1", self.server.upstream.port, timeout=30
        )
        try:
            headers = {k: v for k, v in self.headers.items() if k.lower() != "connection"}
            upstream.request(self.command, self.path, body=body, headers=headers)
            reply = upstream.getresponse()
            data = reply.read()
        finally:
            upstream.close()
        self.send_response(reply.status)
        for name, value in reply.getheaders():
            if name.lower() not in {"content-length", "connection", "transfer-encoding"}:
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _fail(self, fault: Fault) -> None:
        if fault.status == 0:
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.send_response(fault.status)
        self.send_header("Content-Type", fault.content_type)
        self.send_header("Content-Length", str(len(fault.body)))
        self.end_headers()
        self.wfile.write(fault.body)

    do_GET = _relay  # noqa: N815 -- http.server's dispatch name
    do_PUT = _relay  # noqa: N815 -- http.server's dispatch name
    do_POST = _relay  # noqa: N815 -- http.server's dispatch name
    do_HEAD = _relay  # noqa: N815 -- http.server's dispatch name
    do_DELETE = _relay  # noqa: N815 -- http.server's dispatch name


@contextlib.contextmanager
def flaky_proxy(upstream: str, faults: Mapping[bytes, Fault]) -> Iterator[tuple[str, _Server]]:
    """``(url, server)`` of a proxy to ``upstream``; ``server.hits`` counts each fault served."""
    server = _Server(upstream, faults)
    thread = threading.Thread(target=server.serve_forever, name="flaky-proxy", daemon=True)
    thread.start()
    try:
        host, port = server.server_address[:2]
        yield f"http://{host!s}:{port}", server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
