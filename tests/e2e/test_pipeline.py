"""The whole pipeline on one machine: `exportsync run` against the devstack on loopback.

Real inotify on a temp folder, a real SQLite spool, real HTTP to the gateway emulator, the real
Lambda handler, and moto's server holding what landed.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import pytest

from exportsync.cli import DRAIN_SECONDS, main
from support.daemon import DaemonProcess, run_daemon, settled, spool_items, write_config
from support.devstack import DevstackInfo, dynamo_items, s3_objects, start_devstack, usage, wait_for

# Only a bound against hanging: exits are judged by their exit code and the daemon's events.
EXIT_DEADLINE = 40.0


def _by_sha(info: DevstackInfo) -> dict[str, bytes]:
    """What landed in S3, by the sha256 segment of its key (names are sanitised by the server)."""
    out = {}
    for key, data in s3_objects(info).items():
        prefix, user, sha, _name = key.split("/")
        assert (prefix, user) == ("uploads", info.user_id)
        assert sha not in out, f"two objects for one content: {key}"
        out[sha] = data
    return out


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _status(config: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, object]:
    capsys.readouterr()
    assert main(["status", "--json", "--config", str(config)]) == 0
    result: dict[str, object] = json.loads(capsys.readouterr().out)
    return result


def _ready_counts(daemon: DaemonProcess) -> dict[str, object]:
    """The daemon's own daemon_ready line: its spool counts and quota as it starts delivering."""
    return next(e for e in daemon.events() if e.get("event") == "daemon_ready")


def _quiet_for(info: DevstackInfo, seconds: float) -> bool:
    """True when the gateway saw no new request for `seconds` (a bounded negative check; call it
    after a positive signal that the daemon has nothing to send)."""
    before = usage(info)["requests"]
    return not wait_for(lambda: usage(info)["requests"] != before, deadline=seconds)


def test_every_kind_of_file_arrives_and_a_restart_sends_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    outside = tmp_path / "secret.csv"
    outside.write_bytes(b"never,read\n")
    with start_devstack(tmp_path / "ds", "--quota", "0") as info:
        config = write_config(tmp_path, info)
        export = tmp_path / "export"
        present = b"present,before\nstart,1\n"
        (export / "before start.csv").write_bytes(present)
        with run_daemon(config) as daemon:
            daemon.wait_ready()
            expected: dict[str, bytes] = {"before start.csv": present}

            slow = b"".join(f"row,{i}\n".encode() for i in range(2000))
            with (export / "slow.csv").open("wb") as handle:
                for start in range(0, len(slow), 4096):
                    handle.write(slow[start : start + 4096])
                    handle.flush()
                    time.sleep(0.05)  # the scenario: an exporter writing in chunks
            expected["slow.csv"] = slow

            renamed = b"written,under\na,temp name\n"
            (export / ".report.csv.Xa81Q").write_bytes(renamed)
            os.rename(export / ".report.csv.Xa81Q", export / "report.csv")
            expected["report.csv"] = renamed

            odd = "Prüfung \u2013 März 2026 (final).csv"  # en dash, umlauts, spaces
            expected[odd] = "ä,ö,ü\n€,😀\n".encode()
            (export / odd).write_bytes(expected[odd])
            expected["empty.csv"] = b""
            (export / "empty.csv").write_bytes(b"")

            (export / "good.session.json").write_text(
                json.dumps({"timestamp": "2026-11-25T10:00:00Z", "score": 0.1, "steps": 12})
            )
            (export / "nan.session.json").write_text(
                '{"timestamp": "2026-11-25T11:00:00Z", "score": NaN}'
            )
            (export / "link.csv").symlink_to(outside)
            (export / "notes.txt").write_text("not an export")

            assert wait_for(lambda: settled(daemon.state_dir, 8), deadline=60), daemon.output()

            assert _by_sha(info) == {_sha(data): data for data in expected.values()}
            (item,) = dynamo_items(info)
            assert item["user_id"] == info.user_id
            assert item["score"] == Decimal("0.1")

            status = _status(config, capsys)
            assert status["counts"] == {"pending": 0, "sending": 0, "delivered": 6, "failed": 2}
            reasons = {Path(str(f["path"])).name: f["reason"] for f in status["failed"]}  # type: ignore[attr-defined]
            assert "NaN" in reasons["nan.session.json"]
            assert "symlink" in reasons["link.csv"]
            assert daemon.terminate() == 0
        requests_before = usage(info)["requests"]

        with run_daemon(config) as again:
            again.wait_ready()
            ready = _ready_counts(again)
            assert (ready["pending"], ready["sending"], ready["delivered"]) == (0, 0, 6)
            assert _quiet_for(info, 3.0)
            assert again.terminate() == 0
        assert usage(info)["requests"] == requests_before

        logs = "".join(p.read_text() for p in tmp_path.glob("daemon-*.log"))
        assert info.api_key not in logs
        assert info.api_key not in json.dumps(status)
        assert '"event": "item_delivered"' in logs


def test_a_file_above_the_inline_limit_goes_through_a_presigned_put(tmp_path: Path) -> None:
    """The large-file route end to end: a presign entry, then the PUT through the devstack's
    strict S3 front (signature, expiry and checksum checked as S3 checks them), then moto."""
    with start_devstack(tmp_path / "ds", "--quota", "0") as info:
        config = write_config(tmp_path, info, api={"inline_max_bytes": 100_000})
        export = tmp_path / "export"
        big = b"".join(b"2026-02-10,%d,steps\n" % i for i in range(20_000))  # ~420 KB
        small = b"a,b\n1,2\n"
        with run_daemon(config) as daemon:
            daemon.wait_ready()
            (export / "big.csv").write_bytes(big)
            (export / "small.csv").write_bytes(small)
            assert wait_for(lambda: settled(daemon.state_dir, 2), 60), daemon.output()
            assert daemon.terminate() == 0
        assert {i.state for i in spool_items(tmp_path / "state")} == {"delivered"}
        assert _by_sha(info) == {_sha(big): big, _sha(small): small}
        counters = usage(info)
        # The big file was a presign entry, its bytes one PUT that the strict front let through.
        assert counters["s3"] == counters["s3"] | {"presigned": 1, "refused": {}}
        assert daemon.saw("upload_started")


def test_a_four_request_day_is_never_overrun_across_restarts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with start_devstack(tmp_path / "ds", "--quota", "4", "--rate", "1", "--burst", "1") as info:
        # A plan this small keeps no reserve: each request goes as soon as its file is complete.
        config = write_config(tmp_path, info, quota={"daily_requests": 4})
        export = tmp_path / "export"
        with run_daemon(config) as daemon:
            daemon.wait_ready()
            # One file at a time, each waiting for its delivery: every file costs a request.
            for i in range(4):
                (export / f"f{i}.csv").write_text(f"n,{i}\n")
                done = functools.partial(settled, daemon.state_dir, i + 1)
                assert wait_for(done, 30), daemon.output()
            # Past the day's quota: these wait in the spool, and nothing more is sent.
            (export / "late.csv").write_text("late\n")
            (export / "late.session.json").write_text('{"timestamp": "2026-11-25T12:00:00Z"}')
            assert wait_for(lambda: len(spool_items(daemon.state_dir)) == 6, 30)
            # The daemon's own record says the day is spent before the quiet window is judged.
            status = _status(config, capsys)
            quota = status["quota"]
            assert isinstance(quota, dict)
            assert (quota["used"], quota["exhausted"]) == (4, True)
            assert _quiet_for(info, 3.0)
            before_restart = usage(info)
            assert daemon.terminate() == 0
        with run_daemon(config) as again:
            again.wait_ready()
            ready = _ready_counts(again)
            assert (ready["quota_used"], ready["quota_limit"], ready["pending"]) == (4, 4, 2)
            assert _quiet_for(info, 3.0)
            after_restart = usage(info)
            status_after = _status(config, capsys)
            assert again.terminate() == 0

    for counters in (before_restart, after_restart):
        assert counters["throttled"] == 0
        assert counters["quota_exceeded"] == 0
        assert counters["accepted"] == 4
    for report in (status, status_after):
        quota = report["quota"]
        assert isinstance(quota, dict)
        assert quota["used"] == 4  # the same count the gateway keeps
        assert quota["limit"] == 4
        assert report["counts"] == {"pending": 2, "sending": 0, "delivered": 4, "failed": 0}
        backlog = report["backlog"]
        assert isinstance(backlog, dict)
        assert (backlog["items"], backlog["requests_needed"]) == (2, 1)
        assert backlog["eta"] is not None  # after the reset: today's requests are used up
        assert "today's requests are used up" in str(report["plan"])


def test_kill_9_mid_delivery_under_faults_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    args = ("--quota", "0", "--rate", "20", "--burst", "20", "--fault-rate", "0.2", "--seed", "7")
    with start_devstack(tmp_path / "ds", *args) as info:
        config = write_config(
            tmp_path,
            info,
            quota={"daily_requests": 0, "requests_per_second": 10, "burst": 5},
            api={"batch_max_files": 2, "timeout_seconds": 2},
        )
        export = tmp_path / "export"
        csvs = {f"part {i:02d}.csv": f"id,value\n{i},{i * i}\n".encode() for i in range(24)}
        sessions = [
            {"timestamp": f"2026-11-25T10:00:{i:02d}Z", "value": Decimal(i) / 10} for i in range(12)
        ]
        with run_daemon(config) as daemon:
            daemon.wait_ready()
            for name, data in csvs.items():
                (export / name).write_bytes(data)
            for i, session in enumerate(sessions):
                text = json.dumps({**session, "value": str(session["value"])})
                (export / f"s{i:02d}.session.json").write_text(text)
            assert wait_for(lambda: daemon.saw("request_sending", 3), 30), daemon.output()
            daemon.kill()
        with run_daemon(config) as again:
            again.wait_ready()
            total = len(csvs) + len(sessions)
            assert wait_for(lambda: settled(again.state_dir, total), 90), again.output()
            assert again.terminate() == 0

        items = spool_items(tmp_path / "state")
        assert len(items) == len(csvs) + len(sessions)
        assert {i.state for i in items} == {"delivered"}
        assert _by_sha(info) == {_sha(data): data for data in csvs.values()}
        stored = dynamo_items(info)
        assert sorted(str(s["timestamp"]) for s in stored) == sorted(
            str(s["timestamp"]) for s in sessions
        )


def test_first_sigterm_drains_and_exits_zero(tmp_path: Path) -> None:
    with start_devstack(tmp_path / "ds") as info:
        config = write_config(tmp_path, info)
        with run_daemon(config) as daemon:
            daemon.wait_ready()
            daemon.process.send_signal(signal.SIGTERM)
            # Generous deadline; what proves the drain is the events, not a stopwatch.
            assert daemon.process.wait(EXIT_DEADLINE) == 0
            assert daemon.saw("shutdown_requested")
            assert daemon.saw("daemon_stopped")
            assert not daemon.saw("shutdown_abandoned_request")


def _hung_request(tmp_path: Path, info: DevstackInfo) -> Path:
    config = write_config(tmp_path, info, api={"timeout_seconds": 120})
    (tmp_path / "export" / "a.csv").write_text("a\n")
    return config


SLOW = ("--fault-rate", "1", "--fault-kinds", "slow", "--slow-seconds", "60")


def test_sigterm_during_a_hung_request_abandons_it_and_exits_zero_within_10_s(
    tmp_path: Path,
) -> None:
    with start_devstack(tmp_path / "ds", *SLOW) as info:
        config = _hung_request(tmp_path, info)
        with run_daemon(config) as daemon:
            daemon.wait_ready()
            assert wait_for(lambda: daemon.saw("request_sending"), 30), daemon.output()
            daemon.process.send_signal(signal.SIGTERM)
            # The answer would take 60 s: exiting 0 at all means the drain gave up on it,
            # and the event says so (the drain's length is the code's DRAIN_SECONDS).
            assert daemon.process.wait(EXIT_DEADLINE) == 0
            abandoned = [
                e for e in daemon.events() if e.get("event") == "shutdown_abandoned_request"
            ]
            assert [e["drain_seconds"] for e in abandoned] == [DRAIN_SECONDS]
            assert DRAIN_SECONDS < 10  # the README's "exits within 10 seconds"
    # The abandoned item is still in the spool, to be sent again at the next start.
    (item,) = spool_items(tmp_path / "state")
    assert item.state == "sending"


def test_a_second_sigterm_exits_at_once(tmp_path: Path) -> None:
    with start_devstack(tmp_path / "ds", *SLOW) as info:
        config = _hung_request(tmp_path, info)
        with run_daemon(config) as daemon:
            daemon.wait_ready()
            assert wait_for(lambda: daemon.saw("request_sending"), 30), daemon.output()
            daemon.process.send_signal(signal.SIGTERM)
            assert wait_for(lambda: daemon.saw("shutdown_requested"), EXIT_DEADLINE)
            daemon.process.send_signal(signal.SIGTERM)
            # Exit code 1 and shutdown_forced, never the drain's own end (exit 0 after 10 s with
            # shutdown_abandoned_request): the second signal cut the drain short.
            assert daemon.process.wait(EXIT_DEADLINE) == 1
            assert daemon.saw("shutdown_forced")
            assert not daemon.saw("shutdown_abandoned_request")


def test_status_from_the_command_line_never_shows_the_key(tmp_path: Path) -> None:
    with start_devstack(tmp_path / "ds") as info:
        config = write_config(tmp_path, info)
        env = {**os.environ, "EXPORTSYNC_API_KEY": info.api_key}
        for args in (["status"], ["status", "--json"], ["check"]):
            done = subprocess.run(
                [sys.executable, "-m", "exportsync", *args, "--config", str(config)],
                capture_output=True,
                text=True,
                env=env,
                check=False,
                timeout=30,
            )
            assert done.returncode == 0, done.stderr
            assert info.api_key not in done.stdout + done.stderr
        assert usage(info)["requests"] == 0  # check spends no request
