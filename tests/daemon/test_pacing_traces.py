"""The learned pacing on seeded traces (tests/support/pacing_traces.py), through the real intake,
spool, ledger, policy and delivery step against an API that enforces 10 requests a day; each
trace's 14 days of history go through the same pieces first, so the policy learns from the
spool as the daemon does. Set against the policy with learning off (today's)."""

from __future__ import annotations

from pathlib import Path

import pytest

from exportsync.pacing import Pacing
from support.day_simulation import TraceResult, simulate_trace
from support.pacing_traces import TRACES, Trace

LEARNED = Pacing()
TODAY = Pacing(learn_days=0)
SINGLE_DAYS = [name for name in TRACES if name != "mix_14_days"]


def _run(tmp_path: Path, trace: Trace, pacing: Pacing, name: str) -> TraceResult:
    return simulate_trace(
        tmp_path / name,
        trace.days,
        start=trace.start,
        measure_from=trace.first_measured,
        pacing=pacing,
    )


def test_the_quiet_mornings_fifth_export_goes_within_a_minute(tmp_path: Path) -> None:
    trace = TRACES["quiet_morning"](1)
    assert len(trace.days[-1]) == 5
    learned = _run(tmp_path, trace, LEARNED, "learned")
    today = _run(tmp_path, trace, TODAY, "today")
    assert learned.holds[4] <= 60
    assert max(learned.holds) <= 60
    # Today's policy spends its 4 prompt requests, then paces the fifth for hours.
    assert today.holds[4] > 3600


@pytest.mark.parametrize("name", SINGLE_DAYS)
def test_no_trace_is_refused_or_delivered_later_than_today(tmp_path: Path, name: str) -> None:
    trace = TRACES[name](1)
    learned = _run(tmp_path, trace, LEARNED, "learned")
    today = _run(tmp_path, trace, TODAY, "today")
    assert learned.refused == today.refused == 0
    assert learned.same_day >= today.same_day
    assert all(n <= 10 for n in learned.requests_per_day)
    # Held less in all than the fixed heuristic holds the same exports.
    assert sum(learned.holds) <= sum(today.holds)
