"""The quota economy against the devstack: `exportsync run` as a subprocess, real inotify, real
HTTP to the gateway emulator and the real Lambda handler, moto's server behind it.

* ``latency``  close of a small file → the API's answer (the spool's delivery time, written
  when the answer is in, so S3 already holds the object), one file at a time, with no daily limit
  and with the default 10 a day (the day's prompt requests, which wait only for the quiet
  window). Baseline: one direct ``POST /batch`` of the same kind of file on the same devstack,
  i.e. what the request itself costs.
* ``backlog``  900 CSVs of 1-20 KB, 100 session files and a sparse 300 MB CSV present at start,
  on the real plan (1 request/s, burst 1, 10 a day): requests, throttles, refusals, the seconds
  until all is delivered and the daemon's peak RSS (Linux ``VmHWM``). Baseline: the peak RSS of
  the same daemon started on an empty folder in the same run.
"""

from __future__ import annotations

import functools
import hashlib
import json
import statistics
import time
from pathlib import Path
from typing import Any

import requests

from bench_batching import make_backlog
from bench_common import ratio, setup_paths

setup_paths()

from support.daemon import run_daemon, settled, spool_items, write_config  # noqa: E402
from support.devstack import DevstackInfo, start_devstack, usage, wait_for  # noqa: E402

__all__ = ["run_economy"]

_DEADLINE = 60.0


def _peak_rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def _close_to_answer(base: Path, info: DevstackInfo, files: int, daily: int) -> list[float]:
    """Seconds from each file's close to its delivery, one file at a time."""
    config = write_config(
        base,
        info,
        quota={"daily_requests": daily, "quiet_seconds": 2.0, "margin_seconds": 0.0},
    )
    export = base / "export"
    out: list[float] = []
    with run_daemon(config, "bench-latency") as daemon:
        daemon.wait_ready()
        for n in range(files):
            time.sleep(1.1)  # the plan's 1 request/s: each file finds the bucket refilled
            path = export / f"small-{daily}-{n}.csv"
            with path.open("w") as handle:
                handle.write(f"id,value\n{n},{time.time()}\n")
            closed = time.time()
            done = functools.partial(settled, daemon.state_dir, n + 1)
            if not wait_for(done, _DEADLINE, 0.005):
                raise RuntimeError(f"latency bench: not delivered:\n{daemon.output()}")
            (item,) = [i for i in spool_items(daemon.state_dir) if i.path.name == path.name]
            assert item.delivered_at is not None
            out.append(item.delivered_at - closed)
        if daemon.terminate() != 0:
            raise RuntimeError(f"daemon exited badly:\n{daemon.output()}")
    return out


def _direct_batch(info: DevstackInfo, n: int) -> float:
    """One POST /batch of one small CSV, timed: the request alone."""
    data = f"id,value\n{n},{time.time()}\n".encode()
    manifest = [
        {
            "filename": f"direct-{n}.csv",
            "sha256": hashlib.sha256(data).hexdigest(),
            "size": len(data),
        }
    ]
    parts = [
        ("manifest", (None, json.dumps(manifest).encode(), "application/json")),
        ("file", (f"direct-{n}.csv", data, "text/csv")),
    ]
    started = time.perf_counter()
    response = requests.post(
        f"{info.api_url}/batch", headers={"x-api-key": info.api_key}, files=parts, timeout=30
    )
    elapsed = time.perf_counter() - started
    if response.status_code != 200:
        raise RuntimeError(f"direct POST /batch: HTTP {response.status_code}")
    return elapsed


def _latency(base: Path, quick: bool) -> dict[str, Any]:
    files = 4 if quick else 10
    with start_devstack(base / "devstack", "--quota", "0", "--rate", "0") as info:
        unlimited = _close_to_answer(base / "unlimited", info, files, 0)
        # With a daily limit only the day's prompt requests go without a pacing slot.
        limited = _close_to_answer(base / "limited", info, 4, 10)
        direct = [_direct_batch(info, n) for n in range(files)]
    direct_s = statistics.median(direct)
    unlimited_s = statistics.median(unlimited)
    limited_s = statistics.median(limited)
    return {
        "files_unlimited": files,
        "files_limited": 4,
        "direct_batch_median_s": round(direct_s, 4),
        "close_to_answer_no_daily_limit_median_s": round(unlimited_s, 4),
        "close_to_answer_no_daily_limit_runs_s": [round(x, 4) for x in unlimited],
        "close_to_answer_daily_limit_median_s": round(limited_s, 4),
        "close_to_answer_daily_limit_runs_s": [round(x, 4) for x in limited],
        "no_daily_limit_vs_direct": ratio(unlimited_s, direct_s),
        "daily_limit_vs_direct": ratio(limited_s, direct_s),
    }


def _backlog(base: Path, quick: bool) -> dict[str, Any]:
    large = (32 if quick else 300) * 1024**2
    plan = ("--rate", "1", "--burst", "1", "--quota", "10")
    with start_devstack(base / "devstack", *plan) as info:
        idle_config = write_config(base / "idle", info)
        with run_daemon(idle_config, "bench-idle") as idle:
            idle.wait_ready()
            time.sleep(1.0)  # a moment of idling, so the baseline is a settled daemon
            idle_rss = _peak_rss_bytes(idle.process.pid)
            idle.terminate()
        config = write_config(base / "backlog", info)
        total = make_backlog(
            base / "backlog" / "export-all", csvs=900, sessions=100, large_bytes=large
        )
        # The backlog is written before the daemon starts, into its watched folder.
        export = base / "backlog" / "export"
        for path in (base / "backlog" / "export-all").iterdir():
            path.rename(export / path.name)
        started = time.perf_counter()
        with run_daemon(config, "bench-backlog") as daemon:
            daemon.wait_ready(120)
            if not wait_for(lambda: settled(daemon.state_dir, total), 600, 0.1):
                raise RuntimeError(f"backlog bench: not delivered:\n{daemon.output()}")
            elapsed = time.perf_counter() - started
            peak = _peak_rss_bytes(daemon.process.pid)
            daemon.terminate()
        counters = usage(info)
    states = {i.state for i in spool_items(base / "backlog" / "state")}
    return {
        "files": total,
        "large_file_bytes": large,
        "all_delivered": states == {"delivered"},
        "requests": counters["accepted"],
        "throttled": counters["throttled"],
        "quota_exceeded": counters["quota_exceeded"],
        "seconds": round(elapsed, 2),
        "files_per_request": round(total / max(1, counters["accepted"]), 1),
        "peak_rss_bytes": peak,
        "idle_peak_rss_bytes": idle_rss,
        "peak_rss_vs_idle": ratio(peak, idle_rss),
    }


def run_economy(scratch: Path, *, quick: bool) -> dict[str, Any]:
    return {
        "latency": _latency(scratch / "latency", quick),
        "backlog": _backlog(scratch / "backlog", quick),
    }
