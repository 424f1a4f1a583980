"""A hostile export folder beside good files: `exportsync run` against the devstack never exits.

Dozens of kinds of bad input (fifo, socket, symlink loops and escapes, a sparse file over S3's
5 TiB, numbers Decimal cannot hold, 100,000-deep nesting, scalars, Latin-1, another user's
sessions ...) are put in the folder before the start and while the daemon runs, among good files
with hostile names (not UTF-8, NFD, a newline, 255 bytes). Every good file must arrive, every bad
one must be `failed` with a reason, the names no export is (a directory called x.csv, owner-lock
files, temp names) must be left alone, and a restart must not crash on any of it.
"""

from __future__ import annotations

import hashlib
import json
import os
from contextlib import redirect_stdout
from io import StringIO
from pathlib import Path

from exportsync.cli import main
from exportsync.spool import Item
from exportsync_wire import limits
from support.corpus import Maker, fifo, sparse, symlink, unix_socket, write
from support.daemon import run_daemon, spool_items, write_config
from support.devstack import DevstackInfo, dynamo_items, s3_objects, start_devstack, wait_for

TS = "2026-11-25T10:00:{:02d}Z"


def _session(n: int, **fields: object) -> bytes:
    return json.dumps({"timestamp": TS.format(n), **fields}).encode()


def _name(raw: bytes) -> str:
    return os.fsdecode(raw)


def _offset(tag: str) -> int:
    """Seconds added to timestamps, so each round's sessions have keys of their own."""
    return 0 if tag == "start" else 30


def _good(tag: str) -> dict[str, bytes]:
    """Good files with hostile names: each must be delivered."""
    o = _offset(tag)
    return {
        f"plain-{tag}.csv": f"id,value\n1,{tag}\n".encode(),
        f"empty-{tag}.csv": b"",
        _name(f"latin1-caf\xe9-{tag}.csv".encode("latin-1")): f"not,utf8 name {tag}\n".encode(),
        f"nfd-Cafe\u0301-{tag}.csv": f"nfd,{tag}\n".encode(),
        f"new\nline-{tag}.csv": f"newline,{tag}\n".encode(),
        f"{tag}-" + "n" * (251 - len(tag) - 1) + ".csv": f"long name,{tag}\n".encode(),
        f"bom-{tag}.session.json": b"\xef\xbb\xbf" + _session(o + 1, tag=tag, bom=True),
        f"good-{tag}.session.json": _session(o + 2, tag=tag, score=0.1),
        _name(f"s\xff-{tag}.session.json".encode("latin-1")): _session(o + 3, tag=tag),
    }


def _bad(tag: str, outside: Path) -> dict[str, Maker]:
    """Bad inputs: each must end `failed` with a reason, and nothing else may stop."""
    o = _offset(tag)
    return {
        f"fifo-{tag}.csv": fifo,
        f"socket-{tag}.csv": unix_socket,
        f"loop-{tag}.csv": symlink(f"loop-{tag}.csv"),
        f"escape-{tag}.csv": symlink(str(outside / "secret.csv")),
        f"dirlink-{tag}.csv": symlink(str(outside)),
        f"dangling-{tag}.csv": symlink("/nonexistent/x.csv"),
        # Over S3's 5 TiB for one object (a 6 GiB file is no longer bad: it goes up in parts).
        f"sparse-over-5tib-{tag}.csv": sparse(limits.OBJECT_BYTES + 1),
        f"sparse-{tag}.session.json": sparse(64 * 1024**2),
        f"empty-{tag}.session.json": write(b""),
        f"truncated-{tag}.session.json": write(_session(o + 4)[:-7]),
        f"scalar-number-{tag}.session.json": write(b"42"),
        f"scalar-string-{tag}.session.json": write(b'"a session"'),
        f"scalar-null-{tag}.session.json": write(b"null"),
        f"empty-list-{tag}.session.json": write(b"[]"),
        f"latin1-{tag}.session.json": write(
            _session(o + 5, city="Gen\xe8ve").replace(b"\\u00e8", b"\xe8")
        ),
        f"no-timestamp-{tag}.session.json": write(b'{"steps": 1}'),
        f"bad-timestamp-{tag}.session.json": write(b'{"timestamp": "yesterday"}'),
        f"nan-{tag}.session.json": write(b'{"timestamp": "2026-11-25T10:00:06Z", "x": NaN}'),
        f"overflow-{tag}.session.json": write(
            b'{"timestamp": "2026-11-25T10:00:07Z", "v": 1e9999999999999999999}'
        ),
        f"underflow-{tag}.session.json": write(
            b'{"timestamp": "2026-11-25T10:00:08Z", "v": 1e-9999999999999999999}'
        ),
        f"huge-int-{tag}.session.json": write(
            b'{"timestamp": "2026-11-25T10:00:09Z", "v": 1' + b"0" * 5000 + b"}"
        ),
        f"deep-{tag}.session.json": write(b"[" * 100_000 + b"]" * 100_000),
        f"surrogate-{tag}.session.json": write(
            b'{"timestamp": "2026-11-25T10:00:10Z", "s": "\\ud800"}'
        ),
        f"user-type-{tag}.session.json": write(
            b'{"timestamp": "2026-11-25T10:00:11Z", "user_id": 7}'
        ),
        f"too-big-{tag}.session.json": write(_session(o + 12, blob="x" * 500_000)),
        f"other-user-{tag}.session.json": write(_session(o + 13, user_id="mallory")),
        f"half-bad-{tag}.session.json": write(
            b"[" + _session(o + 14, tag=tag) + b', {"timestamp": 5}]'
        ),
    }


def _ignored(tag: str) -> dict[str, Maker]:
    """Names that are no export: never spooled, never sent."""
    return {
        f"dir-{tag}.csv": lambda path: path.mkdir(),
        f"~$owner-lock-{tag}.csv": write(b"lock"),
        f".hidden-{tag}.csv": write(b"hidden"),
        f"partial-{tag}.csv.part": write(b"part"),
        f"temp-{tag}.csv.tmp": write(b"tmp"),
        f"notes-{tag}.txt": write(b"notes"),
    }


def _populate(export: Path, outside: Path, tag: str) -> tuple[dict[str, bytes], set[str], set[str]]:
    good = _good(tag)
    bad = _bad(tag, outside)
    ignored = _ignored(tag)
    for name, data in good.items():
        (export / name).write_bytes(data)
    for name, make in {**bad, **ignored}.items():
        make(export / name)
    return good, set(bad), set(ignored)


def _by_name(state_dir: Path) -> dict[str, Item]:
    return {item.path.name: item for item in spool_items(state_dir)}


def _settled(state_dir: Path, names: set[str]) -> bool:
    items = _by_name(state_dir)
    return names <= set(items) and all(items[n].state in ("delivered", "failed") for n in names)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _stored_shas(info: DevstackInfo) -> set[str]:
    return {key.split("/")[2] for key in s3_objects(info)}


def test_a_hostile_folder_never_stops_the_daemon(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.csv").write_bytes(b"never,read\n")
    with start_devstack(tmp_path / "ds", "--quota", "0", "--rate", "20", "--burst", "5") as info:
        config = write_config(
            tmp_path,
            info,
            watch={"settle_seconds": 0.5},
            quota={"daily_requests": 0, "requests_per_second": 10.0, "burst": 5},
        )
        export = tmp_path / "export"
        good, bad, ignored = _populate(export, outside, "start")
        with run_daemon(config) as daemon:
            daemon.wait_ready()
            more_good, more_bad, more_ignored = _populate(export, outside, "live")
            good |= more_good
            bad |= more_bad
            ignored |= more_ignored
            names = set(good) | bad
            assert wait_for(lambda: _settled(daemon.state_dir, names), 60), daemon.output()
            assert daemon.process.poll() is None, daemon.output()

            items = _by_name(daemon.state_dir)
            assert {n: items[n].state for n in good} == dict.fromkeys(good, "delivered")
            assert {n: items[n].state for n in bad} == dict.fromkeys(bad, "failed")
            assert all(items[n].last_error for n in bad)
            assert not (ignored & set(items))
            assert set(items) == names  # nothing else was spooled
            csv_shas = {_sha(data) for name, data in good.items() if name.endswith(".csv")}
            assert csv_shas <= _stored_shas(info)
            assert b"never,read" not in b"".join(s3_objects(info).values())
            tags = {item.get("tag") for item in dynamo_items(info)}
            assert tags >= {"start", "live"}

            # status shows every name, hostile or not, as valid UTF-8
            for args in (["status", "--json"], ["status"]):
                out = StringIO()
                with redirect_stdout(out):
                    assert main([*args, "--config", str(config)]) == 0
                out.getvalue().encode("utf-8")
            assert daemon.terminate() == 0

        with run_daemon(config) as again:
            again.wait_ready()
            assert again.process.poll() is None
            assert again.terminate() == 0
        assert {n: i.state for n, i in _by_name(tmp_path / "state").items()} == {
            n: items[n].state for n in names
        }
