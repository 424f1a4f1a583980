"""1,000 sessions in one POST /session: the Lambda's bounded write pool (16 workers) against the
same request written one item at a time, same run, two ways:

- through the devstack (real HTTP, moto's server in the same process as the handler): the
  absolute time is the headroom figure against the function's 28 s timeout;
- the handler called directly with a store that waits 10 ms per write, as a DynamoDB PutItem
  does over the network: the ratio shows what the pool overlaps.

`.venv/bin/python bench/bench_lambda_batch.py [--entries N] [--rounds R]`; prints its figure last.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench_common import setup_paths

setup_paths()

import requests  # noqa: E402 -- after the source roots are on sys.path

from exportsync_api.pool import Pool  # noqa: E402 -- same
from exportsync_api.sessions import store_sessions  # noqa: E402 -- same
from support.devstack import DevstackInfo, start_devstack  # noqa: E402 -- same

_WRITE_LATENCY_S = 0.010


def _sessions(info: DevstackInfo, count: int, round_no: int) -> list[dict[str, Any]]:
    day = f"2026-07-{1 + round_no:02d}"
    return [
        {
            "user_id": info.user_id,
            "timestamp": f"{day}T{n // 3600:02d}:{n // 60 % 60:02d}:{n % 60:02d}Z",
            "steps": n,
        }
        for n in range(count)
    ]


def _time_stack(workers: int, entries: int, rounds: int, scratch: Path) -> list[float]:
    os.environ["EXPORTSYNC_WORKERS"] = str(workers)
    seconds: list[float] = []
    with start_devstack(scratch / f"w{workers}", "--rate", "0", "--quota", "0") as info:
        for round_no in range(rounds + 1):  # round 0 warms the function and moto up
            body = {"sessions": _sessions(info, entries, round_no)}
            start = time.perf_counter()
            response = requests.post(
                f"{info.api_url}/session",
                json=body,
                headers={"x-api-key": info.api_key},
                timeout=300,
            )
            elapsed = time.perf_counter() - start
            statuses = {r["status"] for r in response.json()["results"]}
            if response.status_code != 200 or statuses != {"stored"}:
                raise SystemExit(f"unexpected answer: {response.status_code} {statuses}")
            if round_no:
                seconds.append(elapsed)
    return seconds


class _SlowSessions:
    """A session store whose every write takes as long as a network round trip."""

    def put_unless_same(self, item: Any, content_hash: str) -> Any:
        time.sleep(_WRITE_LATENCY_S)
        return "stored"


def _time_latency(workers: int, entries: int) -> float:
    sessions = [
        json.dumps(
            {
                "user_id": "alice",
                "timestamp": f"2026-07-01T{n // 3600:02d}:{n // 60 % 60:02d}:{n % 60:02d}Z",
            }
        ).encode()
        for n in range(entries)
    ]
    start = time.perf_counter()
    result = store_sessions(sessions, None, _SlowSessions(), Pool(workers=workers))
    elapsed = time.perf_counter() - start
    if {r["status"] for r in result["results"]} != {"stored"}:
        raise SystemExit("unexpected answers from the latency run")
    return elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--entries", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="exportsync-bench-lambda-") as tmp:
        serial = _time_stack(1, args.entries, args.rounds, Path(tmp))
        pooled = _time_stack(16, args.entries, args.rounds, Path(tmp))
    serial_s, pooled_s = statistics.median(serial), statistics.median(pooled)
    print(f"devstack, 1 worker: median {serial_s:.2f} s  rounds {[round(s, 2) for s in serial]}")
    print(f"devstack, 16 workers: median {pooled_s:.2f} s  rounds {[round(s, 2) for s in pooled]}")
    slow_serial = _time_latency(1, args.entries)
    slow_pooled = _time_latency(16, args.entries)
    print(
        f"10 ms per write: 1 worker {slow_serial:.2f} s, 16 workers {slow_pooled:.2f} s "
        f"({slow_serial / slow_pooled:.1f}x)"
    )
    print(
        f"lambda batch: {args.entries} sessions in one request, {pooled_s:.2f} s through the "
        f"devstack ({serial_s / pooled_s:.2f}x one at a time); at 10 ms per write "
        f"{slow_pooled:.2f} s ({slow_serial / slow_pooled:.1f}x one at a time)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
