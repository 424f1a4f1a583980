"""The local side at scale: close to spooled, a burst, READY over a big folder, a big spool, idle.

Every figure is set against a baseline of the same run:

* ``latency``  each file is written and closed, one at a time, in a folder watched at once by the
  daemon's own `Watcher` + `Intake` + `Spool` (as `Daemon` wires them, spool on the scratch disk)
  and by a bare inotify reader (ctypes, IN_CLOSE_WRITE, in this process). Per file: close ->
  spooled (intake's on_spooled, after the commit) against close -> seen by the bare reader.
* ``burst``    N files written as fast as Python can; last close -> the Nth row committed, and
  first close -> last committed against first close -> last close (the writer's own time).
* ``ready``    `exportsync run` as a subprocess over F files it has all delivered, to READY=1 on
  its NOTIFY_SOCKET, minus the same over an empty folder (process start), against a bare
  scandir+stat walk of the folder in this process.
* ``spool``    `exportsync status --json` over a spool of R delivered rows against the same over
  an empty spool; the spool's size on disk before and after pruning them all, and the longest
  single piece of that pass (a chunk of rows in one transaction, or a slice of freed pages given
  back): what a delivery step can wait for while the daemon prunes.
* ``idle``     CPU ticks (utime + stime, all threads) of an idle `exportsync run` over S seconds,
  and its RSS against a bare `python -c` sleeping beside it.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import os
import select
import socket
import sqlite3
import statistics
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench_common import REPO, filesystem_of, ratio, rss_bytes
from exportsync.clock import SystemClock
from exportsync.config import WatchConfig
from exportsync.intake import Intake
from exportsync.matcher import FileMatcher
from exportsync.spool import NewVersion, Spool
from exportsync.watcher import Watcher

__all__ = ["run_local"]

_IN_CLOSE_WRITE = 0x00000008
_EVENT = struct.Struct("iIII")
_DEADLINE = 120.0


class InotifyBaseline:
    """The least any watcher can do: read IN_CLOSE_WRITE events and note when each name came."""

    def __init__(self, folder: Path) -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        self._fd = libc.inotify_init1(os.O_CLOEXEC | os.O_NONBLOCK)
        if self._fd < 0 or libc.inotify_add_watch(self._fd, bytes(folder), _IN_CLOSE_WRITE) < 0:
            raise OSError(ctypes.get_errno(), "inotify")
        self.seen: dict[str, float] = {}
        self._cond = threading.Condition()
        self._stop_r, self._stop_w = os.pipe()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        poller = select.poll()
        poller.register(self._fd, select.POLLIN)
        poller.register(self._stop_r, select.POLLIN)
        while True:
            ready = {fd for fd, _ in poller.poll()}
            if self._stop_r in ready:
                return
            data = os.read(self._fd, 1 << 20)
            now = time.perf_counter()
            offset, names = 0, []
            while offset < len(data):
                _, _, _, length = _EVENT.unpack_from(data, offset)
                start = offset + _EVENT.size
                names.append(data[start : start + length].rstrip(b"\0").decode())
                offset = start + length
            with self._cond:
                for name in names:
                    self.seen[name] = now
                self._cond.notify_all()

    def wait(self, name: str) -> float:
        with self._cond:
            if not self._cond.wait_for(lambda: name in self.seen, _DEADLINE):
                raise RuntimeError(f"baseline never saw {name}")
            return self.seen[name]

    def close(self) -> None:
        os.write(self._stop_w, b"x")
        self._thread.join()
        for fd in (self._fd, self._stop_r, self._stop_w):
            os.close(fd)


class SpooledClock:
    """Counts committed new rows through intake's on_spooled (called after each commit)."""

    def __init__(self, spool: Spool) -> None:
        self._spool = spool
        self._cond = threading.Condition()
        self.times: list[tuple[float, int]] = []

    def __call__(self) -> None:
        pending = self._spool.counts()["pending"]
        with self._cond:
            self.times.append((time.perf_counter(), pending))
            self._cond.notify_all()

    def wait_count(self, count: int, timeout: float = _DEADLINE) -> float | None:
        """When the spool first held `count` pending rows; None when it never did."""
        with self._cond:
            self._cond.wait_for(lambda: bool(self.times) and self.times[-1][1] >= count, timeout)
            return next((t for t, n in self.times if n >= count), None)


@contextmanager
def _watched(folder: Path, state: Path) -> Iterator[tuple[SpooledClock, Spool]]:
    """Watcher -> Intake.offer_many -> Spool, exactly as `Daemon` wires them."""
    spool = Spool.open(state)
    spooled = SpooledClock(spool)
    intake = Intake(
        spool, root=folder, matcher=FileMatcher(), clock=SystemClock(), on_spooled=spooled
    )
    watcher = Watcher(WatchConfig(folder), FileMatcher(), intake.offer_many, rescan_seconds=None)
    watcher.start()
    try:
        yield spooled, spool
    finally:
        watcher.stop()
        spool.close()


def _percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def _latency(scratch: Path, files: int) -> dict[str, Any]:
    folder = scratch / "latency"
    folder.mkdir()
    baseline = InotifyBaseline(folder)
    subject: list[float] = []
    bare: list[float] = []
    try:
        with _watched(folder, scratch / "latency-state") as (spooled, _):
            for i in range(files):
                name = f"f{i:05d}.csv"
                with (folder / name).open("wb") as handle:
                    handle.write(f"id\n{i}\n".encode())
                closed = time.perf_counter()
                done = spooled.wait_count(i + 1)
                if done is None:
                    raise RuntimeError(f"{name} was never spooled")
                subject.append(done - closed)
                bare.append(baseline.wait(name) - closed)
    finally:
        baseline.close()
    ms = {
        "spooled_p50_ms": statistics.median(subject) * 1000,
        "spooled_p99_ms": _percentile(subject, 99) * 1000,
        "inotify_p50_ms": statistics.median(bare) * 1000,
        "inotify_p99_ms": _percentile(bare, 99) * 1000,
    }
    return {
        "files": files,
        **{k: round(v, 3) for k, v in ms.items()},
        "p50_vs_inotify": ratio(ms["spooled_p50_ms"], ms["inotify_p50_ms"]),
        "p99_vs_inotify": ratio(ms["spooled_p99_ms"], ms["inotify_p99_ms"]),
    }


def _burst(scratch: Path, files: int) -> dict[str, Any]:
    folder = scratch / "burst"
    folder.mkdir()
    with _watched(folder, scratch / "burst-state") as (spooled, spool):
        first = time.perf_counter()
        for i in range(files):
            (folder / f"b{i:05d}.csv").write_bytes(f"id\n{i}\n".encode())
        last = time.perf_counter()
        done = spooled.wait_count(files)
        missed = files - spool.counts()["pending"]
        commits = spool.commits
    if done is None:
        raise RuntimeError(f"burst: only {files - missed} of {files} spooled")
    return {
        "files": files,
        "missed": missed,
        "transactions": commits,
        "last_close_to_spooled_s": round(done - last, 3),
        "writer_s": round(last - first, 3),
        "spooled_vs_writer": ratio(done - first, last - first),
    }


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EXPORTSYNC_")}
    env["PYTHONPATH"] = os.pathsep.join(str(REPO / r) for r in ("daemon", "lambda", "devstack"))
    return env


def _config(base: Path, folder: Path) -> Path:
    state = base / "state"
    path = base / "exportsync.toml"
    path.write_text(
        f"[watch]\ndir = {json.dumps(str(folder))}\n"
        '[api]\nurl = "http://127.0.0.1:9/unused"\napi_key = "bench-key-not-used"\n'
        'user_id = "bench"\n'
        f"[state]\ndir = {json.dumps(str(state))}\n"
        '[log]\nformat = "json"\nlevel = "info"\n'
    )
    path.chmod(0o600)
    return path


@contextmanager
def _daemon(config: Path) -> Iterator[tuple[subprocess.Popen[bytes], float]]:
    """`exportsync run`; yields the process and the seconds it took to say READY=1."""
    sock_path = config.parent / "notify.sock"
    sock_path.unlink(missing_ok=True)
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(sock_path))
        sock.settimeout(_DEADLINE)
        env = {**_env(), "NOTIFY_SOCKET": str(sock_path)}
        started = time.perf_counter()
        process = subprocess.Popen(
            [sys.executable, "-m", "exportsync", "run", "--config", str(config)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            while b"READY=1" not in sock.recv(4096):
                pass
            yield process, time.perf_counter() - started
        finally:
            process.terminate()
            process.wait(30)


def bare_walk(folder: Path) -> int:
    """A bare scandir + lstat of every entry: the baseline for a walk of the folder."""
    count = 0
    with os.scandir(folder) as entries:
        for entry in entries:
            entry.stat(follow_symlinks=False)
            count += 1
    return count


def _delivered_folder(base: Path, files: int) -> Path:
    """`base/export` with `files` small CSVs, all of them delivered in `base/state`'s spool."""
    folder = base / "export"
    folder.mkdir(parents=True)
    versions = []
    for i in range(files):
        data = f"id\n{i}\n".encode()
        path = folder / f"d{i:06d}.csv"
        path.write_bytes(data)
        info = path.stat()
        sha = hashlib.sha256(data).hexdigest()
        versions.append(NewVersion(path, "csv", info.st_size, info.st_mtime_ns, sha, info.st_ino))
    with Spool.open(base / "state") as spool:
        spool.record_many(versions, now=time.time())
    _deliver_all(Spool.path_in(base / "state"), time.time())
    return folder


def _ready(scratch: Path, files: int, rounds: int) -> dict[str, Any]:
    empty_base, full_base = scratch / "ready-empty", scratch / "ready-full"
    empty, full = empty_base / "export", full_base / "export"
    empty.mkdir(parents=True)
    _delivered_folder(full_base, files)
    configs = {"empty": _config(empty_base, empty), "full": _config(full_base, full)}
    times: dict[str, list[float]] = {"empty": [], "full": [], "walk": []}
    for _ in range(rounds):
        for name, config in configs.items():
            with _daemon(config) as (_, seconds):
                times[name].append(seconds)
        started = time.perf_counter()
        bare_walk(full)
        times["walk"].append(time.perf_counter() - started)
    med = {k: statistics.median(v) for k, v in times.items()}
    scan = med["full"] - med["empty"]
    return {
        "files": files,
        "rounds": rounds,
        "ready_empty_s": round(med["empty"], 3),
        "ready_full_s": round(med["full"], 3),
        "walk_s": round(med["walk"], 4),
        "scan_s": round(scan, 3),
        "scan_vs_walk": ratio(scan, med["walk"]),
    }


def _deliver_all(db_path: Path, at: float) -> None:
    """Mark every row delivered in one statement (the API way is a transaction per item)."""
    with sqlite3.connect(db_path) as db:
        db.execute("UPDATE items SET state = 'delivered', delivered_at = ?", (at,))


def _status_seconds(config: Path, rounds: int) -> float:
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "exportsync", "status", "--json", "--config", str(config)],
            env=_env(),
            check=True,
            stdout=subprocess.DEVNULL,
        )
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def _spool_bytes(state: Path) -> int:
    return sum(p.stat().st_size for p in state.glob("spool.sqlite3*"))


def _big_spool(scratch: Path, rows: int, rounds: int) -> dict[str, Any]:
    base = scratch / "spool"
    folder = base / "export"
    folder.mkdir(parents=True)
    config = _config(base, folder)
    state = base / "state"
    with Spool.open(state):
        pass
    empty_s = _status_seconds(config, rounds)
    delivered_at = time.time() - 90 * 86400
    with sqlite3.connect(Spool.path_in(state)) as db:
        db.executemany(
            "INSERT INTO items (path, kind, size, mtime_ns, inode, sha256, state, created_at,"
            " updated_at, delivered_at) VALUES (?, 'csv', ?, ?, ?, ?, 'delivered', ?, ?, ?)",
            (
                (
                    f"{folder}/export-{i:07d}.csv",
                    1000 + i % 977,
                    1_700_000_000_000_000_000 + i,
                    i,
                    hashlib.sha256(i.to_bytes(8, "big")).hexdigest(),
                    delivered_at,
                    delivered_at,
                    delivered_at,
                )
                for i in range(rows)
            ),
        )
    with sqlite3.connect(Spool.path_in(state)) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    full_s = _status_seconds(config, rounds)
    before = _spool_bytes(state)
    # The pass as the daemon's loop runs it: one chunk (or one slice of freed pages) per turn,
    # each timed; the longest is the most a delivery step can wait for it (on a loaded machine
    # the wall time includes the CPU taken by others,
    pieces: list[float] = []
    cpu: list[float] = []  # so the same pieces in this thread's CPU time too)
    dropped = 0
    with Spool.open(state) as spool:
        started = time.perf_counter()
        cutoff = time.time() - 30 * 86400
        cursor: int | None = 0
        while cursor is not None:
            begun, begun_cpu = time.perf_counter(), time.thread_time()
            count, cursor = spool.prune_chunk(cutoff, current=lambda _p: None, after=cursor)
            pieces.append(time.perf_counter() - begun)
            cpu.append(time.thread_time() - begun_cpu)
            dropped += count
        reclaimed = False
        while not reclaimed:
            begun, begun_cpu = time.perf_counter(), time.thread_time()
            reclaimed = spool.reclaim()
            pieces.append(time.perf_counter() - begun)
            cpu.append(time.thread_time() - begun_cpu)
        prune_s = time.perf_counter() - started
    after = _spool_bytes(state)
    return {
        "rows": rows,
        "status_empty_s": round(empty_s, 3),
        "status_full_s": round(full_s, 3),
        "status_full_vs_empty": ratio(full_s, empty_s),
        "pruned": dropped,
        "prune_s": round(prune_s, 2),
        "prune_pieces": len(pieces),
        "prune_longest_piece_ms": round(max(pieces) * 1000, 1),
        "prune_median_piece_ms": round(statistics.median(pieces) * 1000, 1),
        "prune_p99_piece_ms": round(_percentile(pieces, 99) * 1000, 1),
        "prune_pieces_over_50ms": sum(p > 0.05 for p in pieces),
        "prune_longest_piece_cpu_ms": round(max(cpu) * 1000, 1),
        "bytes_before_prune": before,
        "bytes_after_prune": after,
        "size_after_vs_before": ratio(after, before),
    }


def _thread_ticks(pid: int) -> dict[str, int]:
    """utime + stime of each thread, by "tid name"."""
    out: dict[str, int] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            text = (task / "stat").read_text()
        except OSError:
            continue  # ended meanwhile
        name = text[text.index("(") + 1 : text.rindex(")")]
        fields = text.rsplit(")", 1)[1].split()
        out[f"{task.name} {name}"] = int(fields[11]) + int(fields[12])
    return out


def _idle(scratch: Path, seconds: float) -> dict[str, Any]:
    base = scratch / "idle"
    folder = _delivered_folder(base, 100)  # delivered: nothing left to do
    bare = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3600)"])
    try:
        with _daemon(_config(base, folder)) as (process, _):
            threading.Event().wait(2.0)  # let start-up work (the 100 files) finish
            before = _thread_ticks(process.pid)
            threading.Event().wait(seconds)
            after = _thread_ticks(process.pid)
            by_thread = {n: t - before.get(n, 0) for n, t in after.items() if t > before.get(n, 0)}
            ticks = sum(by_thread.values())
            rss, bare_rss = rss_bytes(process.pid), rss_bytes(bare.pid)
    finally:
        bare.kill()
        bare.wait()
    return {
        "seconds": seconds,
        "cpu_ticks": ticks,
        "cpu_ticks_by_thread": by_thread,
        "pid": process.pid,
        "ticks_per_second": os.sysconf("SC_CLK_TCK"),
        "rss_bytes": rss,
        "bare_python_rss_bytes": bare_rss,
        "rss_vs_bare_python": ratio(rss, bare_rss),
    }


def run_local(scratch: Path, *, quick: bool = False) -> dict[str, Any]:
    scratch.mkdir(parents=True, exist_ok=True)
    if not sys.platform.startswith("linux"):
        return {"skipped": "needs Linux (inotify, /proc)"}
    return {
        "scratch_filesystem": filesystem_of(scratch),
        "latency": _latency(scratch, 50 if quick else 300),
        "burst": _burst(scratch, 1000 if quick else 5000),
        "ready": _ready(scratch, 10_000 if quick else 100_000, 1 if quick else 5),
        "spool": _big_spool(scratch, 100_000 if quick else 1_000_000, 1 if quick else 5),
        "idle": _idle(scratch, 10.0 if quick else 60.0),
    }
