"""The operator's path (CONTRACT §3a) against the devstack, driven as a person drives it: the
`exportsync` command in subprocesses, a real daemon, a fresh HOME."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from exportsync.cli.check import run_checks
from exportsync.cli.common import load
from exportsync.clock import SystemClock
from exportsync.spool import Spool
from exportsync.wiring import build_ledger
from support.daemon import run_daemon, write_config
from support.devstack import DevstackInfo, command_env, start_devstack, usage, wait_for
from support.scrape import scrape, series

pytestmark = pytest.mark.integration

CSV = b"when,steps\n2026-11-25,9000\n"
SEND_NOW_DEADLINE = 15.0


def cli(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "exportsync", *argv],
        capture_output=True,
        text=True,
        env=env or _plain_env(),
        check=False,
        timeout=60,
    )


def _plain_env() -> dict[str, str]:
    env = command_env()
    for name in [n for n in env if n.startswith("EXPORTSYNC_")]:
        env.pop(name)
    return env


def status(config: Path | None = None, env: dict[str, str] | None = None) -> dict[str, Any]:
    done = cli("status", "--json", *(["--config", str(config)] if config else []), env=env)
    assert done.returncode == 0, done.stderr
    doc: dict[str, Any] = json.loads(done.stdout)
    return doc


def headline_is(config: Path, state: str, deadline: float = 30.0) -> bool:
    return wait_for(lambda: status(config)["headline"]["state"] == state, deadline, interval=0.3)


@contextmanager
def fresh_home(tmp_path: Path) -> Iterator[dict[str, str]]:
    """The environment of a person who never ran exportsync: an empty HOME of their own."""
    home = tmp_path / "home"
    home.mkdir()
    env = _plain_env()
    for name in ("XDG_CONFIG_HOME", "XDG_STATE_HOME", "XDG_DATA_HOME"):
        env.pop(name, None)
    env["HOME"] = str(home)
    yield env


# -- setup, then everything without --config ------------------------------------------------------


def test_setup_then_run_without_config_delivers(devstack: DevstackInfo, tmp_path: Path) -> None:
    key = tmp_path / "given-key"
    key.write_text(devstack.api_key + "\n")
    with fresh_home(tmp_path) as env:
        assert cli("status", env=env).returncode == 2  # nothing set up yet
        done = cli(
            "setup",
            "--api-url", devstack.api_url,
            "--api-key-file", str(key),
            "--watch-dir", str(tmp_path / "home" / "Exports"),
            "--user-id", devstack.user_id,
            "--no-service",
            env=env,
        )  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
        log = (tmp_path / "daemon.log").open("wb")
        daemon = subprocess.Popen(
            [sys.executable, "-m", "exportsync", "run", "--log-format", "json"],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        try:
            (tmp_path / "home" / "Exports" / "walk.csv").write_bytes(CSV)
            assert wait_for(
                lambda: status(env=env)["counts"]["delivered"] == 1, 60, interval=0.3
            ), (tmp_path / "daemon.log").read_text()
            report = status(env=env)
            assert report["config"] == str(
                tmp_path / "home" / ".config" / "exportsync" / "exportsync.toml"
            )
            assert report["daemon"]["running"]
        finally:
            daemon.terminate()
            daemon.wait(15)
            log.close()


# -- send-now -------------------------------------------------------------------------------------


def test_send_now_sends_a_held_backlog_within_15_s(devstack: DevstackInfo, tmp_path: Path) -> None:
    # The quota day resets 12 hours from now: the plan paces the first request into the past
    # and the next ones hours ahead, whatever the time of day (with the reset at midnight, the
    # first file was held until 02:37 UTC, and the last call sent all of them after 23:30).
    reset = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=12)).strftime("%H:%M")
    config = write_config(tmp_path, devstack, quota={"prompt_requests": 0, "reset_utc": reset})
    export = tmp_path / "export"
    with run_daemon(config) as daemon:
        daemon.wait_ready()
        (export / "first.csv").write_bytes(CSV)
        assert wait_for(lambda: status(config)["counts"]["delivered"] == 1, 30), daemon.output()
        for name in ("a.csv", "b.csv", "c.csv"):
            (export / name).write_bytes(CSV.replace(b"9000", name.encode()))
        assert headline_is(config, "held"), daemon.output()
        held = status(config)
        assert held["counts"]["pending"] == 3
        assert "exportsync send-now" in held["headline"]["text"]
        started = time.monotonic()
        done = cli("send-now", "--config", str(config))
        assert done.returncode == 0, done.stderr
        assert done.stdout.splitlines()[0] == (
            "sending 3 items in 1 request (request 2 of 10 today)"
        )
        assert wait_for(
            lambda: status(config)["counts"]["delivered"] == 4, SEND_NOW_DEADLINE, interval=0.2
        ), daemon.output()
        assert time.monotonic() - started < SEND_NOW_DEADLINE
        assert [e["reason"] for e in daemon.events() if e["event"] == "batch_planned"][-1] == (
            "send_now"
        )
        assert status(config)["headline"]["state"] == "ok"
        assert daemon.terminate() == 0
    # No daemon: send-now says so and exits 1.
    gone = cli("send-now", "--config", str(config))
    assert gone.returncode == 1
    assert "no daemon is running" in gone.stderr


# -- failed items: dismissed, or superseded by themselves ------------------------------------------


def test_dismiss_and_superseded_failures_bring_failed_to_0(
    devstack: DevstackInfo, tmp_path: Path
) -> None:
    config = write_config(tmp_path, devstack, metrics={"listen": "127.0.0.1:0"})
    export = tmp_path / "export"
    broken = '{"timestamp": "2026-11-25T10:00:00Z", "steps": NaN'
    with run_daemon(config) as daemon:
        daemon.wait_ready()
        [url] = [e["url"] for e in daemon.events() if e["event"] == "metrics_listening"]
        for name in ("fixed", "deleted", "dismissed"):
            (export / f"{name}.session.json").write_text(broken)
        assert wait_for(lambda: status(config)["counts"]["failed"] == 3, 30), daemon.output()
        assert status(config)["headline"]["state"] == "failing"
        # Fixed and exported again: the new version is delivered, the failed one leaves the list.
        (export / "fixed.session.json").write_text('{"timestamp": "2026-11-25T10:00:00Z"}')
        # Deleted: its failure goes too.
        (export / "deleted.session.json").unlink()
        assert wait_for(lambda: status(config)["counts"]["failed"] == 1, 30), daemon.output()
        [left] = status(config)["failed"]
        assert left["path"].endswith("dismissed.session.json")
        done = cli("dismiss", str(left["id"]), "--config", str(config))
        assert done.returncode == 0, done.stderr
        report = status(config)
        assert (report["counts"]["failed"], report["failed"]) == (0, [])
        assert report["counts"]["delivered"] == 1
        assert report["headline"]["state"] == "ok"
        assert scrape(url)[series("exportsync_items", state="failed")] == 0
        assert daemon.terminate() == 0


# -- check --probe --------------------------------------------------------------------------------


def test_check_probe_names_the_keys_user_and_a_refused_key(
    open_devstack: DevstackInfo, tmp_path: Path
) -> None:
    """Three probes of one key from two spools: a devstack without a per-second limit, since
    the second spool's ledger cannot know the first one's request of a moment ago."""
    devstack = open_devstack
    config = write_config(tmp_path, devstack)
    plain = cli("check", "--config", str(config))
    assert plain.returncode == 0, plain.stdout
    assert "the API key was not tested" in plain.stdout
    probed = cli("check", "--probe", "--config", str(config))
    assert probed.returncode == 0, probed.stdout
    assert f"key user: {devstack.user_id}" in probed.stdout
    assert status(config)["quota"]["used"] == 1  # the probe is counted like any request
    other = write_config(tmp_path / "other", devstack, api={"user_id": "someone-else"})
    mismatch = cli("check", "--probe", "--config", str(other))
    assert mismatch.returncode == 0
    assert f"but the key's user is '{devstack.user_id}'" in mismatch.stdout
    (tmp_path / "api_key").write_text("not-the-key\n")
    refused = cli("check", "--probe", "--config", str(config))
    assert refused.returncode == 1
    assert "API key refused" in refused.stdout
    assert "not-the-key" not in refused.stdout + refused.stderr


def test_two_probes_back_to_back_wait_for_the_per_second_slot(
    devstack: DevstackInfo, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`check --probe` twice at once from one spool, against the usage plan's 1 request/s: the
    second waits for the ledger's slot, so the gateway throttles neither."""
    config = load(write_config(tmp_path, devstack), require_api=True)
    assert run_checks(config, probe=True) == 0, capsys.readouterr().out
    assert run_checks(config, probe=True) == 0, capsys.readouterr().out
    assert capsys.readouterr().out.count(f"key user: {devstack.user_id}") == 2
    # The devstack's bucket (rate 1, burst 1) takes a token per request at its arrival: two
    # accepted and none throttled is the gateway seeing them at least a second apart.
    counted = usage(devstack)["by_key"][devstack.user_id]
    assert (counted["accepted"], counted["throttled"]) == (2, 0)
    with Spool.open(config.state.dir) as spool:
        assert build_ledger(config, spool, SystemClock()).snapshot().used == 2


# -- the headline names each blocking state --------------------------------------------------------


def test_the_headline_names_each_blocking_state(tmp_path: Path) -> None:
    with start_devstack(tmp_path / "ds", "--quota", "1") as devstack:
        # The gateway allows 1 request a day, the config believes 10: the second is refused
        # with Limit Exceeded and the day counts as used up.
        config = write_config(tmp_path, devstack)
        export = tmp_path / "export"
        with run_daemon(config) as daemon:
            daemon.wait_ready()
            assert status(config)["headline"]["state"] == "ok"
            (export / "a.csv").write_bytes(CSV)
            assert wait_for(lambda: status(config)["counts"]["delivered"] == 1, 30)
            (export / "b.csv").write_bytes(CSV + b"2\n")
            assert headline_is(config, "quota_exhausted"), daemon.output()
            head = status(config)["headline"]
            assert "used up" in head["text"]
            assert "T00:00:00Z (in " in head["text"]
            export.rename(tmp_path / "export-away")
            assert headline_is(config, "folder_missing"), daemon.output()
            assert daemon.terminate() == 0
        # A wrong key: the daemon's request is refused (403).
        wrong = tmp_path / "wrong"
        config = write_config(wrong, devstack)
        (wrong / "api_key").write_text("not-the-key\n")
        with run_daemon(config) as daemon:
            daemon.wait_ready()
            (wrong / "export" / "a.csv").write_bytes(CSV)
            assert headline_is(config, "key_refused"), daemon.output()
            text = status(config)["headline"]["text"]
            assert "api.api_key_file" in text
            assert "check --probe" in text
            assert daemon.terminate() == 0
    # Nothing listens any more: unreachable.
    config = write_config(tmp_path / "offline", devstack)
    with run_daemon(config) as daemon:
        daemon.wait_ready()
        (tmp_path / "offline" / "export" / "a.csv").write_bytes(CSV)
        assert headline_is(config, "unreachable"), daemon.output()
        assert daemon.terminate() == 0
