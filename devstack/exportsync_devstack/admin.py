"""The admin port: GET /usage reports the gateway's counters; it is never counted or throttled."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from .gateway import Gateway
from .serving import BackgroundServer, QuietHandler, TrackingHTTPServer

__all__ = ["serve_admin"]


class _AdminServer(TrackingHTTPServer):
    def __init__(
        self,
        address: tuple[str, int],
        gateway: Gateway,
        s3: Callable[[], dict[str, Any]] | None,
    ) -> None:
        self.gateway = gateway
        self.s3 = s3
        super().__init__(address, _AdminHandler)

    def usage(self) -> dict[str, Any]:
        report = self.gateway.usage()
        if self.s3 is not None:
            report["s3"] = self.s3()
        return report


class _AdminHandler(QuietHandler):
    server: _AdminServer

    def do_GET(self) -> None:  # noqa: N802 -- http.server's dispatch name
        headers = (("Content-Type", "application/json"),)
        if self.path.split("?", 1)[0].rstrip("/") == "/usage":
            body = json.dumps(self.server.usage()).encode("utf-8")
            self.send_bytes(200, headers, body)
        else:
            self.send_bytes(404, headers, json.dumps({"message": "Not Found"}).encode("utf-8"))


def serve_admin(
    gateway: Gateway,
    host: str = "127.0.0.1",
    port: int = 0,
    s3: Callable[[], dict[str, Any]] | None = None,
) -> BackgroundServer:
    """Start the admin server on host:port (0 picks a free port); the caller stops it.

    `s3` adds the strict S3 front's counters to /usage under ``"s3"``.
    """
    server = _AdminServer((host, port), gateway, s3)
    return BackgroundServer(server, "devstack-admin").start()
