"""journald priorities: with JOURNAL_STREAM naming the log stream, each line is `<N>` + one JSON
object; anywhere else the lines are unchanged."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from exportsync.journald import is_journal_stream, journal_log_stream
from exportsync.logs import configure_logging, get_logger
from support.devstack import wait_for

KEY = "sk-journal-test-0123456789"


@pytest.fixture(autouse=True)
def _reset_logging() -> Iterator[None]:
    yield
    structlog.reset_defaults()


def identity(path: Path) -> str:
    info = path.stat()
    return f"{info.st_dev}:{info.st_ino}"


def test_the_stream_is_recognised_by_device_and_inode(tmp_path: Path) -> None:
    one, other = tmp_path / "one", tmp_path / "other"
    with one.open("w") as a, other.open("w") as b:
        env = {"JOURNAL_STREAM": identity(one)}
        assert is_journal_stream(a, env)
        assert not is_journal_stream(b, env)
        assert not is_journal_stream(a, {})
        assert not is_journal_stream(a, {"JOURNAL_STREAM": "garbage"})
        assert not is_journal_stream(io.StringIO(), env)
        assert journal_log_stream(a, b, env) is a  # the journal listens on stdout alone
        assert journal_log_stream(b, a, env) is a


def test_each_level_gets_its_priority(tmp_path: Path) -> None:
    path = tmp_path / "journal"
    with path.open("w") as out:
        configure_logging("json", "debug", out, env={"JOURNAL_STREAM": identity(path)})
        log = get_logger("exportsync.test")
        log.debug("d")
        log.info("i")
        log.warning("w")
        log.error("e")
    lines = path.read_text().splitlines()
    assert [line[:3] for line in lines] == ["<7>", "<6>", "<4>", "<3>"]
    assert [json.loads(line[3:])["event"] for line in lines] == ["d", "i", "w", "e"]


def test_no_prefix_off_the_journal(tmp_path: Path) -> None:
    path = tmp_path / "plain"
    with path.open("w") as out:
        configure_logging("json", "info", out, env={"JOURNAL_STREAM": "1:2"})
        get_logger("t").warning("w")
    assert json.loads(path.read_text())["event"] == "w"


def test_the_daemon_prefixes_every_line_under_journald(tmp_path: Path) -> None:
    """A real `exportsync run` whose stdout is what JOURNAL_STREAM names: a failed file is <4>."""
    watch = tmp_path / "export"
    watch.mkdir()
    key_file = tmp_path / "api_key"
    key_file.write_text(KEY)
    key_file.chmod(0o600)
    config = tmp_path / "exportsync.toml"
    config.write_text(
        f'[watch]\ndir = "{watch}"\n[state]\ndir = "{tmp_path / "state"}"\n'
        # Nothing listens on port 9: the bad session fails before any request is made.
        f'[api]\nurl = "http://127.0.0.1:9/prod"\napi_key_file = "{key_file}"\n'
        'user_id = "alice"\n[log]\nlevel = "info"\n'
    )
    (watch / "bad.session.json").write_text('{"timestamp": "2026-01-01T00:00:00Z", "x": NaN}')
    journal, stderr = tmp_path / "journal", tmp_path / "stderr"
    env = {k: v for k, v in os.environ.items() if not k.startswith("EXPORTSYNC_")}
    with journal.open("w") as out, stderr.open("w") as err:
        env["JOURNAL_STREAM"] = identity(journal)
        process = subprocess.Popen(
            [sys.executable, "-m", "exportsync", "run", "--config", str(config)],
            stdout=out,
            stderr=err,
            env=env,
        )
        try:
            assert wait_for(lambda: '"item_failed"' in journal.read_text(), 30.0), (
                journal.read_text() + stderr.read_text()
            )
        finally:
            process.send_signal(signal.SIGTERM)
            code = process.wait(timeout=30)
    assert code == 0
    assert stderr.read_text() == ""  # the log went where the journal listens
    lines = journal.read_text().splitlines()
    events = {}
    for line in lines:
        assert line[:3] in ("<3>", "<4>", "<6>", "<7>"), line
        events[json.loads(line[3:])["event"]] = line[:3]
    assert events["daemon_started"] == "<6>"
    assert events["item_failed"] == "<4>"
    assert KEY not in journal.read_text()
