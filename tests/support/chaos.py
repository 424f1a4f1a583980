"""A seeded stream of operations on an export folder, and a model of every version it wrote.

`Chaos.step()` does one random operation (create, rewrite, append, rename, delete, symlink, a slow
chunked write, a re-export of a deleted file) with ordinary file calls, so the daemon under test
sees what an exporting app and a user would do. The model remembers:

* what the folder holds now (`present`), so a test can check that each file arrived as it ends;
* every *complete* version of every CSV (the bytes after each close()), so an object in S3 that
  matches none of them is a torn upload;
* every value each session ever had, so DynamoDB can hold nothing that was never written;
* how long each name held a file (`lifetimes`), so a file that lived long enough while a daemon
  was running must have left a trace in the spool even after it was deleted or renamed away.

Times are `time.monotonic()` seconds. The trace (`trace`) is one line per operation, enough to
replay a failing seed by hand.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import random
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Literal

__all__ = ["Chaos", "Entry", "Lifetime", "MidSend", "Session", "sending_count", "sha256"]

Kind = Literal["csv", "session", "symlink"]
SessionStyle = Literal["valid", "nan", "broken"]
MidSend = Literal["delete", "truncate", "rewrite"]

_EPOCH = "2026-11-25T{h:02d}:{m:02d}:{s:02d}Z"


def sending_count(state_dir: Path) -> int:
    """Items in `sending` right now, read through a read-only connection (never takes a lock
    the daemon could wait on)."""
    uri = f"file:{state_dir / 'spool.sqlite3'}?mode=ro"
    try:
        with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=1.0)) as db:
            (count,) = db.execute("SELECT COUNT(*) FROM items WHERE state = 'sending'").fetchone()
    except sqlite3.Error:
        return 0  # not created yet, or busy for a moment
    return int(count)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Session:
    """One session as written; `fields` are what DynamoDB must hold besides the keys."""

    timestamp: str
    score: str  # written digit for digit, expected back as Decimal(score)
    steps: int
    label: str
    explicit_user: bool

    def expected(self) -> dict[str, object]:
        return {"score": Decimal(self.score), "steps": Decimal(self.steps), "label": self.label}


@dataclass
class Entry:
    """What one name in the folder holds now."""

    kind: Kind
    data: bytes
    timestamps: tuple[str, ...] = ()  # session files: the keys they carry, kept across rewrites
    style: SessionStyle = "valid"
    sessions: tuple[Session, ...] = ()  # the valid content's sessions

    @property
    def sha256(self) -> str:
        return sha256(self.data)


@dataclass
class Lifetime:
    """One continuous stretch during which `name` held a file (end None: still there)."""

    name: str
    kind: Kind
    start: float
    end: float | None = None


@dataclass
class Chaos:
    export: Path
    outside: Path
    rng: random.Random
    user_id: str
    inline_max: int
    clock: Callable[[], float] = time.monotonic
    present: dict[str, Entry] = field(default_factory=dict)
    csv_versions: set[bytes] = field(default_factory=set)
    session_values: dict[str, list[Session]] = field(default_factory=dict)
    lifetimes: list[Lifetime] = field(default_factory=list)
    held: dict[str, set[str]] = field(default_factory=dict)  # CSV sha256 -> names that held it
    trace: list[str] = field(default_factory=list)
    _gone: dict[str, bytes] = field(default_factory=dict)  # CSVs deleted or renamed away
    _counter: int = 0
    _clock_start: float = 0.0

    def __post_init__(self) -> None:
        self._clock_start = self.clock()
        self.outside.mkdir(parents=True, exist_ok=True)

    # -- the operations ----------------------------------------------------------------------

    def step(self) -> None:
        """One random operation, weighted towards what exporting apps do most."""
        ops: list[tuple[float, Callable[[], None]]] = [
            (24, self.create_csv),
            (12, self.create_session),
            (11, self.rewrite_in_place),
            (8, self.rewrite_via_rename),
            (10, self.append),
            (8, self.delete),
            (8, self.rename),
            (4, self.symlink),
            (4, self.slow_write),
            (3, self.reexport),
            (3, self.resave),
        ]
        weights = [w for w, _ in ops]
        (op,) = self.rng.choices([f for _, f in ops], weights=weights)
        op()

    def create_csv(self) -> None:
        name = self._new_name(".csv")
        self._put(name, Entry("csv", self._csv_bytes(self._csv_size())), how="create")

    def create_session(self) -> None:
        name = self._new_name(".session.json")
        timestamps = tuple(self._timestamp() for _ in range(self.rng.choice((1, 1, 2, 3))))
        entry = self._session_entry(timestamps, self._session_style())
        self._put(name, entry, how="create")

    def rewrite_in_place(self) -> None:
        name = self._pick_regular()
        if name is None:
            return self.create_csv()
        self._put(name, self._new_entry(name), how="rewrite")

    def rewrite_via_rename(self) -> None:
        """What most apps do: write a hidden temporary file, then rename it over the old one."""
        name = self._pick_regular()
        if name is None:
            return self.create_csv()
        entry = self._new_entry(name)
        temp = self.export / f".{name}.tmp{self._next()}"
        with temp.open("wb") as handle:
            handle.write(entry.data)
        self._note_version(entry)
        os.replace(temp, self.export / name)
        self._replace(name, entry, how="rewrite-rename")

    def append(self) -> None:
        """Append rows in one open/close (each close leaves a version that may be delivered)."""
        names = [n for n, e in self.present.items() if e.kind == "csv"]
        if not names:
            return self.create_csv()
        name = self.rng.choice(sorted(names))
        extra = self._rows(self.rng.randint(5, 1200))
        data = self.present[name].data + extra
        with (self.export / name).open("ab") as handle:
            handle.write(extra)
        self._note_version(Entry("csv", data))
        self.present[name] = Entry("csv", data)
        self._hold(name, self.present[name])
        self._log("append", name, data)

    def slow_write(self) -> None:
        """A new CSV written in flushed chunks under one handle: only the closed file counts."""
        name = self._new_name(".csv")
        data = self._csv_bytes(self.rng.randint(self.inline_max // 2, self.inline_max * 3))
        third = max(1, len(data) // 3)
        start = self.clock()
        with (self.export / name).open("wb") as handle:
            for offset in range(0, len(data), third):
                handle.write(data[offset : offset + third])
                handle.flush()
                time.sleep(0.02)  # the scenario itself: an exporter writing in chunks
        self._note_version(Entry("csv", data))
        self._added(name, Entry("csv", data), start)
        self._log("slow-write", name, data)

    def delete(self) -> None:
        if not self.present:
            return self.create_csv()
        name = self.rng.choice(sorted(self.present))
        os.unlink(self.export / name)
        self._removed(name)
        self._log("delete", name, b"")

    def rename(self) -> None:
        name = self._pick_regular()
        if name is None:
            return self.create_csv()
        entry = self.present[name]
        suffix = ".session.json" if entry.kind == "session" else ".csv"
        new = self._new_name(suffix)
        os.rename(self.export / name, self.export / new)
        self._removed(name)
        self._added(new, entry, self.clock())
        self._log(f"rename {name!r} ->", new, entry.data)

    def symlink(self) -> None:
        suffix = self.rng.choice((".csv", ".session.json"))
        target = self.outside / f"secret-{self._next()}{suffix}"
        target.write_bytes(b"never,sent\n")
        name = self._new_name(suffix, prefix="link")
        (self.export / name).symlink_to(target)
        self._added(name, Entry("symlink", b""), self.clock())
        self._log("symlink", name, b"")

    def change_mid_send(self, how: MidSend, sending: Callable[[], object]) -> None:
        """A large CSV deleted, truncated or rewritten while it is being sent: `sending()`
        returns once a send has begun (or its caller gave up waiting)."""
        name = self._new_name(".csv")
        self._put(name, Entry("csv", self._csv_bytes(self.inline_max * 6)), how="create")
        sending()
        path = self.export / name
        if how == "delete":
            os.unlink(path)
            self._removed(name)
            self._log("delete mid-send", name, b"")
        elif how == "truncate":
            data = self.present[name].data[: self.inline_max * 2]
            with path.open("r+b") as handle:
                handle.truncate(len(data))
            self._note_version(Entry("csv", data))
            self._replace(name, Entry("csv", data), how="truncate mid-send")
        else:
            self._put(
                name, Entry("csv", self._csv_bytes(self.inline_max * 5)), how="rewrite mid-send"
            )

    def reexport(self) -> None:
        """A CSV deleted earlier comes back under its old name with its old bytes."""
        candidates = sorted(n for n in self._gone if n not in self.present)
        if not candidates:
            return self.create_csv()
        name = self.rng.choice(candidates)
        self._put(name, Entry("csv", self._gone[name]), how="re-export")

    def resave(self) -> None:
        """The same bytes saved again (a new mtime): must not be sent twice, nor lost."""
        name = self._pick_regular()
        if name is None:
            return self.create_csv()
        self._put(name, self.present[name], how="resave")

    # -- model bookkeeping -------------------------------------------------------------------

    def _put(self, name: str, entry: Entry, *, how: str) -> None:
        """Write `entry` at `name` in one open/write/close (truncating an existing file)."""
        with (self.export / name).open("wb") as handle:
            handle.write(entry.data)
        self._note_version(entry)
        self._replace(name, entry, how=how)

    def _replace(self, name: str, entry: Entry, *, how: str) -> None:
        if name in self.present:
            self.present[name] = entry
            self._hold(name, entry)
        else:
            self._added(name, entry, self.clock())
        self._log(how, name, entry.data)

    def _added(self, name: str, entry: Entry, start: float) -> None:
        self.present[name] = entry
        self._hold(name, entry)
        self.lifetimes.append(Lifetime(name, entry.kind, start))

    def _hold(self, name: str, entry: Entry) -> None:
        if entry.kind == "csv":
            self.held.setdefault(entry.sha256, set()).add(name)

    def _removed(self, name: str) -> None:
        entry = self.present.pop(name)
        if entry.kind == "csv":
            self._gone[name] = entry.data
        now = self.clock()
        for life in self.lifetimes:
            if life.name == name and life.end is None:
                life.end = now

    def _note_version(self, entry: Entry) -> None:
        if entry.kind == "csv":
            self.csv_versions.add(entry.data)
        for session in entry.sessions:
            self.session_values.setdefault(session.timestamp, []).append(session)

    def _new_entry(self, name: str) -> Entry:
        """New content for an existing regular file, of the same kind; sometimes the same bytes."""
        entry = self.present[name]
        if self.rng.random() < 0.1:
            return entry
        if entry.kind == "csv":
            return Entry("csv", self._csv_bytes(self._csv_size()))
        return self._session_entry(entry.timestamps, self._session_style())

    def _session_entry(self, timestamps: tuple[str, ...], style: SessionStyle) -> Entry:
        if style == "broken":
            data = b'{"timestamp": "' + timestamps[0].encode() + b'", "score": 1.'
            return Entry("session", data, timestamps, style)
        if style == "nan":
            data = f'{{"timestamp": "{timestamps[0]}", "score": NaN, "steps": 1}}'.encode()
            return Entry("session", data, timestamps, style)
        sessions = tuple(
            Session(
                timestamp=ts,
                score=f"{self.rng.randint(0, 99999)}.{self.rng.randint(0, 999):03d}",
                steps=self.rng.randint(0, 10_000),
                label=self.rng.choice(("walk", "run", "Prüfung", "swim \u2013 pool", "")),
                explicit_user=self.rng.random() < 0.3,
            )
            for ts in timestamps
        )
        bodies = [self._session_json(s) for s in sessions]
        text = bodies[0] if len(bodies) == 1 else "[" + ", ".join(bodies) + "]"
        return Entry("session", text.encode(), timestamps, style, sessions)

    def _session_json(self, s: Session) -> str:
        user = f'"user_id": "{self.user_id}", ' if s.explicit_user else ""
        label = s.label.replace('"', "")
        return (
            f'{{{user}"timestamp": "{s.timestamp}", "score": {s.score}, '
            f'"steps": {s.steps}, "label": "{label}"}}'
        )

    # -- random material ---------------------------------------------------------------------

    def _next(self) -> int:
        self._counter += 1
        return self._counter

    def _new_name(self, suffix: str, prefix: str = "") -> str:
        n = self._next()
        if prefix:
            return f"{prefix}{n:03d}{suffix}"
        style = self.rng.random()
        if style < 0.15:
            return f"Export {n} \u2013 März{suffix}"
        if style < 0.25:
            return f"REPORT_{n:03d}{suffix.upper() if suffix == '.csv' else suffix}"
        return f"f{n:03d}{suffix}"

    def _timestamp(self) -> str:
        n = self._next()
        return _EPOCH.format(h=n // 3600 % 24, m=n // 60 % 60, s=n % 60)

    def _session_style(self) -> SessionStyle:
        roll = self.rng.random()
        return "valid" if roll < 0.7 else "nan" if roll < 0.85 else "broken"

    def _csv_size(self) -> int:
        roll = self.rng.random()
        if roll < 0.08:
            return 0
        if roll < 0.7:
            return self.rng.randint(10, self.inline_max)
        return self.rng.randint(self.inline_max + 1, self.inline_max * 12)

    def _csv_bytes(self, size: int) -> bytes:
        if size == 0:
            return b""
        head = f"id,value,nonce={self._next()}\n".encode()
        return (head + self._rows(size))[:size]

    def _rows(self, size: int) -> bytes:
        out = bytearray()
        while len(out) < size:
            out += f"{self.rng.randint(0, 10**6)},{self.rng.random():.6f}\n".encode()
        return bytes(out[:size])

    def _pick_regular(self) -> str | None:
        names = sorted(n for n, e in self.present.items() if e.kind != "symlink")
        return self.rng.choice(names) if names else None

    def mark(self, what: str) -> None:
        """A line in the trace for something that is not a file operation (a kill, a restart)."""
        self.trace.append(f"{self.clock() - self._clock_start:7.2f} ---- {what}")

    def _log(self, how: str, name: str, data: bytes) -> None:
        t = self.clock() - self._clock_start
        self.trace.append(f"{t:7.2f} {how} {name!r} size={len(data)} sha={sha256(data)[:12]}")
