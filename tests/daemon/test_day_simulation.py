"""A working day on a fake clock: 40 exports on 10 requests a day, all delivered that day."""

from __future__ import annotations

from pathlib import Path

import pytest

from support.day_simulation import simulate_day


@pytest.mark.parametrize("seed", [8, 21])
def test_forty_exports_on_ten_requests_are_all_delivered_the_same_day(
    tmp_path: Path, seed: int
) -> None:
    result = simulate_day(tmp_path, seed=seed, exports=40, daily=10)
    assert result.items == 80  # a CSV and a session per export
    assert result.delivered_by_reset == 80
    assert result.refused == 0
    assert result.requests == result.requests_by_reset <= 10
    # An export's two files always travel together: no request carries an odd number of entries.
    assert all(n % 2 == 0 for n in result.entries_per_request)
    # Held, but never past the day: bounded by the spread between two requests (logical time).
    assert result.max_hold < 6 * 3600


def test_four_exports_each_cost_exactly_one_request(tmp_path: Path) -> None:
    result = simulate_day(tmp_path, seed=3, exports=4, daily=10)
    assert result.requests == 4
    assert result.entries_per_request == [2, 2, 2, 2]
    assert result.max_hold < 15  # the quiet window, not a pacing slot
