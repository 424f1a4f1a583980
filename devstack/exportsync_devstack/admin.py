"""The admin port: GET /usage reports the gateway's counters; it is never counted or throttled."""

from __future__ import annotations

import json

from .gateway import Gateway
from .serving import BackgroundServer, QuietHandler, TrackingHTTPServer

__all__ = ["serve_admin"]


class _AdminServer(TrackingHTTPServer):
    def __init__(self, address: tuple[str, int], gateway: Gateway) -> None:
        self.gateway = gateway
        super().__init__(address, _AdminHandler)


class _AdminHandler(QuietHandler):
    server: _AdminServer

    def do_GET(self) -> None:  # noqa: N802 -- http.server's dispatch name
        headers = (("Content-Type", "application/json"),)
        if self.path.split("?", 1)[0].rstrip("/") == "/usage":
            body = json.dumps(self.server.gateway.usage()).encode("utf-8")
            self.send_bytes(200, headers, body)
        else:
            self.send_bytes(404, headers, json.dumps({"message": "Not Found"}).encode("utf-8"))


def serve_admin(gateway: Gateway, host: str = "127.0.0.1", port: int = 0) -> BackgroundServer:
    """Start the admin server on host:port (0 picks a free port); the caller stops it."""
    return BackgroundServer(_AdminServer((host, port), gateway), "devstack-admin").start()
