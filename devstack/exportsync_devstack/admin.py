"""The admin port: GET /usage reports the gateway's counters; it is never counted or throttled.

GET /memory reports the process's resident memory and its peak (``memory.memory_report``);
POST /memory/reset starts the peak afresh, so a test can measure what one request cost."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from .gateway import Gateway
from .memory import memory_report, reset_peak
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

    def _path(self) -> str:
        return self.path.split("?", 1)[0].rstrip("/")

    def _json(self, status: int, value: object) -> None:
        headers = (("Content-Type", "application/json"),)
        self.send_bytes(status, headers, json.dumps(value).encode("utf-8"))

    def do_GET(self) -> None:  # noqa: N802 -- http.server's dispatch name
        if self._path() == "/usage":
            self._json(200, self.server.usage())
        elif self._path() == "/memory":
            self._json(200, memory_report())
        else:
            self._json(404, {"message": "Not Found"})

    def do_POST(self) -> None:  # noqa: N802 -- http.server's dispatch name
        length = self.headers.get("Content-Length", "0")
        if length.isdigit() and len(length) < 9:
            self.rfile.read(int(length))
        if self._path() == "/memory/reset":
            self._json(200, {"reset": reset_peak(), **memory_report()})
        else:
            self._json(404, {"message": "Not Found"})


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
