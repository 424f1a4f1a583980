"""End to end: `exportsync run` against the real devstack, compared with a naive client.

One devstack subprocess (``--quota 0 --rate 0``: no usage plan at the gateway) serves both, one
after the other, with different file contents so neither meets the other's duplicates:

* ``daemon``  `exportsync run` with its documented defaults (a 2 s quiet window, its own ledger
  at 1 request/s, burst 1, 10 a day) is started and ready; the clock starts, N files are written
  into its folder, and the clock stops when the spool says all N are delivered (recording, the
  quiet window, the ledger's pacing, hashing, fsyncs, batching and the requests included);
* ``naive``   the baseline: the clock starts, the same number of files are written, then each
  is read and sent with its own POST (multipart /upload for a CSV, /session for a session
  file) over one keep-alive ``requests.Session``, as the daemon's client reuses its connection;
  nothing recorded anywhere, no pacing.
"""

from __future__ import annotations

import json
import sqlite3
import statistics
import time
from pathlib import Path
from typing import Any

import requests

from bench_common import ratio, setup_paths

setup_paths()

from exportsync.config import ApiConfig, QuotaConfig  # noqa: E402 -- on sys.path now
from support.daemon import run_daemon, write_config  # noqa: E402 -- tests/ is on sys.path now
from support.devstack import DevstackInfo, start_devstack, usage  # noqa: E402

__all__ = ["run_e2e"]

_DEADLINE = 120.0
_POLL = 0.05
# The defaults the daemon runs with here, read from where they are defined.
DEFAULT_API = ApiConfig(url="", api_key=None, user_id=None)
DEFAULT_QUOTA = QuotaConfig()


def _write_files(folder: Path, prefix: str, csvs: int, sessions: int) -> list[Path]:
    paths = []
    for i in range(csvs):
        path = folder / f"{prefix}-{i:04d}.csv"
        rows = "".join(f"{prefix},{i},{j}\n" for j in range(50))
        path.write_text("who,file,row\n" + rows)
        paths.append(path)
    for i in range(sessions):
        path = folder / f"{prefix}-{i:04d}.session.json"
        stamp = f"2026-11-25T{i // 3600 % 24:02d}:{i // 60 % 60:02d}:{i % 60:02d}Z"
        path.write_text(json.dumps({"timestamp": f"{stamp}", "client": prefix, "steps": i}))
        paths.append(path)
    return paths


def _delivered(spool_path: Path) -> int:
    """Items delivered, read through a read-only connection (never blocks the daemon's writes)."""
    try:
        with sqlite3.connect(f"file:{spool_path}?mode=ro", uri=True, timeout=1.0) as db:
            row = db.execute("SELECT COUNT(*) FROM items WHERE state = 'delivered'").fetchone()
    except sqlite3.Error:
        return 0  # not created yet, or busy for a moment
    return int(row[0])


def _run_daemon(
    base: Path, info: DevstackInfo, prefix: str, csvs: int, sessions: int
) -> dict[str, Any]:
    # The daemon's documented defaults: no quota or pacing overrides (the test helper's short
    # quiet window and timeout are put back to the defaults).
    config = write_config(
        base, info, quick_pacing=False, api={"timeout_seconds": DEFAULT_API.timeout_seconds}
    )
    export = base / "export"
    spool_path = base / "state" / "spool.sqlite3"
    total = csvs + sessions
    with run_daemon(config, "bench-daemon") as daemon:
        daemon.wait_ready()
        before = usage(info)["requests"]
        started = time.perf_counter()
        _write_files(export, prefix, csvs, sessions)
        deadline = started + _DEADLINE
        while _delivered(spool_path) < total:
            if time.perf_counter() > deadline or daemon.process.poll() is not None:
                raise RuntimeError(f"daemon did not deliver {total} files:\n{daemon.output()}")
            time.sleep(_POLL)  # a poll with a deadline, not a wait for luck
        elapsed = time.perf_counter() - started
        requests_used = usage(info)["requests"] - before
        if daemon.terminate() != 0:
            raise RuntimeError(f"daemon exited badly:\n{daemon.output()}")
    return {"seconds": round(elapsed, 3), "requests": requests_used, "files": total}


def _post(session: requests.Session, info: DevstackInfo, path: Path) -> None:
    headers = {"x-api-key": info.api_key}
    data = path.read_bytes()
    if path.name.endswith(".session.json"):
        doc = {**json.loads(data), "user_id": info.user_id}
        response = session.post(f"{info.api_url}/session", json=doc, headers=headers, timeout=30)
    else:
        response = session.post(
            f"{info.api_url}/upload",
            headers=headers,
            data={"user_id": info.user_id},
            files=[("file", (path.name, data, "text/csv"))],
            timeout=30,
        )
    if response.status_code != 200:
        raise RuntimeError(f"naive client: {path.name}: HTTP {response.status_code}")
    statuses = {r.get("status") for r in response.json()["results"]}
    if not statuses <= {"stored", "duplicate"}:
        raise RuntimeError(f"naive client: {path.name} refused: {response.text[:300]}")


def _run_naive(
    base: Path, info: DevstackInfo, prefix: str, csvs: int, sessions: int
) -> dict[str, Any]:
    folder = base / "naive"
    folder.mkdir(parents=True)
    before = usage(info)["requests"]
    started = time.perf_counter()
    paths = _write_files(folder, prefix, csvs, sessions)
    with requests.Session() as session:  # keep-alive, like the daemon's HttpApi
        for path in paths:
            _post(session, info, path)
    elapsed = time.perf_counter() - started
    return {
        "seconds": round(elapsed, 3),
        "requests": usage(info)["requests"] - before,
        "files": len(paths),
    }


def run_e2e(scratch: Path, *, quick: bool) -> dict[str, Any]:
    """Start a devstack, time both clients on it (interleaved rounds), stop it."""
    csvs, sessions = (40, 20) if quick else (150, 50)
    rounds = 1 if quick else 3
    base = scratch / "e2e"
    started = time.perf_counter()
    daemon_runs: list[dict[str, Any]] = []
    naive_runs: list[dict[str, Any]] = []
    with start_devstack(base / "devstack", "--quota", "0", "--rate", "0") as info:
        startup = time.perf_counter() - started
        for n in range(rounds):
            # Fresh folder, spool and contents each round: nothing is a duplicate of before.
            where = base / f"round-{n}"
            daemon_runs.append(_run_daemon(where, info, f"daemon{n}", csvs, sessions))
            naive_runs.append(_run_naive(where, info, f"naive{n}", csvs, sessions))
    daemon_s = statistics.median(r["seconds"] for r in daemon_runs)
    naive_s = statistics.median(r["seconds"] for r in naive_runs)
    daemon_requests = statistics.median(r["requests"] for r in daemon_runs)
    naive_requests = statistics.median(r["requests"] for r in naive_runs)
    return {
        "csv_files": csvs,
        "session_files": sessions,
        "rounds": rounds,
        "daemon_quiet_s": DEFAULT_QUOTA.pacing.quiet_seconds,
        "daemon_requests_per_s": DEFAULT_QUOTA.requests_per_second,
        "devstack_startup_s": round(startup, 3),
        "daemon": {"median_s": daemon_s, "median_requests": daemon_requests, "runs": daemon_runs},
        "naive": {"median_s": naive_s, "median_requests": naive_requests, "runs": naive_runs},
        "daemon_time_vs_naive": ratio(daemon_s, naive_s),
        "naive_requests_vs_daemon": ratio(naive_requests, daemon_requests),
    }
