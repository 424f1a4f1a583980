"""A strict front for moto's S3: presigned requests are checked as S3 checks them, then relayed.

The devstack points its Lambda's S3 client here (``AWS_ENDPOINT_URL_S3``), so every presigned URL
the Lambda hands out names this front; the Lambda itself knows nothing of it. A presigned request
is refused the way S3 refuses it (signature, expiry, signed headers, Content-Length, the
``x-amz-checksum-sha256`` of the body; XML error bodies) before moto sees a byte; every other
request must carry a valid SigV4 header signature (``sigv4.check_signed``: S3, DynamoDB and API
Gateway calls alike), else it is refused 403, and is then relayed unchanged. The steps of a
multipart upload are checked as S3 checks them too (``s3_multipart``), and a completed upload is
handed to ``on_completed`` (the devstack's stand-in for the bucket's Object Created event)
before the completion is answered.

moto itself listens on a Unix socket in a private folder (``upstream`` ``unix:///path``), so this
front is the only way in for another local process, and it takes signed requests only.
"""

from __future__ import annotations

import http.client
import socket
import threading
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import quote, urlsplit

from .s3_checks import (
    INCOMPLETE_BODY,
    MISSING_LENGTH,
    PresignedRequest,
    S3Refusal,
    check_body,
    check_presigned,
    is_presigned,
)
from .s3_multipart import MultipartLedger
from .serving import BackgroundServer, QuietHandler, TrackingHTTPServer
from .sigv4 import check_signed

__all__ = ["UPSTREAM_DOWN", "S3Front", "serve_s3_front"]

# Connection-level headers are the relay's own business, not the upstream's.
_HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "content-length", "host", "expect"}
)
_UPSTREAM_TIMEOUT = 60.0
UPSTREAM_DOWN = S3Refusal(503, "ServiceUnavailable", "Please reduce your request rate.")
_MAX_LENGTH_DIGITS = 15


class _UnixConnection(http.client.HTTPConnection):
    """HTTP over a Unix socket (moto's, in the devstack's private folder)."""

    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self._path)
        self.sock = sock


class S3Front(TrackingHTTPServer):
    """The server: where to relay, whose signatures are valid, what time it is, what it did."""

    def __init__(
        self,
        address: tuple[str, int],
        upstream: str,
        secrets: Mapping[str, str],
        now: Callable[[], float],
        on_completed: Callable[[str], object] | None = None,
    ) -> None:
        parts = urlsplit(upstream)
        self.multipart = MultipartLedger()
        self.on_completed = on_completed  # called with the object key of a completed upload
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.upstream_socket = parts.path if parts.scheme == "unix" else None
        self.secrets = dict(secrets)
        self.now = now
        self._counts: Counter[str] = Counter()
        self._refused: Counter[str] = Counter()
        self._counts_lock = threading.Lock()
        super().__init__(address, _FrontHandler)

    def connect_upstream(self) -> http.client.HTTPConnection:
        """A connection to moto: its private Unix socket, or host:port."""
        if self.upstream_socket is not None:
            return _UnixConnection(self.upstream_socket, _UPSTREAM_TIMEOUT)
        host, port = self.upstream
        return http.client.HTTPConnection(host, port, timeout=_UPSTREAM_TIMEOUT)

    def count(self, name: str, refusal: S3Refusal | None = None) -> None:
        with self._counts_lock:
            self._counts[name] += 1
            if refusal is not None:
                self._refused[refusal.code] += 1

    def usage(self) -> dict[str, Any]:
        """``{"presigned", "relayed", "refused": {code: n}}`` so far."""
        with self._counts_lock:
            return {
                "presigned": self._counts["presigned"],
                "relayed": self._counts["relayed"],
                "refused": dict(sorted(self._refused.items())),
            }


class _FrontHandler(QuietHandler):
    server: S3Front

    def _request(self) -> PresignedRequest:
        return PresignedRequest(self.command, self.path, dict(self.headers.items()))

    def _refuse(self, refusal: S3Refusal) -> None:
        # The body may be unread: close rather than parse it as the next request.
        self.server.count("refused", refusal)
        xml = refusal.xml(urlsplit(self.path).path)
        self.send_bytes(refusal.status, (("Content-Type", "application/xml"),), xml, close=True)

    def handle_expect_100(self) -> bool:
        # S3 answers a refusal it can make from the headers before "100 Continue".
        if is_presigned(self.path):
            refusal = check_presigned(self._request(), self.server.secrets, self.server.now())
            if refusal is not None:
                self._refuse(refusal)
                return False
        return super().handle_expect_100()

    def _read_body(self) -> bytes | None:
        length = self.headers.get("Content-Length")
        if length is None:
            return None if self.headers.get("Transfer-Encoding") else b""
        if not length.isdigit() or len(length) > _MAX_LENGTH_DIGITS:
            return None
        chunks: list[bytes] = []
        remaining = int(length)
        while remaining > 0:
            chunk = self.rfile.read(min(remaining, 1 << 20))
            if not chunk:
                break  # the client stopped sending: check_body sees the shortfall
            chunks.append(chunk)
            remaining -= len(chunk)
        return b"".join(chunks)

    def _serve(self) -> None:
        request = self._request()
        presigned = is_presigned(self.path)
        if presigned:
            self.server.count("presigned")
            refusal = check_presigned(request, self.server.secrets, self.server.now())
            if refusal is not None:
                self._refuse(refusal)
                return
        try:
            body = self._read_body()
        except TimeoutError:
            self._refuse(INCOMPLETE_BODY)
            return
        if body is None:
            self._refuse(MISSING_LENGTH)
            return
        if presigned:
            refusal = check_body(request, body)
        else:
            refusal = check_signed(request, body, self.server.secrets)
        if refusal is None:
            refusal = self.server.multipart.check(request, body, self._upstream_has)
        if refusal is not None:
            self._refuse(refusal)
            return
        self._relay(body)

    def _upstream_has(self, path: str) -> bool:
        """Whether upstream holds an object at ``/bucket/key`` (for ``If-None-Match: *``)."""
        upstream = self.server.connect_upstream()
        try:
            upstream.request("HEAD", quote(path))
            return upstream.getresponse().status == 200
        finally:
            upstream.close()

    def _completed(
        self, body: bytes, status: int, reply: tuple[tuple[str, str], ...], answer: bytes
    ) -> None:
        """Learn from upstream's answer; a completed upload goes to ``on_completed`` now, as
        the bucket's event would, before the client hears the answer."""
        path = self.server.multipart.observe(self._request(), body, status, dict(reply), answer)
        if path is not None and self.server.on_completed is not None:
            self.server.on_completed(path.split("/", 2)[2])

    def _relay(self, body: bytes) -> None:
        headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
        upstream = self.server.connect_upstream()
        try:
            upstream.request(self.command, self.path, body=body, headers=headers)
            response = upstream.getresponse()
            answer = response.read()
            reply = tuple((k, v) for k, v in response.getheaders() if k.lower() not in _HOP_BY_HOP)
        except OSError:
            self._refuse(UPSTREAM_DOWN)
            return
        finally:
            upstream.close()
        self.server.count("relayed")
        self._completed(body, response.status, reply, answer)
        self.send_bytes(response.status, reply, answer)

    do_GET = _serve  # noqa: N815 -- http.server's dispatch name
    do_HEAD = _serve  # noqa: N815 -- http.server's dispatch name
    do_PUT = _serve  # noqa: N815 -- http.server's dispatch name
    do_POST = _serve  # noqa: N815 -- http.server's dispatch name
    do_DELETE = _serve  # noqa: N815 -- http.server's dispatch name
    do_PATCH = _serve  # noqa: N815 -- http.server's dispatch name (API Gateway's updates)


def serve_s3_front(
    upstream: str,
    secrets: Mapping[str, str],
    now: Callable[[], float],
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    on_completed: Callable[[str], object] | None = None,
) -> BackgroundServer:
    """Start the front on host:port (0 picks a free port), relaying to `upstream`; caller stops it.

    `secrets` maps access key ids to secret keys (the devstack's dummy credentials).
    """
    front = S3Front((host, port), upstream, secrets, now, on_completed)
    return BackgroundServer(front, "devstack-s3").start()
