"""sd_notify over a real AF_UNIX datagram socket, and the watchdog interval."""

from __future__ import annotations

import os
import socket
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from exportsync.notify import Notifier, watchdog_interval


@pytest.fixture
def listener() -> Iterator[tuple[socket.socket, str]]:
    # AF_UNIX paths are limited to ~108 bytes; pytest's tmp_path can be longer.
    with tempfile.TemporaryDirectory(prefix="sdn") as folder:
        path = str(Path(folder) / "notify")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(path)
        sock.settimeout(5)  # a deadline, not a wait: recv returns as soon as a datagram arrives
        try:
            yield sock, path
        finally:
            sock.close()


def test_messages_reach_the_socket(listener: tuple[socket.socket, str]) -> None:
    sock, path = listener
    with Notifier({"NOTIFY_SOCKET": path}) as notifier:
        assert notifier.enabled
        assert notifier.ready(status="watching /x")
        assert sock.recv(4096) == b"READY=1\nSTATUS=watching /x"
        assert notifier.watchdog()
        assert sock.recv(4096) == b"WATCHDOG=1"
        assert notifier.status("3 pending")
        assert sock.recv(4096) == b"STATUS=3 pending"
        assert notifier.stopping()
        assert sock.recv(4096) == b"STOPPING=1"


def test_status_cannot_forge_fields(listener: tuple[socket.socket, str]) -> None:
    sock, path = listener
    with Notifier({"NOTIFY_SOCKET": path}) as notifier:
        notifier.status("evil\nREADY=1")
    assert sock.recv(4096) == b"STATUS=evil READY=1"


@pytest.mark.skipif(sys.platform != "linux", reason="abstract sockets are Linux-only")
def test_abstract_namespace_socket() -> None:
    name = f"exportsync-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(b"\0" + name.encode())
        sock.settimeout(5)
        with Notifier({"NOTIFY_SOCKET": "@" + name}) as notifier:
            assert notifier.ready()
        assert sock.recv(4096) == b"READY=1"


def test_no_socket_means_no_op() -> None:
    notifier = Notifier({})
    assert not notifier.enabled
    assert notifier.ready() is False
    assert notifier.watchdog() is False


def test_unsupported_transport_is_a_no_op() -> None:
    assert not Notifier({"NOTIFY_SOCKET": "vsock:2:1234"}).enabled


def test_send_failure_is_swallowed(tmp_path: Path) -> None:
    with Notifier({"NOTIFY_SOCKET": str(tmp_path / "gone")}) as notifier:
        assert notifier.enabled
        assert notifier.watchdog() is False  # nobody listening: logged, not raised


def test_watchdog_interval_is_half_of_watchdog_usec() -> None:
    assert watchdog_interval({"WATCHDOG_USEC": "60000000"}) == 30.0
    assert (
        watchdog_interval({"WATCHDOG_USEC": "60000000", "WATCHDOG_PID": str(os.getpid())}) == 30.0
    )


@pytest.mark.parametrize(
    "env",
    [
        {},
        {"WATCHDOG_USEC": "0"},
        {"WATCHDOG_USEC": "soon"},
        {"WATCHDOG_USEC": "1000", "WATCHDOG_PID": "1"},
    ],
)
def test_watchdog_interval_none_when_not_for_us(env: dict[str, str]) -> None:
    assert watchdog_interval(env) is None


def test_a_manager_that_never_reads_cannot_stall_the_sender(
    listener: tuple[socket.socket, str],
) -> None:
    """Pings to a socket whose queue is full are dropped (False), never block the heartbeat."""
    _, path = listener  # bound, never read: its queue fills after a few datagrams
    with Notifier({"NOTIFY_SOCKET": path}) as notifier:
        results = [notifier.watchdog() for _ in range(2_000)]
    assert results[0] is True
    assert results[-1] is False
