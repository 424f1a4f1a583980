"""Delivery throughput: a burst of small files through the real daemon and the real devstack.

`exportsync run` (a subprocess, no daily limit, its default 1 request/s ledger) watches a folder;
the devstack (a subprocess, ``--quota 0 --rate 0``) serves the API. N small CSVs are written at
once; the clock runs from the first write to the moment the spool says all N are delivered.

Where the wall time goes, from /proc (no tracer attached, so nothing is slowed):

* ``daemon_cpu_s``   utime + stime of every thread of the daemon over the run: its share of the
  wall time is what the daemon itself costs (reading, hashing, building requests, settling items
  in the spool, logging) beside waiting for answers and for its own rate limit;
* ``devstack_cpu_s`` the same for the devstack (gateway emulator, the Lambda handler in-process,
  moto's S3 and DynamoDB server);
* ``http_wait_s``    the summed time between each ``request_sending`` and its ``request_sent`` in
  the daemon's log (the request on the wire and the handler's work); ``between_requests_s`` the
  summed time from each answer to the next request (applying the answer, building the next
  request), ``first_write_to_first_request_s`` the time before the first (intake and build);
* ``entries_per_s``  delivered files per second of the whole run, and ``handler_entries_per_s``
  the same per second the devstack was busy on CPU (what the handler side alone allows).

Run alone: ``.venv/bin/python bench/bench_delivery.py --files 5000 [--py-spy DIR]``; with
``--py-spy`` both processes are sampled by py-spy (``py-spy record --pid``) into DIR/*.txt
(collapsed stacks) and the top frames by own time are printed.
"""

from __future__ import annotations

import argparse
import collections
import datetime as dt
import json
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench_common import cpu_seconds, ratio, rss_bytes, setup_paths

setup_paths()

from support.daemon import run_daemon, write_config  # noqa: E402 -- tests/ is on sys.path now
from support.devstack import start_devstack  # noqa: E402

__all__ = ["run_delivery"]

_DEADLINE = 600.0
_POLL = 0.05


def _delivered(spool_path: Path) -> int:
    try:
        with sqlite3.connect(f"file:{spool_path}?mode=ro", uri=True, timeout=1.0) as db:
            row = db.execute("SELECT COUNT(*) FROM items WHERE state = 'delivered'").fetchone()
    except sqlite3.Error:
        return 0
    return int(row[0])


def _stamp(event: dict[str, Any]) -> float:
    return dt.datetime.fromisoformat(str(event["timestamp"])).timestamp()


def _http_wait(events: list[dict[str, Any]]) -> tuple[float, int]:
    """Summed seconds from each request_sending to its request_sent, and the request count."""
    total, count, began = 0.0, 0, None
    for event in events:
        if event.get("event") == "request_sending":
            began = _stamp(event)
        elif event.get("event") == "request_sent" and began is not None:
            total += _stamp(event) - began
            count += 1
            began = None
    return total, count


def _gaps(events: list[dict[str, Any]]) -> float:
    """Summed seconds from each request_sent to the next request_sending: the daemon applying
    one answer and building the next request (its own rate limit included)."""
    total, answered = 0.0, None
    for event in events:
        if event.get("event") == "request_sent":
            answered = _stamp(event)
        elif event.get("event") == "request_sending" and answered is not None:
            total += _stamp(event) - answered
            answered = None
    return total


def _spy(pid: int, out: Path) -> subprocess.Popen[bytes] | None:
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(spy).exists():
        return None
    return subprocess.Popen(
        [
            spy,
            "record",
            "--pid",
            str(pid),
            "--nonblocking",
            "--idle",
            "--format",
            "raw",
            "--rate",
            "100",
            "-o",
            str(out),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _top(collapsed: Path, n: int = 15) -> list[tuple[str, int, float]]:
    """The frames with the most samples of their own (leaf), from py-spy's collapsed stacks;
    idle waits are samples too, so the share is of all samples."""
    own: collections.Counter[str] = collections.Counter()
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        samples = int(count)
        total += samples
        own[stack.split(";")[-1]] += samples
    return [(frame, c, round(100 * c / max(1, total), 1)) for frame, c in own.most_common(n)]


def run_delivery(scratch: Path, files: int = 5000, spy_dir: Path | None = None) -> dict[str, Any]:
    scratch.mkdir(parents=True, exist_ok=True)
    with start_devstack(scratch, "--quota", "0", "--rate", "0") as info:
        # The default 30 s timeout: a 1,000-entry request may take seconds on a busy devstack.
        config = write_config(
            scratch / "d", info, quota={"daily_requests": 0}, api={"timeout_seconds": 30}
        )
        export = scratch / "d" / "export"
        spool_path = scratch / "d" / "state" / "spool.sqlite3"
        with run_daemon(config, "bench-delivery") as daemon:
            daemon.wait_ready()
            spies = []
            if spy_dir is not None:
                spy_dir.mkdir(parents=True, exist_ok=True)
                for name, pid in (("daemon", daemon.process.pid), ("devstack", info.process.pid)):
                    spy = _spy(pid, spy_dir / f"{name}.txt")
                    if spy is not None:
                        spies.append(spy)
                time.sleep(1.0)  # py-spy attaches
            cpu0 = cpu_seconds(daemon.process.pid), cpu_seconds(info.process.pid)
            started, started_at = time.perf_counter(), time.time()
            for i in range(files):
                (export / f"t{i:05d}.csv").write_bytes(f"id,value\n{i},{i * 7}\n".encode())
            written = time.perf_counter()
            deadline = started + _DEADLINE
            while _delivered(spool_path) < files:
                if time.perf_counter() > deadline or daemon.process.poll() is not None:
                    raise RuntimeError(f"delivered {_delivered(spool_path)} of {files}")
                time.sleep(_POLL)
            done = time.perf_counter()
            cpu1 = cpu_seconds(daemon.process.pid), cpu_seconds(info.process.pid)
            rss = rss_bytes(daemon.process.pid)
            for spy in spies:
                spy.send_signal(2)  # SIGINT: py-spy writes its file and exits
                spy.wait(60)
            events = daemon.events()
    wall = done - started
    daemon_cpu, devstack_cpu = cpu1[0] - cpu0[0], cpu1[1] - cpu0[1]
    http_wait, requests = _http_wait(events)
    first_request = min(_stamp(e) for e in events if e.get("event") == "request_sending")
    result: dict[str, Any] = {
        "files": files,
        "requests": requests,
        "wall_s": round(wall, 2),
        "writer_s": round(written - started, 2),
        "last_write_to_delivered_s": round(done - written, 2),
        "entries_per_s": round(files / wall, 1),
        "daemon_cpu_s": round(daemon_cpu, 2),
        "daemon_share_of_wall": ratio(daemon_cpu, wall),
        "devstack_cpu_s": round(devstack_cpu, 2),
        "devstack_share_of_wall": ratio(devstack_cpu, wall),
        "handler_entries_per_s": round(files / devstack_cpu, 1) if devstack_cpu else None,
        "http_wait_s": round(http_wait, 2),
        "first_write_to_first_request_s": round(first_request - started_at, 2),
        "between_requests_s": round(_gaps(events), 2),
        "daemon_rss_after_bytes": rss,
    }
    if spy_dir is not None:
        for name in ("daemon", "devstack"):
            path = spy_dir / f"{name}.txt"
            if path.exists():
                result[f"{name}_top_frames"] = _top(path)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--files", type=int, default=5000)
    parser.add_argument("--py-spy", type=Path, default=None, help="profile both into this folder")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-delivery-") as tmp:
        result = run_delivery(Path(tmp), args.files, args.py_spy)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
