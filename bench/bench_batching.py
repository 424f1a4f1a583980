"""Batching: files per counted request, and 10-request days, a backlog costs.

The real `Deliverer`, `QuotaLedger` and `Spool` deliver the backlog of the quota-economy case
(900 CSV files of 1-20 KB, 100 session files and one CSV too large to go inline) to `FakeApi`
(tests/support/fake_api.py) on a `FakeClock`, under the usage plan (1 request/s, burst 1,
10 requests per UTC day). The simulated clock makes days run in seconds; nothing is timed.

Three runs over the same backlog, each with a fresh spool and clock:

* ``batched``              the defaults: one POST /batch of up to 1,000 entries and 4 MB as sent
  (CSVs gzip-compressed when that pays);
* ``batch_max_files_100``  ``api.batch_max_files = 100``: the previous cap on a request;
* ``batch_max_files_1``    the baseline: one file per request.
"""

from __future__ import annotations

import json
import math
import random
from pathlib import Path
from typing import Any, Literal

from bench_common import ratio, setup_paths
from exportsync.clock import FakeClock
from exportsync.config import WatchConfig
from exportsync.delivery import Deliverer
from exportsync.intake import Intake
from exportsync.matcher import FileMatcher
from exportsync.quota import DAY
from exportsync.spool import Spool

setup_paths()

from support.fake_api import FakeApi  # noqa: E402 -- tests/ is on sys.path only after setup_paths()
from support.ledger import plan_ledger  # noqa: E402 -- tests/ is on sys.path only after setup_paths()
from support.settings import api_settings  # noqa: E402 -- tests/ is on sys.path only after setup_paths()

__all__ = ["csv_bytes", "make_backlog", "run_batching"]

DAILY_REQUESTS = 10
Variant = Literal["batched", "batch_max_files_100", "batch_max_files_1"]
VARIANTS: dict[Variant, int] = {"batched": 1000, "batch_max_files_100": 100, "batch_max_files_1": 1}
# The step loop must end; far more steps than the per-file baseline could ever need.
_STEP_CEILING = 200_000


def csv_bytes(rng: random.Random, n: int) -> bytes:
    """A CSV of 1-20 KB, rows of numbers and words as an app exports them."""
    target = rng.randint(1024, 20 * 1024)
    kinds = ("walk", "run", "ride", "swim")
    rows = "".join(
        f"{n},{i},{rng.random():.6f},{rng.choice(kinds)}\n" for i in range(target // 20 + 1)
    )
    return ("export,row,value,kind\n" + rows).encode()[:target]


def make_backlog(export: Path, *, csvs: int, sessions: int, large_bytes: int) -> int:
    """The backlog in `export` (the large file sparse); the number of files written."""
    rng = random.Random(8)  # noqa: S311 -- seeded bench data
    export.mkdir(parents=True)
    for i in range(csvs):
        (export / f"report-{i:04d}.csv").write_bytes(csv_bytes(rng, i))
    for i in range(sessions):
        stamp = f"2026-11-25T10:{i // 60 % 60:02d}:{i % 60:02d}.{i:06d}Z"
        body = {"timestamp": stamp, "score": i + 0.5, "steps": i}
        (export / f"run-{i:04d}.session.json").write_text(json.dumps(body))
    with (export / "large.csv").open("wb") as handle:
        handle.truncate(large_bytes)
    return csvs + sessions + 1


def _drain(deliverer: Deliverer, clock: FakeClock, sent_at: list[float]) -> None:
    """Step (advancing the fake clock over every wait) until nothing is pending."""
    for _ in range(_STEP_CEILING):
        outcome = deliverer.step()
        if outcome.requested:
            sent_at.append(clock.time())
        if outcome.wait is None:
            return
        clock.advance(outcome.wait)
    raise RuntimeError("batching bench: the delivery step never ran out of work")


def _deliver(scratch: Path, export: Path, variant: Variant) -> dict[str, Any]:
    clock = FakeClock()
    with Spool.open(scratch / f"state-{variant}") as spool:
        intake = Intake(spool, root=export, matcher=FileMatcher(), clock=clock)
        ledger = plan_ledger(spool, clock, daily_requests=DAILY_REQUESTS)
        api = FakeApi()
        deliverer = Deliverer(
            spool=spool,
            ledger=ledger,
            api=api,
            clock=clock,
            watch=WatchConfig(export),
            settings=api_settings("bench", batch_max_files=VARIANTS[variant]),
        )
        sent_at: list[float] = []
        for path in sorted(export.iterdir()):
            intake.offer(path)
        _drain(deliverer, clock, sent_at)
        counts = spool.counts()
    first_period = ledger.period_start(sent_at[0])
    last_period = ledger.period_start(sent_at[-1])
    sent = sum(len(c.files) for c in api.calls)
    wire = sum(len(f.data) for c in api.calls for f in c.files)
    return {
        "requests": len(api.calls),
        "entries_per_request": [c.request.entries for c in api.calls[:5]],
        "files_per_request": round(counts["delivered"] / len(api.calls), 1),
        "inline_bytes_sent_vs_file_bytes": ratio(
            wire, sum(f.size for c in api.calls for f in c.files) or 1
        ),
        "inline_files": sent,
        "quota_days": round((last_period - first_period) / DAY) + 1,
        "delivered": counts["delivered"],
        "failed": counts["failed"],
        "pending": counts["pending"],
    }


def run_batching(scratch: Path, *, quick: bool) -> dict[str, Any]:
    """Deliver one backlog three ways; scratch may be tmpfs (nothing here is timed)."""
    csvs, sessions = (900, 100)
    export = scratch / "export-batching"
    total = make_backlog(export, csvs=csvs, sessions=sessions, large_bytes=8 * 1024**2)
    chosen = ("batched", "batch_max_files_100") if quick else tuple(VARIANTS)
    results = {variant: _deliver(scratch, export, variant) for variant in chosen}
    for variant, result in results.items():
        if result["delivered"] != total:
            raise RuntimeError(f"batching bench: {variant} left items undelivered: {result}")
    batched, hundred = results["batched"], results["batch_max_files_100"]
    out: dict[str, Any] = {
        "csv_files": csvs,
        "session_files": sessions,
        "large_files": 1,
        "daily_requests": DAILY_REQUESTS,
        "variants": results,
        "files_per_request_vs_batch_max_files_100": ratio(
            batched["files_per_request"], hundred["files_per_request"]
        ),
        "days_ideal_batched": math.ceil(batched["requests"] / DAILY_REQUESTS),
    }
    if "batch_max_files_1" in results:
        out["requests_saved_ratio"] = ratio(
            results["batch_max_files_1"]["requests"], batched["requests"]
        )
    return out
