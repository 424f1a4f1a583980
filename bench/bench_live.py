"""The local side while delivering: one real `exportsync run` against the devstack.

The devstack runs without a usage plan (``--rate 0 --quota 0``) and the daemon without a daily
limit, so delivery runs while files arrive. The daemon logs JSON at info to a pipe; a reader
thread stamps each line with the monotonic clock the moment it arrives. Beside it, in the same
run, `inotifywait -m -e close_write` (inotify-tools; the ctypes reader of `bench_local` when it is
not installed) stamps the same closes, through a pipe and a reader thread of its own.

* ``latency``   N files written 50 ms apart: close -> the daemon's `item_spooled` line (logged
  after the commit) against close -> inotifywait's line for that file, and against a bare
  one-row SQLite commit (WAL, synchronous=FULL) on the same disk meanwhile: the fsync's floor.
  p50 and p99; for the three slowest files also close -> `item_spooled` by the daemon's own
  timestamp (the rest is the pipe and the reader).
* ``burst``     N files written as fast as Python can: last close -> the last `item_spooled`,
  files never spooled (missed), against inotifywait's last line and a bare scandir+stat walk of
  the folder. Then the same files' delivery: files/s from the first close to the last
  `item_delivered`, and the daemon's share of that wall time: the CPU seconds of all its threads
  (intake, hashing, building requests, recording, logging; /proc utime + stime) over it. Beside
  it, the time after the last close spent outside a request (waiting on the gateway, the handler
  and moto), which includes the usage plan's 1 request/s spacing the daemon must keep between
  two requests. Baseline: the Lambda handler called in this process with one /batch of the same
  kind of files against the same devstack's moto (entries/s).
* ``idle``      the daemon's RSS once everything is delivered, against a bare `python -c`.

`.venv/bin/python bench/run.py --only live` (about two minutes); `--quick` is a smoke run.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import os
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import requests

from bench_common import cpu_seconds, ratio, rss_bytes, setup_paths
from bench_local import InotifyBaseline, bare_walk

setup_paths()

from support.daemon import write_config  # noqa: E402 -- after the source roots are on sys.path
from support.devstack import DevstackInfo, command_env, start_devstack  # noqa: E402 -- same

__all__ = ["run_live"]

_DEADLINE = 180.0
_SPOOLED = b'"item_spooled"'
_DELIVERED = b'"item_delivered"'
_READ_BYTES = 1 << 16


@dataclass(frozen=True)
class Sizes:
    latency_files: int
    latency_gap_s: float
    burst_files: int
    handler_entries: int
    idle_s: float


FULL = Sizes(
    latency_files=200, latency_gap_s=0.05, burst_files=5000, handler_entries=1000, idle_s=3.0
)
QUICK = Sizes(latency_files=20, latency_gap_s=0.02, burst_files=100, handler_entries=20, idle_s=0.5)


class StampedLines:
    """Reads a pipe line by line on its own thread, stamping each line on arrival.

    Nothing is parsed while reading (a JSON parse per line would make the reader the bottleneck
    and the stamps late); lines with a `marker` are only counted, so a waiter can wake up.
    """

    def __init__(self, stream: IO[bytes], markers: tuple[bytes, ...] = ()) -> None:
        self.lines: list[tuple[float, bytes]] = []
        self._stream = stream
        self._markers = markers
        self.counts = dict.fromkeys(markers, 0)
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        # Whatever the pipe holds, in one read: each line of it is stamped with that instant. A
        # line at a time would hand the GIL over per line and fall behind a burst (the daemon
        # would then block on its own stdout).
        fd = self._stream.fileno()
        partial = b""
        while chunk := os.read(fd, _READ_BYTES):
            stamp = time.monotonic()
            *complete, partial = (partial + chunk).split(b"\n")
            with self._cond:
                for line in complete:
                    self.lines.append((stamp, line))
                    for marker in self._markers:
                        if marker in line:
                            self.counts[marker] += 1
                if complete:
                    self._cond.notify_all()

    def wait_count(self, marker: bytes, count: int, timeout: float = _DEADLINE) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: self.counts[marker] >= count, timeout)

    def wait_line(self, needle: bytes, timeout: float = _DEADLINE) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            with self._cond:
                if any(needle in line for _, line in self.lines):
                    return True
            time.sleep(0.02)
        return False

    def events(self) -> list[tuple[float, dict[str, Any]]]:
        """(arrival, parsed JSON) of every line that is a JSON object."""
        with self._cond:
            lines = list(self.lines)
        out = []
        for stamp, raw in lines:
            with contextlib.suppress(ValueError):
                doc = json.loads(raw)
                if isinstance(doc, dict):
                    out.append((stamp, doc))
        return out

    def tail(self) -> str:
        with self._cond:
            return b"".join(line[:300] for _, line in self.lines[-40:]).decode(errors="replace")

    def join(self) -> None:
        self._thread.join(10)


class CloseBaseline:
    """`inotifywait -m -e close_write` on the folder, stamped by a reader thread (first close
    of each name); the in-process ctypes reader where inotify-tools is not installed."""

    def __init__(self, folder: Path) -> None:
        self.tool = "inotifywait" if shutil.which("inotifywait") else "ctypes inotify reader"
        self._bare: InotifyBaseline | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._lines: StampedLines | None = None
        if self.tool == "inotifywait":
            self._process = subprocess.Popen(
                ["inotifywait", "-m", "-e", "close_write", "--format", "%f", str(folder)],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            assert self._process.stderr is not None
            assert self._process.stdout is not None
            # Without -q it says so on stderr once the watch is in place.
            for said in iter(self._process.stderr.readline, b""):
                if b"Watches established" in said:
                    break
            self._lines = StampedLines(self._process.stdout)
        else:
            self._bare = InotifyBaseline(folder)

    def seen(self) -> dict[str, float]:
        if self._bare is not None:
            return dict(self._bare.seen)
        assert self._lines is not None
        first: dict[str, float] = {}
        for stamp, line in list(self._lines.lines):
            first.setdefault(line.decode().strip(), stamp)
        return first

    def close(self) -> None:
        if self._bare is not None:
            self._bare.close()
        if self._process is not None:
            self._process.terminate()
            self._process.wait(10)
            assert self._lines is not None
            self._lines.join()


@dataclass
class LiveDaemon:
    process: subprocess.Popen[bytes]
    log: StampedLines


@contextlib.contextmanager
def _daemon(config: Path) -> Iterator[LiveDaemon]:
    env = command_env()
    for name in ("EXPORTSYNC_API_KEY", "EXPORTSYNC_CONFIG", "JOURNAL_STREAM", "NOTIFY_SOCKET"):
        env.pop(name, None)
    process = subprocess.Popen(
        [sys.executable, "-m", "exportsync", "run", "--config", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
    )
    assert process.stdout is not None
    log = StampedLines(process.stdout, (_SPOOLED, _DELIVERED))
    try:
        if not log.wait_line(b'"daemon_ready"', 60.0):
            raise RuntimeError(f"daemon not ready:\n{log.tail()}")
        yield LiveDaemon(process, log)
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)
        log.join()


def _percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def _by_name(events: list[tuple[float, dict[str, Any]]], event: str) -> dict[str, float]:
    """First arrival of `event` per file name."""
    out: dict[str, float] = {}
    for stamp, doc in events:
        if doc.get("event") == event and "path" in doc:
            out.setdefault(Path(str(doc["path"])).name, stamp)
    return out


def _write(path: Path, n: int) -> float:
    """Write and close a small CSV; the monotonic instant after the close."""
    with path.open("wb") as handle:
        handle.write(f"id,value\n{n},{n * 7}\n".encode())
    return time.monotonic()


# The burst's writer: its own process, as the exporting program is, so that the bench's reader
# threads (the daemon's log, the inotify baseline) do not slow it down through this process's
# GIL. It writes what `_write` writes and prints the monotonic instants (system-wide) of its
# first open and last close.
_WRITER = """
import sys, time
folder, names = sys.argv[1], sys.argv[2:]
first = time.monotonic()
for i, name in enumerate(names):
    with open(folder + "/" + name, "wb") as handle:
        handle.write(f"id,value\\n{i},{i * 7}\\n".encode())
print(first, time.monotonic())
"""


def _write_elsewhere(folder: Path, names: list[str]) -> tuple[float, float]:
    """Write the burst from a process of its own; (first open, last close), monotonic."""
    done = subprocess.run(
        [sys.executable, "-c", _WRITER, str(folder), *names],
        check=True,
        capture_output=True,
        text=True,
    )
    first, last = (float(x) for x in done.stdout.split())
    return first, last


def _logged_at(events: list[tuple[float, dict[str, Any]]], event: str) -> dict[str, float]:
    """The daemon's own timestamp (wall clock) of the first `event` per file name."""
    out: dict[str, float] = {}
    for _, doc in events:
        if doc.get("event") == event and "path" in doc and "timestamp" in doc:
            stamp = dt.datetime.fromisoformat(str(doc["timestamp"]).replace("Z", "+00:00"))
            out.setdefault(Path(str(doc["path"])).name, stamp.timestamp())
    return out


class CommitFloor:
    """A bare one-row SQLite commit (WAL, synchronous=FULL, as the spool commits) on the same
    disk, every `gap` seconds on a thread of its own while the latency files are written: what
    the disk's fsync alone costs at that moment, the floor under close -> spooled."""

    def __init__(self, folder: Path, gap: float) -> None:
        self.seconds: list[float] = []
        self._db = sqlite3.connect(folder / "floor.sqlite3", check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("CREATE TABLE t (n INTEGER)")
        self._gap = gap
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        n = 0
        while not self._stop.wait(self._gap):
            started = time.perf_counter()
            with self._db:
                self._db.execute("INSERT INTO t VALUES (?)", (n,))
            self.seconds.append(time.perf_counter() - started)
            n += 1

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self._db.close()


def _latency(
    daemon: LiveDaemon, folder: Path, baseline: CloseBaseline, sizes: Sizes, floor_dir: Path
) -> dict[str, Any]:
    closes: dict[str, float] = {}
    walls: dict[str, float] = {}
    before = daemon.log.counts[_SPOOLED]
    floor = CommitFloor(floor_dir, sizes.latency_gap_s)
    try:
        for i in range(sizes.latency_files):
            name = f"lat{i:05d}.csv"
            closes[name] = _write(folder / name, i)
            walls[name] = time.time()
            time.sleep(sizes.latency_gap_s)
    finally:
        floor.close()
    if not daemon.log.wait_count(_SPOOLED, before + sizes.latency_files):
        raise RuntimeError(f"latency: not every file was spooled:\n{daemon.log.tail()}")
    events = daemon.log.events()
    spooled = _by_name(events, "item_spooled")
    seen = baseline.seen()
    subject = [spooled[n] - t for n, t in closes.items()]
    bare = [seen[n] - t for n, t in closes.items() if n in seen]
    # The slowest files, by the daemon's own clock too: close -> the `item_spooled` line's
    # timestamp, beside close -> its arrival here (a gap between them is the pipe and this
    # reader, not the daemon).
    spooled_at = _logged_at(events, "item_spooled")
    slowest = sorted(closes, key=lambda n: spooled[n] - closes[n])[-3:]
    split = {
        n: [
            round((spooled_at[n] - walls[n]) * 1000, 2),
            round((spooled[n] - closes[n]) * 1000, 2),
        ]
        for n in slowest
        if n in spooled_at
    }
    ms = {
        "spooled_p50_ms": statistics.median(subject) * 1000,
        "spooled_p99_ms": _percentile(subject, 99) * 1000,
        "baseline_p50_ms": statistics.median(bare) * 1000,
        "baseline_p99_ms": _percentile(bare, 99) * 1000,
        "commit_p50_ms": statistics.median(floor.seconds) * 1000,
        "commit_p99_ms": _percentile(floor.seconds, 99) * 1000,
    }
    return {
        "files": sizes.latency_files,
        "gap_ms": sizes.latency_gap_s * 1000,
        **{k: round(v, 3) for k, v in ms.items()},
        "baseline_missed": len(closes) - len(bare),
        # The three slowest: [close -> item_spooled by the daemon's clock, -> its arrival] in ms.
        "slowest_split_ms": split,
    }


def _request_windows(events: list[tuple[float, dict[str, Any]]]) -> list[tuple[float, float, int]]:
    """(request_sending, request_sent, entries) per request, paired in order."""
    sending = [
        (t, int(d.get("entries", 0))) for t, d in events if d.get("event") == "request_sending"
    ]
    sent = [t for t, d in events if d.get("event") == "request_sent"]
    return [(a, b, n) for (a, n), b in zip(sending, sent, strict=False)]


def _burst(
    daemon: LiveDaemon, folder: Path, baseline: CloseBaseline, sizes: Sizes
) -> dict[str, Any]:
    n = sizes.burst_files
    spooled_before = daemon.log.counts[_SPOOLED]
    delivered_before = daemon.log.counts[_DELIVERED]
    cpu_before = cpu_seconds(daemon.process.pid)
    names = [f"burst{i:05d}.csv" for i in range(n)]
    first, last = _write_elsewhere(folder, names)
    daemon.log.wait_count(_SPOOLED, spooled_before + n)
    walk_started = time.perf_counter()
    walked = bare_walk(folder)
    walk_s = time.perf_counter() - walk_started
    recorded = daemon.log.counts[_SPOOLED] - spooled_before  # a missed file is never delivered
    if not daemon.log.wait_count(_DELIVERED, delivered_before + recorded):
        raise RuntimeError(f"burst: not every spooled file was delivered:\n{daemon.log.tail()}")
    cpu = cpu_seconds(daemon.process.pid) - cpu_before
    events = daemon.log.events()
    spooled = _by_name(events, "item_spooled")
    delivered = _by_name(events, "item_delivered")
    seen = baseline.seen()
    got = [spooled[x] for x in names if x in spooled]
    last_spooled = max(got) if got else float("nan")
    last_seen = max((seen[x] for x in names if x in seen), default=float("nan"))
    last_delivered = max(delivered[x] for x in names if x in delivered)
    # After the last close all that is left is delivery: the daemon's own work, or a request.
    windows = [w for w in _request_windows(events) if w[1] > last]
    window = last_delivered - last
    in_requests = sum(min(b, last_delivered) - max(a, last) for a, b, _ in windows)
    return {
        "files": n,
        "writer_s": round(last - first, 3),
        "missed": n - len(got),
        "last_close_to_spooled_s": round(last_spooled - last, 3),
        "baseline_last_close_to_seen_s": round(last_seen - last, 4),
        "walk_files": walked,
        "walk_s": round(walk_s, 4),
        "last_close_to_delivered_s": round(last_delivered - last, 3),
        "delivered_files_per_s": round(n / (last_delivered - first), 1),
        "requests": len(windows),
        "delivery_window_s": round(window, 3),
        "in_requests_s": round(in_requests, 3),
        "outside_requests_s": round(window - in_requests, 3),
        # The plan's 1 request/s: the least time between two requests, not the daemon's work.
        "rate_spacing_floor_s": float(max(0, len(windows) - 1)),
        "daemon_cpu_s": round(cpu, 2),
        "daemon_share_of_delivery": ratio(cpu, last_delivered - first),
        # Seconds after the last close: each request's start, its time in flight, its entries.
        "request_timeline": [
            [round(a - last, 3), round(b - a, 3), entries] for a, b, entries in windows
        ],
    }


def _catch_up(daemon: LiveDaemon, folder: Path, sizes: Sizes) -> dict[str, Any]:
    """A writer as far ahead of the intake as it can be: the daemon is stopped (SIGSTOP) while
    the burst is written and let go after the last close; from then to the last `item_spooled`
    is the intake's own pace, its events queued in the kernel meanwhile (3 a file, under
    inotify's default queue of 16,384). Measured after the idle RSS, so that figure stays the
    one of the first burst."""
    n = sizes.burst_files
    spooled_before = daemon.log.counts[_SPOOLED]
    delivered_before = daemon.log.counts[_DELIVERED]
    names = [f"caught{i:05d}.csv" for i in range(n)]
    cpu_before = cpu_seconds(daemon.process.pid)
    daemon.process.send_signal(signal.SIGSTOP)
    try:
        first, last = _write_elsewhere(folder, names)
    finally:
        daemon.process.send_signal(signal.SIGCONT)
    resumed = time.monotonic()
    daemon.log.wait_count(_SPOOLED, spooled_before + n)
    spooled = _by_name(daemon.log.events(), "item_spooled")
    got = [spooled[x] for x in names if x in spooled]
    if not daemon.log.wait_count(_DELIVERED, delivered_before + len(got)):
        raise RuntimeError(f"catch-up: not every spooled file was delivered:\n{daemon.log.tail()}")
    return {
        "files": n,
        "writer_s": round(last - first, 3),
        "missed": n - len(got),
        "resumed_to_spooled_s": round(max(got) - resumed, 3) if got else float("nan"),
        "daemon_cpu_s": round(cpu_seconds(daemon.process.pid) - cpu_before, 2),
    }


def _batch_event(info: DevstackInfo, identity: Any, entries: int, tag: str) -> dict[str, Any]:
    from exportsync_devstack.events import IncomingRequest, build_rest_event  # noqa: PLC0415

    files = [
        (f"handler-{tag}-{i:05d}.csv", f"id,value\n{i},{i * 7}\n{tag}\n".encode())
        for i in range(entries)
    ]
    manifest = [
        {"filename": name, "sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
        for name, data in files
    ]
    parts: list[tuple[str, tuple[str | None, bytes, str]]] = [
        ("manifest", (None, json.dumps(manifest).encode(), "application/json"))
    ]
    parts += [("file", (name, data, "text/csv")) for name, data in files]
    prepared = requests.Request("POST", f"{info.api_url}/batch", files=parts).prepare()
    assert isinstance(prepared.body, bytes)
    request = IncomingRequest(
        "POST",
        "/batch",
        headers=(("Content-Type", str(prepared.headers["Content-Type"])),),
        body=prepared.body,
    )
    return build_rest_event(
        request, identity, stage="bench", request_id=str(uuid.uuid4()), epoch=time.time()
    )


def _handler_rate(info: DevstackInfo, entries: int) -> dict[str, Any]:
    """The Lambda handler in this process, one /batch of `entries` small CSVs against the
    devstack's moto: what the function itself delivers per second (warm, second call timed)."""
    # The function's logger keeps the stdout it finds at import: send it where Lambda's goes.
    with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
        from exportsync_api.app import Dependencies, handle  # noqa: PLC0415
        from exportsync_api.registry import (  # noqa: PLC0415
            CachedUserDirectory,
            DynamoUserDirectory,
        )
        from exportsync_api.settings import Settings  # noqa: PLC0415
        from exportsync_api.stores import DynamoSessionStore, S3ObjectStore  # noqa: PLC0415
        from exportsync_devstack.events import ApiIdentity  # noqa: PLC0415
        from exportsync_devstack.fleet_checks import aws_client  # noqa: PLC0415

        fields = {"region": info.region, "aws_endpoint": info.aws_endpoint}
        users_table = "exportsync-users"
        dynamodb = aws_client(fields, "dynamodb")
        deps = Dependencies(
            settings=Settings(bucket=info.bucket, table=info.table, users_table=users_table),
            objects=S3ObjectStore(aws_client(fields, "s3"), info.bucket),
            sessions=DynamoSessionStore(dynamodb, info.table),
            users=CachedUserDirectory(DynamoUserDirectory(dynamodb, users_table)),
        )
        keys = aws_client(fields, "apigateway").get_api_keys(includeValues=True)["items"]
        [key_id] = [k["id"] for k in keys if k.get("value") == info.api_key]
        identity = ApiIdentity(api_key_id=key_id, api_key=info.api_key)
        timed: list[float] = []
        for round_no in range(2):  # the first call warms clients and the registry cache
            event = _batch_event(info, identity, entries, f"r{round_no}")
            started = time.perf_counter()
            answer = handle(event, None, deps)
            timed.append(time.perf_counter() - started)
            if answer["statusCode"] != 200:
                raise RuntimeError(f"handler: HTTP {answer['statusCode']}")
            results = json.loads(answer["body"])["results"]
            if any(r.get("status") not in ("stored", "duplicate") for r in results):
                raise RuntimeError("handler: an entry was not stored")
    return {
        "entries": entries,
        "seconds": round(timed[-1], 3),
        "entries_per_s": round(entries / timed[-1], 1),
    }


def _idle(daemon: LiveDaemon, seconds: float) -> dict[str, Any]:
    bare = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3600)"])
    try:
        time.sleep(seconds)  # the daemon settles after the last delivery; the bare one starts
        rss, bare_rss = rss_bytes(daemon.process.pid), rss_bytes(bare.pid)
    finally:
        bare.terminate()
        bare.wait(10)
    return {
        "seconds": seconds,
        "rss_bytes": rss,
        "bare_python_rss_bytes": bare_rss,
        "rss_vs_bare_python": ratio(rss, bare_rss),
    }


def run_live(scratch: Path, *, quick: bool) -> dict[str, Any]:
    sizes = QUICK if quick else FULL
    scratch.mkdir(parents=True, exist_ok=True)
    with start_devstack(scratch / "devstack", "--rate", "0", "--quota", "0") as info:
        config = write_config(
            scratch / "daemon",
            info,
            quick_pacing=False,
            quota={"daily_requests": 0},
            # A request of 1,000 files is answered in seconds; a loaded machine must not turn
            # it into a timeout and a retry (the product's default is 30 s).
            api={"timeout_seconds": 60},
        )
        folder = scratch / "daemon" / "export"
        baseline = CloseBaseline(folder)
        try:
            with _daemon(config) as daemon:
                time.sleep(sizes.idle_s)  # settled after start, before any file
                ready_rss = rss_bytes(daemon.process.pid)
                latency = _latency(daemon, folder, baseline, sizes, scratch)
                burst = _burst(daemon, folder, baseline, sizes)
                idle = _idle(daemon, sizes.idle_s)
                catch_up = _catch_up(daemon, folder, sizes)
        finally:
            baseline.close()
        handler = _handler_rate(info, sizes.handler_entries)
    idle["ready_rss_bytes"] = ready_rss
    burst["delivered_vs_handler"] = ratio(burst["delivered_files_per_s"], handler["entries_per_s"])
    return {
        "baseline_tool": baseline.tool,
        "latency": latency,
        "burst": burst,
        "catch_up": catch_up,
        "handler": handler,
        "idle": idle,
    }


def summary_lines(r: dict[str, Any], mb: Callable[[float], str]) -> list[str]:
    """The run's figures, each beside its baseline; the last line is the one to quote."""
    lat, burst, handler, idle = r["latency"], r["burst"], r["handler"], r["idle"]
    catch = r["catch_up"]
    share = burst["daemon_share_of_delivery"]
    return [
        "Local side while delivering (exportsync run + devstack, no daily limit; baseline "
        f"{r['baseline_tool']})",
        f"  close -> spooled  p50 {lat['spooled_p50_ms']:.2f} ms"
        f"  p99 {lat['spooled_p99_ms']:.2f} ms"
        f"  ({lat['files']} files {lat['gap_ms']:.0f} ms apart; {r['baseline_tool']} sees the"
        f" close in p50 {lat['baseline_p50_ms']:.2f} ms, p99 {lat['baseline_p99_ms']:.2f} ms;"
        f" a bare one-row SQLite commit on the same disk meanwhile: p50"
        f" {lat['commit_p50_ms']:.2f} ms, p99 {lat['commit_p99_ms']:.2f} ms)",
        f"  burst of {burst['files']}: last spooled {burst['last_close_to_spooled_s']:.3f} s after"
        f" the last close, {burst['missed']} missed (writer {burst['writer_s']:.2f} s;"
        f" {r['baseline_tool']} {burst['baseline_last_close_to_seen_s']:.3f} s; a bare"
        f" scandir+stat walk of the folder {burst['walk_s']:.3f} s)",
        f"  delivered {burst['delivered_files_per_s']:.0f} files/s ({burst['requests']} requests,"
        f" last delivered {burst['last_close_to_delivered_s']:.1f} s after the last close)"
        f" = {burst['delivered_vs_handler']:.2f} x the handler's own"
        f" {handler['entries_per_s']:.0f} entries/s in-process;",
        f"    daemon's share of the wall time {share * 100:.0f}%"
        f" ({burst['daemon_cpu_s']:.2f} s of CPU, first close -> last delivered; after the last"
        f" close {burst['delivery_window_s']:.2f} s, {burst['in_requests_s']:.2f} s inside"
        f" requests, {burst['outside_requests_s']:.2f} s outside of which"
        f" {burst['rate_spacing_floor_s']:.0f} s is the plan's 1 request/s spacing)",
        f"  the same burst written while the daemon was stopped (SIGSTOP), then let go: last"
        f" spooled {catch['resumed_to_spooled_s']:.3f} s after it went on, {catch['missed']}"
        f" missed (writer {catch['writer_s']:.2f} s; the daemon's CPU until all were delivered"
        f" {catch['daemon_cpu_s']:.2f} s)",
        f"  idle RSS {mb(idle['rss_bytes'])} after the deliveries"
        f" ({mb(idle['ready_rss_bytes'])} at start, before any file)"
        f" = {idle['rss_vs_bare_python']:.2f} x a bare python"
        f" ({mb(idle['bare_python_rss_bytes'])})",
        f"  live: p50 {lat['spooled_p50_ms']:.2f} ms p99 {lat['spooled_p99_ms']:.2f} ms"
        f" (goal 3/15); burst {burst['last_close_to_spooled_s']:.3f} s, {burst['missed']} missed"
        f" (goal 1 s, 0), stopped writer {catch['resumed_to_spooled_s']:.3f} s;"
        f" {burst['delivered_files_per_s']:.0f} files/s, daemon share"
        f" {share * 100:.0f}% (goal 20%);"
        f" idle RSS {mb(idle['rss_bytes'])} (goal 40 MB)",
    ]
