"""A real `exportsync run` never leaves items stuck: not when the state disk fills while a request
is out, not when its spool file is deleted, replaced or overwritten while it runs."""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from exportsync.spool import Spool
from support.daemon import DaemonProcess, run_daemon, spool_items, write_config
from support.devstack import DevstackInfo, dynamo_items, s3_objects, start_devstack, wait_for
from support.fullfs import fill, small_tmpfs
from support.relay import Relay

pytestmark = pytest.mark.integration

DEADLINE = 90.0


@pytest.fixture(scope="module")
def devstack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevstackInfo]:
    with start_devstack(tmp_path_factory.mktemp("ds"), "--quota", "0", "--rate", "50") as info:
        yield info


def _drop(export: Path, tag: str, n: int) -> dict[str, bytes]:
    """`n` CSVs and `n` session files with content unique to `tag`; name -> bytes."""
    made: dict[str, bytes] = {}
    for i in range(n):
        made[f"{tag}-{i}.csv"] = f"tag,i\n{tag},{i}\n".encode()
        stamp = f"2026-11-25T10:{i:02d}:00.{abs(hash(tag)) % 10**6:06d}Z"
        made[f"{tag}-{i}.session.json"] = json.dumps({"timestamp": stamp, "tag": tag}).encode()
    for name, data in made.items():
        (export / name).write_bytes(data)
    return made


def _delivered_once(info: DevstackInfo, made: dict[str, bytes]) -> bool:
    objects = s3_objects(info)
    csvs = [data for name, data in made.items() if name.endswith(".csv")]
    stored = Counter(objects.values())
    sessions = {json.loads(data)["timestamp"] for n, data in made.items() if n.endswith(".json")}
    found = Counter(str(i["timestamp"]) for i in dynamo_items(info))
    return all(stored[c] == 1 for c in csvs) and all(found[t] == 1 for t in sessions)


def _all_delivered(state_dir: Path, names: set[str]) -> bool:
    items = {i.path.name: i.state for i in spool_items(state_dir)}
    return all(items.get(name) == "delivered" for name in names)


def _config(base: Path, info: DevstackInfo, url: str | None = None) -> Path:
    config = write_config(
        base,
        info,
        api={"timeout_seconds": 30},
        quota={"daily_requests": 0, "requests_per_second": 50, "burst": 10},
        watch={"settle_seconds": 0.2},
    )
    if url is not None:
        config.write_text(config.read_text().replace(json.dumps(info.api_url), json.dumps(url)))
    return config


def _one_run(daemon: DaemonProcess) -> None:
    """Still the first process: it never exited, and started once."""
    assert daemon.process.poll() is None, daemon.output()
    assert sum(e.get("event") == "daemon_started" for e in daemon.events()) == 1


@pytest.mark.timeout(240)
@pytest.mark.parametrize("answer", ["stored", "503"])
def test_an_answer_that_arrives_while_the_state_disk_is_full_is_recorded_once_room_returns(
    tmp_path: Path, devstack: DevstackInfo, answer: str
) -> None:
    with small_tmpfs(tmp_path / "state", size="4m") as why_not:
        if why_not is not None:
            pytest.skip(f"needs a small file system for the state dir: {why_not}")
        with Relay(devstack.api_url) as relay:
            config = _config(tmp_path, devstack, relay.url)
            with run_daemon(config) as daemon:
                daemon.wait_ready()
                relay.hold_next(fake_status=503 if answer == "503" else None)
                made = _drop(tmp_path / "export", f"full-{answer}", 4)
                assert relay.holding.wait(DEADLINE), daemon.output()
                filler = fill(tmp_path / "state")
                relay.release()
                assert wait_for(lambda: daemon.saw("spool_unavailable"), DEADLINE), daemon.output()
                filler.unlink()
                assert wait_for(
                    lambda: _all_delivered(tmp_path / "state", set(made)), DEADLINE, 0.25
                ), daemon.output()
                _one_run(daemon)
                assert daemon.saw("sending_released"), daemon.output()
                assert {i.state for i in spool_items(tmp_path / "state")} == {"delivered"}
                assert _delivered_once(devstack, made)
                assert daemon.terminate() == 0


def _delete(spool: Path) -> None:
    spool.unlink()


def _replace(spool: Path) -> None:
    garbage = spool.with_name("garbage")
    garbage.write_bytes(os.urandom(8192))
    garbage.rename(spool)


def _overwrite(spool: Path) -> None:
    """Garbage over the same file, its WAL and SHM gone (SQLite would serve pages from them)."""
    size = max(spool.stat().st_size, 8192)
    with spool.open("r+b") as f:
        f.write(os.urandom(size))
    for suffix in ("-wal", "-shm"):
        spool.with_name(spool.name + suffix).unlink(missing_ok=True)


@pytest.mark.timeout(240)
@pytest.mark.parametrize("how", ["deleted", "replaced", "overwritten"])
def test_a_spool_lost_while_running_is_put_right_without_a_restart(
    tmp_path: Path, devstack: DevstackInfo, how: str
) -> None:
    config = _config(tmp_path, devstack)
    state = tmp_path / "state"
    spool = Spool.path_in(state)
    with run_daemon(config) as daemon:
        daemon.wait_ready()
        before = _drop(tmp_path / "export", f"before-{how}", 3)
        assert wait_for(lambda: _all_delivered(state, set(before)), DEADLINE, 0.25), (
            [(i.path.name, i.state) for i in spool_items(state)],
            daemon.output(),
        )
        {"deleted": _delete, "replaced": _replace, "overwritten": _overwrite}[how](spool)
        after = _drop(tmp_path / "export", f"after-{how}", 2)  # wakes the loop
        events = ("spool_restored", "spool_corrupt")
        assert wait_for(lambda: any(daemon.saw(e) for e in events), DEADLINE), daemon.output()
        made = before | after
        assert wait_for(lambda: _all_delivered(state, set(made)), DEADLINE, 0.25), daemon.output()
        _one_run(daemon)
        (line,) = [e for e in daemon.events() if e.get("event") in events]
        assert line["reason"] == {"overwritten": "wal deleted"}.get(how, how)
        if how == "replaced":
            assert line["moved_to"]
            assert Path(line["moved_to"]).exists()
        if how != "overwritten":
            # Restored from the database still open: what was delivered is not sent again.
            assert line["event"] == "spool_restored"
            sent = [e for e in daemon.events() if e.get("event") == "request_sent"]
            assert sum(e["items"] for e in sent) == len(made)
        assert _delivered_once(devstack, made)
        assert daemon.terminate() == 0


@pytest.mark.timeout(240)
def test_answers_with_an_unknown_status_are_retried_until_the_api_is_fixed(
    tmp_path: Path, devstack: DevstackInfo
) -> None:
    with Relay(devstack.api_url) as relay:
        config = _config(tmp_path, devstack, relay.url)
        with run_daemon(config) as daemon:
            daemon.wait_ready()
            relay.mangle_next()  # an API of another version answers "ok", twice
            made = _drop(tmp_path / "export", "unknown", 2)
            assert wait_for(lambda: relay.mangled == 1, DEADLINE), daemon.output()
            relay.mangle_next()
            assert wait_for(lambda: relay.mangled == 2, DEADLINE), daemon.output()
            # ... then it is fixed: delivered, nothing ever failed.
            assert wait_for(
                lambda: _all_delivered(tmp_path / "state", set(made)), DEADLINE, 0.25
            ), daemon.output()
            _one_run(daemon)
            assert sum(e.get("event") == "api_protocol_error" for e in daemon.events()) == 2
            assert not daemon.saw("item_failed")
            assert _delivered_once(devstack, made)
            assert daemon.terminate() == 0
