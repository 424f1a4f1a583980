"""Signals a service manager or a terminal sends to `exportsync run`, against the devstack.

SIGHUP reloads the config file and the API key file in place (`config_reloaded`, or
`config_reload_failed` keeping the running config); SIGUSR2, SIGALRM and SIGPIPE are logged and
change nothing; no signal ends the daemon without a line saying which and what happens to the
items in flight. A changed `api.url` (at a reload or a restart) lets items held after a redirect
go at once instead of waiting out their 300 s.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from support.daemon import DaemonProcess, run_daemon, settled, spool_items, write_config
from support.devstack import DevstackInfo, start_devstack, usage, wait_for

pytestmark = pytest.mark.integration

DEADLINE = 30.0  # only a bound against hanging; each check waits for an event


def _events(daemon: DaemonProcess, name: str) -> list[dict[str, Any]]:
    return [e for e in daemon.events() if e.get("event") == name]


def _alive(daemon: DaemonProcess) -> bool:
    return daemon.process.poll() is None


def test_sighup_reloads_the_config_and_the_key_file_without_a_restart(tmp_path: Path) -> None:
    """A new key (another user's) and user id take effect at SIGHUP: the next request is
    counted against the new key; the process, its pid and its spool stay."""
    with start_devstack(tmp_path / "ds", "--users", "2") as info:
        config = write_config(tmp_path, info)
        with run_daemon(config) as daemon:
            daemon.wait_ready()
            (tmp_path / "export" / "before.csv").write_text("a\n1\n")
            assert wait_for(lambda: settled(daemon.state_dir, 1), DEADLINE), daemon.output()
            second = info.users[1]
            (tmp_path / "api_key").write_text(second["api_key"] + "\n")
            text = config.read_text().replace(info.user_id, second["user_id"])
            config.write_text(text)
            daemon.process.send_signal(signal.SIGHUP)
            assert wait_for(lambda: daemon.saw("config_reloaded"), DEADLINE), daemon.output()
            (reloaded,) = _events(daemon, "config_reloaded")
            assert {"api.api_key", "api.user_id"} <= set(reloaded["changed"])
            assert reloaded["restart_needed"] == []
            assert second["api_key"] not in daemon.output()  # the key is never logged
            (tmp_path / "export" / "after.csv").write_text("b\n2\n")
            assert wait_for(lambda: settled(daemon.state_dir, 2), DEADLINE), daemon.output()
            by_key = usage(info)["by_key"]
            assert by_key[second["user_id"]]["accepted"] == 1
            assert by_key[info.user_id]["accepted"] == 1
            assert _alive(daemon)
            assert daemon.terminate() == 0
    assert {i.state for i in spool_items(tmp_path / "state")} == {"delivered"}


def test_a_bad_config_at_sighup_is_refused_and_the_running_one_kept(
    devstack: DevstackInfo, tmp_path: Path
) -> None:
    config = write_config(tmp_path, devstack)
    with run_daemon(config) as daemon:
        daemon.wait_ready()
        good = config.read_text()
        config.write_text(good + "\n[api]\nurl = 'not a url'\n")  # not even valid TOML
        daemon.process.send_signal(signal.SIGHUP)
        assert wait_for(lambda: daemon.saw("config_reload_failed"), DEADLINE), daemon.output()
        (failed,) = _events(daemon, "config_reload_failed")
        assert "config" in failed["error"]
        assert failed["kept"] == "running"
        (tmp_path / "api_key").write_text("")  # an empty key file is refused the same way
        config.write_text(good)
        daemon.process.send_signal(signal.SIGHUP)
        assert wait_for(lambda: daemon.saw("config_reload_failed", 2), DEADLINE)
        assert "api_key" in _events(daemon, "config_reload_failed")[1]["error"]
        # Still delivering, with the config it started with.
        (tmp_path / "export" / "a.csv").write_text("a\n1\n")
        assert wait_for(lambda: settled(daemon.state_dir, 1), DEADLINE), daemon.output()
        assert _alive(daemon)
        assert daemon.terminate() == 0


@pytest.mark.parametrize(
    "signum", [signal.SIGUSR2, signal.SIGALRM, signal.SIGPIPE], ids=lambda s: s.name
)
def test_stray_signals_are_logged_and_change_nothing(
    devstack: DevstackInfo, tmp_path: Path, signum: signal.Signals
) -> None:
    config = write_config(tmp_path, devstack)
    with run_daemon(config) as daemon:
        daemon.wait_ready()
        daemon.process.send_signal(signum)
        assert wait_for(lambda: daemon.saw("signal_ignored"), DEADLINE), daemon.output()
        (line,) = _events(daemon, "signal_ignored")
        assert line["signal"] == signum.name
        assert "in_flight" in line
        (tmp_path / "export" / "a.csv").write_text("a\n1\n")
        assert wait_for(lambda: settled(daemon.state_dir, 1), DEADLINE), daemon.output()
        assert _alive(daemon)
        assert daemon.terminate() == 0


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=lambda s: s.name)
def test_a_stop_signal_says_what_happens_to_the_items_in_flight(
    devstack: DevstackInfo, tmp_path: Path, signum: signal.Signals
) -> None:
    config = write_config(tmp_path, devstack)
    with run_daemon(config) as daemon:
        daemon.wait_ready()
        daemon.process.send_signal(signum)
        assert daemon.process.wait(DEADLINE) == 0
        (line,) = _events(daemon, "shutdown_requested")
        assert line["signal"] == signum.name
        assert "draining" in line["in_flight"]


def test_a_stop_signal_right_behind_a_wake_still_stops_the_daemon(
    devstack: DevstackInfo, tmp_path: Path
) -> None:
    """SIGUSR1 (what `enqueue` sends) then SIGTERM at once: the second landed inside the first's
    handler, which held the wake event's lock, and the daemon hung for ever (1 run in 10-20)."""
    config = write_config(tmp_path, devstack)
    for _ in range(5):
        with run_daemon(config) as daemon:
            daemon.wait_ready()
            daemon.process.send_signal(signal.SIGUSR1)
            daemon.process.send_signal(signal.SIGTERM)
            assert daemon.process.wait(DEADLINE) == 0, daemon.output()
            assert daemon.saw("shutdown_requested")


def test_a_new_key_at_sighup_sends_what_a_refused_key_held(
    devstack: DevstackInfo, tmp_path: Path
) -> None:
    """Rotating a wrong key (admin `rotate`, new key file, reload): what waited after the 403
    goes at once, not after the rest of its 5-minute hold."""
    config = write_config(tmp_path, devstack)
    (tmp_path / "api_key").write_text("a-key-the-gateway-never-issued\n")
    with run_daemon(config) as daemon:
        daemon.wait_ready()
        (tmp_path / "export" / "a.csv").write_text("a\n1\n")
        assert wait_for(lambda: daemon.saw("api_forbidden"), DEADLINE), daemon.output()
        (tmp_path / "api_key").write_text(devstack.api_key + "\n")
        daemon.process.send_signal(signal.SIGHUP)
        assert wait_for(lambda: settled(daemon.state_dir, 1), DEADLINE), daemon.output()
        (reloaded,) = _events(daemon, "config_reloaded")
        assert reloaded["key_holds_released"] == 1
        assert devstack.api_key not in daemon.output()
        assert daemon.terminate() == 0


class _Redirect(BaseHTTPRequestHandler):
    """A front that answers every request with a redirect (an old address, a captive proxy)."""

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        self.send_response(308)
        self.send_header("Location", "https://elsewhere.example/prod/batch")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@contextmanager
def _redirecting() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Redirect)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/prod"
    finally:
        server.shutdown()
        server.server_close()


def _held_after_redirect(daemon: DaemonProcess, tmp_path: Path) -> None:
    daemon.wait_ready()
    (tmp_path / "export" / "a.csv").write_text("a\n1\n")
    assert wait_for(lambda: daemon.saw("api_redirected"), DEADLINE), daemon.output()
    (item,) = spool_items(daemon.state_dir)
    assert item.state == "pending"


def test_a_new_api_url_at_sighup_releases_items_held_after_a_redirect(
    devstack: DevstackInfo, tmp_path: Path
) -> None:
    with _redirecting() as wrong:
        config = write_config(tmp_path, devstack)
        config.write_text(config.read_text().replace(devstack.api_url, wrong))
        with run_daemon(config) as daemon:
            _held_after_redirect(daemon, tmp_path)
            config.write_text(config.read_text().replace(wrong, devstack.api_url))
            daemon.process.send_signal(signal.SIGHUP)
            # Well inside the 300 s the redirect hold would last.
            assert wait_for(lambda: settled(daemon.state_dir, 1), DEADLINE), daemon.output()
            (reloaded,) = _events(daemon, "config_reloaded")
            assert reloaded["changed"] == ["api.url"]
            assert reloaded["redirect_holds_released"] == 1
            assert daemon.terminate() == 0


def test_a_new_api_url_at_restart_releases_items_held_after_a_redirect(
    devstack: DevstackInfo, tmp_path: Path
) -> None:
    with _redirecting() as wrong:
        config = write_config(tmp_path, devstack)
        config.write_text(config.read_text().replace(devstack.api_url, wrong))
        with run_daemon(config) as daemon:
            _held_after_redirect(daemon, tmp_path)
            assert daemon.terminate() == 0
    config.write_text(config.read_text().replace(wrong, devstack.api_url))
    with run_daemon(config) as daemon:
        daemon.wait_ready()
        assert wait_for(lambda: settled(daemon.state_dir, 1), DEADLINE), daemon.output()
        (released,) = _events(daemon, "redirect_holds_released")
        assert released["items"] == 1
        assert daemon.terminate() == 0
