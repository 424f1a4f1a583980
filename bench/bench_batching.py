"""Batching: how many requests, and how many 10-request days, a backlog costs.

The real `Deliverer`, `QuotaLedger` and `Spool` deliver a backlog of small CSV files and
one-session files to `FakeApi` (tests/support/fake_api.py) on a `FakeClock`, under the usage plan
(1 request/s, burst 1, 10 requests per UTC day). The simulated clock makes 200 days run in seconds.

Two runs over the same backlog, each with a fresh spool and clock:

* ``batched``            the defaults: up to 100 CSVs (4 MB together) or 100 sessions per request;
* ``batch_max_files_1``  the baseline: ``api.batch_max_files = 1``, which caps every route at one
  file per request, i.e. what a client that sends one file per request spends.
"""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path
from typing import Any, Literal

from bench_common import ratio, setup_paths
from exportsync.clock import FakeClock
from exportsync.delivery import Deliverer
from exportsync.intake import Intake
from exportsync.matcher import FileMatcher
from exportsync.quota import DAY, QuotaLedger
from exportsync.spool import Spool

setup_paths()

from support.fake_api import FakeApi  # noqa: E402 -- tests/ is on sys.path only after setup_paths()

__all__ = ["run_batching"]

DAILY_REQUESTS = 10
Variant = Literal["batched", "batch_max_files_1"]
VARIANTS: tuple[Variant, ...] = ("batched", "batch_max_files_1")
# The step loop must end; far more steps than the per-file baseline could ever need.
_STEP_CEILING = 200_000


def _make_backlog(export: Path, csvs: int, sessions: int) -> None:
    export.mkdir(parents=True)
    for i in range(csvs):
        rows = "".join(f"{i},{j},{j * 0.5}\n" for j in range(40))
        (export / f"report-{i:05d}.csv").write_text("id,row,value\n" + rows)
    for i in range(sessions):
        # One session per file, each with its own timestamp (the table's sort key).
        stamp = f"2026-11-25T10:{i // 60 % 60:02d}:{i % 60:02d}.{i:06d}Z"
        body = f'{{"timestamp": "{stamp}", "score": {i}.5, "steps": {i}}}'
        (export / f"run-{i:05d}.session.json").write_text(body)


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
        ledger = QuotaLedger(
            spool,
            requests_per_second=1.0,
            burst=1,
            daily_requests=DAILY_REQUESTS,
            reset_utc=dt.time(0, 0),
            margin_seconds=0.25,
            clock=clock,
        )
        api = FakeApi()
        deliverer = Deliverer(
            spool=spool,
            ledger=ledger,
            api=api,
            clock=clock,
            root=export,
            default_user_id="bench",
            batch_max_files=100 if variant == "batched" else 1,
        )
        sent_at: list[float] = []
        for path in sorted(export.iterdir()):
            intake.offer(path)
        _drain(deliverer, clock, sent_at)
        counts = spool.counts()
    first_period = ledger.period_start(sent_at[0])
    last_period = ledger.period_start(sent_at[-1])
    return {
        "requests": len(api.calls),
        "by_route": {route: api.routes.count(route) for route in sorted(set(api.routes))},
        "quota_days": round((last_period - first_period) / DAY) + 1,
        "delivered": counts["delivered"],
        "failed": counts["failed"],
        "pending": counts["pending"],
    }


def run_batching(scratch: Path, *, quick: bool) -> dict[str, Any]:
    """Deliver one backlog both ways; scratch may be tmpfs (nothing here is timed)."""
    csvs, sessions = (300, 300) if quick else (1000, 1000)
    export = scratch / "export-batching"
    _make_backlog(export, csvs, sessions)
    results = {variant: _deliver(scratch, export, variant) for variant in VARIANTS}
    total = csvs + sessions
    for variant, result in results.items():
        if result["delivered"] != total:
            raise RuntimeError(f"batching bench: {variant} left items undelivered: {result}")
    batched, single = results["batched"], results["batch_max_files_1"]
    return {
        "csv_files": csvs,
        "session_files": sessions,
        "daily_requests": DAILY_REQUESTS,
        "variants": results,
        "requests_saved_ratio": ratio(single["requests"], batched["requests"]),
        "days_ideal_batched": math.ceil(batched["requests"] / DAILY_REQUESTS),
        "days_ideal_batch_max_files_1": math.ceil(single["requests"] / DAILY_REQUESTS),
    }
