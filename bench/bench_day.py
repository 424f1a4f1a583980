"""A working day on a fake clock: 40 exports (a CSV and its session) at seeded random times
between 08:00 and 20:00, on 10 requests a day, with the real delivery step, spool, ledger and
pacing policy, against a fake API that enforces the plan (tests/support/day_simulation.py).

* ``paced``    the default pacing (quiet window, prompt requests, reserve, last call);
* ``at_once``  the baseline: every export sent as soon as it is complete, no reserve, no spread
  (what a client that only respects the quota does).

Nothing is timed: hold times are simulated seconds from spooling to delivery.
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

from bench_common import setup_paths
from exportsync.pacing import Pacing

setup_paths()

from support.day_simulation import simulate_day  # noqa: E402 -- tests/ is on sys.path now

__all__ = ["run_day"]

BASELINE = Pacing(quiet_seconds=2.0, prompt_requests=1000, reserve_requests=0)


def _variant(scratch: Path, name: str, pacing: Pacing, seeds: list[int]) -> dict[str, Any]:
    runs = [
        simulate_day(scratch / f"{name}-{seed}", seed=seed, exports=40, daily=10, pacing=pacing)
        for seed in seeds
    ]
    holds = [h for r in runs for h in r.holds]
    return {
        "seeds": seeds,
        "items": sum(r.items for r in runs),
        "delivered_same_day": sum(r.delivered_by_reset for r in runs),
        "requests_same_day": [r.requests_by_reset for r in runs],
        "requests_in_all": [r.requests for r in runs],
        "refused": sum(r.refused for r in runs),
        "median_hold_minutes": round(statistics.median(holds) / 60, 1),
        "max_hold_minutes": round(max(holds) / 60, 1),
        "median_hold_minutes_per_seed": [round(r.median_hold / 60, 1) for r in runs],
        "max_hold_minutes_per_seed": [round(r.max_hold / 60, 1) for r in runs],
    }


def run_day(scratch: Path, *, quick: bool) -> dict[str, Any]:
    seeds = [8] if quick else [8, 21, 34, 55, 89]
    paced = _variant(scratch, "paced", Pacing(), seeds)
    at_once = _variant(scratch, "at_once", BASELINE, seeds)
    return {
        "exports_per_day": 40,
        "daily_requests": 10,
        "variants": {"paced": paced, "at_once": at_once},
    }
