"""The learned pacing's decision against past days as samples: when what waits should go."""

from __future__ import annotations

from exportsync.scenarios import MOST_EXPORTS, _coarse, _table, clear_cache, send_offset

HOUR = 3600.0
END = 23.5 * HOUR  # the last call
NOW = 9 * HOUR


def _run(at: float, count: int, gap: float = 60.0) -> tuple[tuple[float, int], ...]:
    return tuple((at + n * gap, 2) for n in range(count))


def test_nothing_more_to_come_sends_now() -> None:
    assert send_offset([(), (), ()], now=NOW, files=2, budget=1, end=END, limit=10) == NOW


def test_a_request_for_every_export_to_come_sends_now() -> None:
    days = [_run(NOW + 60, 4)] * 5
    assert send_offset(days, now=NOW, files=2, budget=5, end=END, limit=10) == NOW


def test_a_tight_budget_waits_for_the_export_the_samples_expect_next() -> None:
    # Four more a minute apart, then four in the afternoon; two requests: one per run.
    days = [_run(NOW + 60, 4) + _run(15 * HOUR, 4)] * 5
    assert send_offset(days, now=NOW, files=2, budget=2, end=END, limit=10) == NOW + 60
    # At the run's end, the next export is hours away: it goes now.
    last = NOW + 4 * 60
    after = [_run(15 * HOUR, 4)] * 5
    assert send_offset(after, now=last, files=10, budget=2, end=END, limit=10) == last


def test_the_more_that_waits_the_less_it_waits() -> None:
    # Samples disagree: on half of them the next export is a minute away, on half hours away.
    # Holding a minute for it saves half the samples a morning run held until the afternoon
    # (about 170,000 file-seconds each); it costs the other half the files waiting x 60 s.
    days = [_run(NOW + 60, 4) + _run(15 * HOUR, 4)] * 3 + [_run(15 * HOUR, 8)] * 3
    few = send_offset(days, now=NOW, files=2, budget=2, end=END, limit=10)
    many = send_offset(days, now=NOW, files=5000, budget=2, end=END, limit=10)
    assert few == NOW + 60
    assert many == NOW


def test_a_busy_past_day_is_planned_over_its_closest_exports_merged() -> None:
    clear_cache()
    busy = tuple((NOW + 60 + n * 30.0, 2) for n in range(200))
    send_offset([busy], now=NOW, files=2, budget=3, end=END, limit=10)
    # The DP ran over the merged day (MOST_EXPORTS exports), not the 200.
    assert _coarse.cache_info().misses == 1
    assert _table.cache_info().misses == 1
    assert len(_table(_coarse(busy, END), END, 10)) == MOST_EXPORTS + 1
    assert _table.cache_info().hits == 1
