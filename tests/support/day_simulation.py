"""A working day on a fake clock: exports at seeded random times, the real delivery step, spool,
quota ledger and pacing policy, and a fake API that enforces the usage plan the way the gateway
does (so a request the daemon should not have sent shows up as refused, not as a success).

Shared by tests/daemon/test_day_simulation.py (logical counts only) and the bench (hold times).
"""

from __future__ import annotations

import datetime as dt
import json
import random
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from exportsync.client import BatchRequest
from exportsync.clock import FakeClock
from exportsync.config import WatchConfig
from exportsync.delivery import Deliverer
from exportsync.errors import QuotaExhausted, Throttled
from exportsync.intake import Intake
from exportsync.matcher import FileMatcher
from exportsync.pacing import Pacing
from exportsync.quota import DAY
from exportsync.spool import Spool
from support.fake_api import FakeApi
from support.ledger import plan_ledger
from support.settings import api_settings

__all__ = ["DayResult", "GatedApi", "TraceResult", "simulate_day", "simulate_trace"]

# A UTC midnight (2027-01-15): the simulated day.
DAY_START = 1_800_000_000.0 - (1_800_000_000.0 % DAY)


@dataclass
class GatedApi(FakeApi):
    """FakeApi behind a usage plan: `daily` requests per UTC day and one per `interval` s."""

    clock: FakeClock | None = None
    daily: int = 10
    interval: float = 1.0
    refused: int = 0
    sent_at: list[float] = field(default_factory=list)

    def batch(self, request: BatchRequest) -> list[dict[str, Any]]:
        assert self.clock is not None
        now = self.clock.time()
        today = [t for t in self.sent_at if t // DAY == now // DAY]
        if self.sent_at and now - self.sent_at[-1] < self.interval:
            self.refused += 1
            raise Throttled("Too Many Requests", status=429)
        if self.daily and len(today) >= self.daily:
            self.refused += 1
            raise QuotaExhausted("Limit Exceeded", status=429)
        self.sent_at.append(now)
        return super().batch(request)


@dataclass
class DayResult:
    exports: int
    items: int
    delivered: int
    delivered_by_reset: int
    requests: int  # over the day and the next (what was left over goes then)
    requests_by_reset: int
    refused: int
    entries_per_request: list[int]
    holds: list[float]  # seconds from spooling to delivery, per item

    @property
    def median_hold(self) -> float:
        return statistics.median(self.holds) if self.holds else 0.0

    @property
    def max_hold(self) -> float:
        return max(self.holds, default=0.0)


def simulate_day(
    workdir: Path,
    *,
    seed: int = 8,
    exports: int = 40,
    daily: int = 10,
    first_hour: float = 8.0,
    last_hour: float = 20.0,
    pacing: Pacing | None = None,
) -> DayResult:
    """`exports` exports (a CSV and its session, written together) between the two hours."""
    rng = random.Random(seed)  # noqa: S311 -- a seeded simulation
    root = workdir / "export"
    root.mkdir(parents=True)
    clock = FakeClock(DAY_START + 7 * 3600)
    spool = Spool.open(workdir / "state")
    api = GatedApi(clock=clock, daily=daily)
    ledger = plan_ledger(spool, clock, daily_requests=daily)
    deliverer = Deliverer(
        spool=spool,
        ledger=ledger,
        api=api,
        clock=clock,
        watch=WatchConfig(root),
        settings=api_settings(),
        pacing=pacing or Pacing(),
    )
    intake = Intake(spool, root=root, matcher=FileMatcher(), clock=clock)
    times = sorted(
        DAY_START + rng.uniform(first_hour * 3600, last_hour * 3600) for _ in range(exports)
    )
    try:
        for n, at in enumerate(times):
            _run_until(deliverer, clock, at)
            stamp = dt.datetime.fromtimestamp(at, dt.UTC).isoformat().replace("+00:00", "Z")
            csv = root / f"export-{n:03d}.csv"
            csv.write_text("id,value\n" + "".join(f"{i},{rng.random():.6f}\n" for i in range(50)))
            session = root / f"export-{n:03d}.session.json"
            session.write_text(json.dumps({"timestamp": stamp, "export": n, "rows": 50}))
            intake.offer(csv)
            intake.offer(session)
        reset = DAY_START + DAY
        _run_until(deliverer, clock, reset)
        items = spool.items(limit=10 * exports)
        by_reset = sum(1 for i in items if i.delivered_at is not None and i.delivered_at < reset)
        requests_by_reset = len(api.sent_at)
        _run_until(deliverer, clock, reset + DAY)
        items = spool.items(limit=10 * exports)
        return DayResult(
            exports=exports,
            items=len(items),
            delivered=sum(1 for i in items if i.state == "delivered"),
            delivered_by_reset=by_reset,
            requests=len(api.sent_at),
            requests_by_reset=requests_by_reset,
            refused=api.refused,
            entries_per_request=[c.request.entries for c in api.calls],
            holds=[i.delivered_at - i.created_at for i in items if i.delivered_at is not None],
        )
    finally:
        spool.close()


@dataclass
class TraceResult:
    """The measured days of a trace: each export's hold (spooled to delivered, in arrival
    order), how many went the day they arrived, and what the gateway refused."""

    holds: list[float]
    days: list[list[float]]  # the measured days' export instants, as written
    same_day: int
    refused: int
    requests_per_day: list[int]
    spool_arrivals: list[float]  # every arrival the spool recorded, for replaying it


def simulate_trace(
    workdir: Path,
    days: Sequence[Sequence[float]],
    *,
    start: float,
    measure_from: int,
    daily: int = 10,
    pacing: Pacing | None = None,
) -> TraceResult:
    """Consecutive quota days (UTC, from `start`) of exports, each a CSV and its session written
    at its instant. The days before `measure_from` are history: recorded in the spool at their
    instants, as the daemon would have spooled them. The days from `measure_from` on go through
    the real intake, spool, ledger, pacing and delivery step against an API that enforces the
    plan, and are measured; the policy learns from the spool as the daemon does."""
    root = workdir / "export"
    root.mkdir(parents=True)
    clock = FakeClock(start)
    # SQLite in memory: the same schema and queries, without an fsync per history file.
    spool = Spool.in_memory()
    api = GatedApi(clock=clock, daily=daily)
    ledger = plan_ledger(spool, clock, daily_requests=daily)
    deliverer = Deliverer(
        spool=spool,
        ledger=ledger,
        api=api,
        clock=clock,
        watch=WatchConfig(root),
        settings=api_settings(),
        pacing=pacing or Pacing(),
    )
    intake = Intake(spool, root=root, matcher=FileMatcher(), clock=clock)
    written: list[tuple[int, str, float]] = []  # (day, csv name, instant)
    try:
        for day, instants in enumerate(days[:measure_from]):
            # The history is what the spool recorded: each export spooled at its instant and
            # delivered (the days before are not measured, and sending them adds nothing).
            for n, at in enumerate(instants):
                stem = f"d{day:03d}-e{n:03d}"
                for name in (f"{stem}.csv", f"{stem}.session.json"):
                    kind: Literal["csv", "session"] = "csv" if name.endswith(".csv") else "session"
                    item = spool.record(
                        root / name, kind, size=10, mtime_ns=1, sha256=name, now=at
                    ).item
                    spool.mark_delivered(item.id, now=at + 2.0)
        clock.advance(max(0.0, start + measure_from * DAY - clock.time()))
        for day, instants in enumerate(days):
            if day < measure_from:
                continue
            for n, at in enumerate(instants):
                _run_until(deliverer, clock, at)
                name = f"d{day:03d}-e{n:03d}"
                csv = root / f"{name}.csv"
                csv.write_text(f"id,value\n{day},{n}\n")
                session = root / f"{name}.session.json"
                stamp = dt.datetime.fromtimestamp(at, dt.UTC).isoformat().replace("+00:00", "Z")
                session.write_text(json.dumps({"timestamp": stamp, "export": name}))
                intake.offer(csv)
                intake.offer(session)
                written.append((day, f"{name}.csv", at))
        _run_until(deliverer, clock, start + (len(days) + 1) * DAY)
        every = 2 * sum(len(d) for d in days) + 10
        items = {i.path.name: i for i in spool.items(limit=every)}
        holds: list[float] = []
        same_day = 0
        for day, name, _at in written:
            if day < measure_from:
                continue
            item = items[name]
            assert item.delivered_at is not None, f"{name} was never delivered"
            holds.append(item.delivered_at - item.created_at)
            same_day += item.delivered_at < start + (day + 1) * DAY
        per_day = [0] * (len(days) + 1)
        for sent in api.sent_at:
            per_day[min(len(days), int((sent - start) // DAY))] += 1
        return TraceResult(
            holds=holds,
            days=[list(d) for d in days[measure_from:]],
            same_day=same_day,
            refused=api.refused,
            requests_per_day=per_day[measure_from : len(days)],
            spool_arrivals=spool.arrivals(0.0, float("inf")),
        )
    finally:
        spool.close()


def _run_until(deliverer: Deliverer, clock: FakeClock, until: float) -> None:
    """Step the deliverer, moving the fake clock over its waits, up to `until`."""
    for _ in range(100_000):
        outcome = deliverer.step()
        if outcome.requested or outcome.wait == 0:
            continue
        wake = until if outcome.wait is None else clock.time() + outcome.wait
        if wake >= until:
            clock.advance(max(0.0, until - clock.time()))
            return
        clock.advance(outcome.wait or 0.0)
    raise AssertionError("the delivery loop did not settle")
