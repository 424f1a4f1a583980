"""The daemon's own cost of delivering a burst, without the network: `Deliverer.step()` in-process
over N spooled small CSVs (real files, real spool on disk, synchronous=FULL), the API a scripted
fake that answers at once. What is timed is everything the daemon does per request besides
waiting for the answer: picking due items, reading and verifying each file, building the body,
recording `sending`, applying the answers (spool, logs, metrics).

``.venv/bin/python bench/bench_step.py --files 5000 [--profile]``; with ``--profile`` the top of
a cProfile of the steps is printed.
"""

from __future__ import annotations

import argparse
import cProfile
import hashlib
import io
import json
import pstats
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench_common import quiet_daemon_logs, setup_paths

setup_paths()

from exportsync.daemon import Daemon  # noqa: E402 -- on sys.path now
from exportsync.metrics import MeteredApi, Metrics  # noqa: E402
from exportsync.notify import Notifier  # noqa: E402
from exportsync.spool import NewVersion  # noqa: E402
from support.fake_api import FakeApi  # noqa: E402
from support.inprocess import fast_config  # noqa: E402

__all__ = ["run_step"]


def run_step(scratch: Path, files: int, *, profile: bool = False) -> dict[str, Any]:
    config = fast_config(
        scratch, **{"quota.daily_requests": 0, "quota.requests_per_second": 1000.0}
    )
    export = scratch / "export"
    versions = []
    for i in range(files):
        data = f"id,value\n{i},{i * 7}\n".encode()
        path = export / f"s{i:05d}.csv"
        path.write_bytes(data)
        info = path.stat()
        sha = hashlib.sha256(data).hexdigest()
        versions.append(NewVersion(path, "csv", info.st_size, info.st_mtime_ns, sha, info.st_ino))
    metrics = Metrics()
    fake = FakeApi()
    api_seconds = 0.0

    class Timed:
        """The fake API, its own time kept apart (it stands for the network and the handler)."""

        def batch(self, request: Any) -> list[dict[str, Any]]:
            nonlocal api_seconds
            started = time.perf_counter()
            try:
                return fake.batch(request)
            finally:
                api_seconds += time.perf_counter() - started

        def __getattr__(self, name: str) -> Any:
            return getattr(fake, name)

    daemon = Daemon(config, api=MeteredApi(Timed(), metrics), notifier=Notifier(), metrics=metrics)
    daemon.spool.record_many(versions, now=time.time() - 10)
    commits = daemon.spool.commits
    profiler = cProfile.Profile() if profile else None
    requests = 0
    started = time.perf_counter()
    if profiler is not None:
        profiler.enable()
    while daemon.spool.counts()["delivered"] < files:
        outcome = daemon.deliverer.step()
        requests += outcome.requested
        if requests > files:
            raise RuntimeError("not delivering")
    if profiler is not None:
        profiler.disable()
    wall = time.perf_counter() - started
    transactions = daemon.spool.commits - commits
    daemon.spool.close()
    result: dict[str, Any] = {
        "files": files,
        "requests": requests,
        "transactions": transactions,
        "steps_s": round(wall, 3),
        "fake_api_s": round(api_seconds, 3),
        "daemon_s": round(wall - api_seconds, 3),
        "daemon_ms_per_file": round(1000 * (wall - api_seconds) / files, 3),
    }
    if profiler is not None:
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(25)
        result["profile"] = out.getvalue()
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--files", type=int, default=5000)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    quiet_daemon_logs()
    with tempfile.TemporaryDirectory(prefix="bench-step-") as tmp:
        result = run_step(Path(tmp), args.files, profile=args.profile)
    text = result.pop("profile", None)
    print(json.dumps(result, indent=2))
    if text:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
