"""sd_notify(3) without libsystemd: tell systemd we are ready, alive, or stopping.

Outside systemd (no ``NOTIFY_SOCKET``) every call is a no-op. A send that fails is logged and
swallowed: a missed notification must never stop the daemon (a missed watchdog ping will, by
design, get it restarted).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from types import TracebackType

from exportsync.logs import get_logger

__all__ = ["Notifier", "watchdog_interval"]

_log = get_logger(__name__)


class Notifier:
    """Sends ``KEY=value`` datagrams to ``$NOTIFY_SOCKET``; thread-safe (one sendto per message)."""

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        environ = os.environ if env is None else env
        self._address = _socket_address(environ.get("NOTIFY_SOCKET", ""))
        self._sock: socket.socket | None = None

    @property
    def enabled(self) -> bool:
        return self._address is not None

    def ready(self, status: str | None = None) -> bool:
        """READY=1: startup scan done, watcher live (Type=notify units start counting as up)."""
        return self.notify("READY=1", *_status(status))

    def stopping(self, status: str | None = None) -> bool:
        return self.notify("STOPPING=1", *_status(status))

    def watchdog(self) -> bool:
        return self.notify("WATCHDOG=1")

    def status(self, text: str) -> bool:
        return self.notify(*_status(text))

    def notify(self, *fields: str) -> bool:
        """Send one message of newline-separated fields; True when it was sent."""
        if self._address is None or not fields:
            return False
        try:
            if self._sock is None:
                # Non-blocking: a manager that does not read its socket must never stall the
                # loop or the heartbeat thread; a dropped message is logged like any failed send.
                self._sock = socket.socket(
                    socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC | socket.SOCK_NONBLOCK
                )
            self._sock.sendto("\n".join(fields).encode(), self._address)
        except OSError as exc:
            _log.warning(
                "sd_notify_failed", error=str(exc), fields=[f.split("=")[0] for f in fields]
            )
            return False
        return True

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def __enter__(self) -> Notifier:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _socket_address(value: str) -> str | bytes | None:
    if value.startswith("@"):
        # Linux abstract namespace: systemd writes '@', the kernel wants a leading NUL byte.
        return b"\0" + value[1:].encode()
    if value.startswith("/"):
        return value
    return None  # unset, or a transport we don't speak (e.g. vsock:)


def _status(text: str | None) -> tuple[str, ...]:
    if not text:
        return ()
    # A newline would start a new field, letting the text forge e.g. READY=1.
    return ("STATUS=" + " ".join(text.splitlines()),)


def watchdog_interval(env: Mapping[str, str] | None = None) -> float | None:
    """Seconds between WATCHDOG=1 pings: half of ``$WATCHDOG_USEC``; None when not asked for us."""
    environ = os.environ if env is None else env
    try:
        usec = int(environ.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    if usec <= 0:
        return None
    pid = environ.get("WATCHDOG_PID")
    if pid and pid.strip() != str(os.getpid()):
        return None  # the watchdog is for another process (we were exec'd by a wrapper)
    return usec / 1_000_000 / 2
