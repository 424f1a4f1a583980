"""A corpus of hostile inputs for an export folder, each with what the daemon must make of it.

Three expectations:

* ``failed``: a file the daemon must refuse — spooled as `failed` with a non-empty reason (fifo,
  socket, symlinks, a sparse CSV over 5 TiB, session files that are not valid, numbers Decimal
  cannot hold, 100,000-deep nesting, another user's sessions ...);
* ``ignored``: a name that is no export at all (a directory called x.csv, owner-lock files, temp
  names) — never spooled, never sent;
* ``delivered``: a good file under a hostile name (not UTF-8, NFD, a newline, 255 bytes) or with a
  BOM — it must arrive like any other.

`hostile(tag, outside, day)` gives one of each kind; `tag` keeps the names of two rounds apart and
`day` (1..28) the session timestamps, so several rounds can share one folder and one table.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

__all__ = [
    "Expect",
    "Hostile",
    "Maker",
    "chain_loop",
    "fifo",
    "hostile",
    "mkdir",
    "sparse",
    "symlink",
    "unix_socket",
    "write",
]

Expect = Literal["failed", "ignored", "delivered"]
Maker = Callable[[Path], None]


@dataclass(frozen=True)
class Hostile:
    """One hostile input: its kind, its name in the folder, how to make it, what must happen."""

    kind: str
    name: str
    make: Maker
    expect: Expect
    data: bytes = b""  # the content a `delivered` file must arrive with
    timestamps: tuple[str, ...] = ()  # the sessions a `delivered` session file holds

    @property
    def is_session(self) -> bool:
        return self.name.endswith(".session.json")


def write(data: bytes) -> Maker:
    def make(path: Path) -> None:
        path.write_bytes(data)

    return make


def fifo(path: Path) -> None:
    os.mkfifo(path)


def unix_socket(path: Path) -> None:
    # sun_path holds ~108 bytes: bind by a name relative to the folder.
    here = os.getcwd()
    os.chdir(path.parent)
    try:
        with closing(socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)) as sock:
            sock.bind(path.name)
    finally:
        os.chdir(here)


def symlink(target: str) -> Maker:
    return lambda path: path.symlink_to(target)


def chain_loop(path: Path) -> None:
    """name -> name.b -> name: a loop of two links."""
    other = path.with_name(path.name + ".b")
    path.symlink_to(other.name)
    other.symlink_to(path.name)


def sparse(size: int) -> Maker:
    def make(path: Path) -> None:
        with path.open("wb") as handle:
            handle.truncate(size)

    return make


def mkdir(path: Path) -> None:
    path.mkdir()


class _Stamps:
    """Distinct session timestamps within one day of November 2026."""

    def __init__(self, day: int) -> None:
        self._day = day
        self._n = 0

    def __call__(self) -> str:
        self._n += 1
        return f"2026-11-{self._day:02d}T12:{self._n // 60:02d}:{self._n % 60:02d}Z"


def _failed(tag: str, outside: Path, ts: _Stamps) -> list[Hostile]:
    def session(**fields: object) -> bytes:
        return json.dumps({"timestamp": ts(), **fields}).encode()

    def raw(body: bytes) -> bytes:
        return b'{"timestamp": "' + ts().encode() + b'", "v": ' + body + b"}"

    csv: list[tuple[str, str, Maker]] = [
        ("fifo", f"fifo-{tag}.csv", fifo),
        ("socket", f"socket-{tag}.csv", unix_socket),
        ("symlink self-loop", f"loop-{tag}.csv", symlink(f"loop-{tag}.csv")),
        ("symlink chain loop", f"chain-{tag}.csv", chain_loop),
        ("symlink escaping to a file", f"escape-{tag}.csv", symlink(str(outside / "secret.csv"))),
        ("symlink escaping to a folder", f"dirlink-{tag}.csv", symlink(str(outside))),
        ("dangling symlink", f"dangling-{tag}.csv", symlink("/nonexistent/x.csv")),
        ("symlink session", f"link-{tag}.session.json", symlink(str(outside / "s.json"))),
        # Over S3's 5 TiB for one object (a 6 GiB file is a good one: it goes up in parts).
        ("sparse CSV over 5 TiB", f"sparse-5tib-{tag}.csv", sparse(5 * 1024**4 + 1)),
        ("sparse 64 MiB session", f"sparse-{tag}.session.json", sparse(64 * 1024**2)),
    ]
    sessions: list[tuple[str, bytes]] = [
        ("empty session", b""),
        ("whitespace only", b" \n\t "),
        ("truncated JSON", session(steps=1)[:-7]),
        ("trailing garbage", session(steps=1) + b" and more"),
        ("scalar number", b"42"),
        ("scalar string", b'"a session"'),
        ("scalar null", b"null"),
        ("scalar true", b"true"),
        ("empty list", b"[]"),
        ("list of scalars", b"[1, 2, 3]"),
        ("Latin-1 bytes", session(city="Gen\xe8ve").replace(b"\\u00e8", b"\xe8")),
        ("UTF-16", json.dumps({"timestamp": ts()}).encode("utf-16")),
        ("binary with NULs", b"\x00\x01\x02PK\x03\x04" + bytes(range(256))),
        ("empty object", b"{}"),
        ("missing timestamp", b'{"steps": 1}'),
        ("unparsable timestamp", b'{"timestamp": "yesterday"}'),
        ("numeric timestamp", b'{"timestamp": 1764072000}'),
        ("NaN", raw(b"NaN")),
        ("Infinity", raw(b"Infinity")),
        ("-Infinity", raw(b"-Infinity")),
        ("1e9999999999999999999", raw(b"1e9999999999999999999")),
        ("1e-9999999999999999999", raw(b"1e-9999999999999999999")),
        ("10^5000 integer", raw(b"1" + b"0" * 5000)),
        ("-10^5000 integer", raw(b"-1" + b"0" * 5000)),
        ("100,000-deep list", b"[" * 100_000 + b"]" * 100_000),
        ("100,000-deep object", raw(b'{"a": ' * 100_000 + b"1" + b"}" * 100_000)),
        ("lone surrogate", raw(b'"\\ud800"')),
        ("user_id not a string", session(user_id=7)),
        ("another user's user_id", session(user_id="mallory")),
        ("session over 400 KB", session(blob="x" * 500_000)),
        ("one bad session in a list", b"[" + session(tag=tag) + b', {"timestamp": 5}]'),
        ("BOM before invalid JSON", b"\xef\xbb\xbf{not json"),
    ]
    out = [Hostile(kind, name, make, "failed") for kind, name, make in csv]
    for n, (kind, data) in enumerate(sessions):
        out.append(Hostile(kind, f"bad{n:02d}-{tag}.session.json", write(data), "failed"))
    return out


def _ignored(tag: str) -> list[Hostile]:
    return [
        Hostile("directory named x.csv", f"dir-{tag}.csv", mkdir, "ignored"),
        Hostile("owner-lock ~$ file", f"~$report-{tag}.csv", write(b"lock"), "ignored"),
        Hostile("hidden file", f".hidden-{tag}.csv", write(b"hidden"), "ignored"),
        Hostile("partial download", f"partial-{tag}.csv.part", write(b"part"), "ignored"),
        Hostile("temp file", f"temp-{tag}.csv.tmp", write(b"tmp"), "ignored"),
        Hostile("other extension", f"notes-{tag}.txt", write(b"notes"), "ignored"),
    ]


def _delivered(tag: str, ts: _Stamps) -> list[Hostile]:
    def csv(kind: str, name: str, data: bytes) -> Hostile:
        return Hostile(kind, name, write(data), "delivered", data)

    def session(kind: str, name: str, prefix: bytes = b"") -> Hostile:
        stamp = ts()
        data = prefix + json.dumps({"timestamp": stamp, "tag": tag, "kind": kind}).encode()
        return Hostile(kind, name, write(data), "delivered", data, (stamp,))

    latin1 = os.fsdecode(f"latin1-caf\xe9-{tag}.csv".encode("latin-1"))
    bad_utf8 = os.fsdecode(f"s\xff\xfe-{tag}.session.json".encode("latin-1"))
    long_name = f"{tag}-" + "n" * (250 - len(tag)) + ".csv"  # 255 bytes, the most ext4 allows
    return [
        csv("empty CSV", f"empty-{tag}.csv", b""),
        csv("name not UTF-8", latin1, f"not,utf8 name {tag}\n".encode()),
        csv("NFD name", f"nfd-Cafe\u0301-{tag}.csv", f"nfd,{tag}\n".encode()),
        csv("newline in name", f"new\nline-{tag}.csv", f"newline,{tag}\n".encode()),
        csv("255-byte name", long_name, f"long name,{tag}\n".encode()),
        csv("CSV with a BOM", f"bom-{tag}.csv", f"\ufeffid,v\n1,{tag}\n".encode()),
        session("session with a BOM", f"bom-{tag}.session.json", b"\xef\xbb\xbf"),
        session("session name not UTF-8", bad_utf8),
    ]


def hostile(tag: str, outside: Path, day: int) -> list[Hostile]:
    """One input of every kind; `outside` is a folder the symlinks may point into."""
    outside.mkdir(parents=True, exist_ok=True)
    (outside / "secret.csv").write_bytes(b"never,read\n")
    (outside / "s.json").write_bytes(b'{"timestamp": "2026-01-01T00:00:00Z", "leak": true}')
    stamps = _Stamps(day)
    return [*_failed(tag, outside, stamps), *_ignored(tag), *_delivered(tag, stamps)]
