"""The long versions of tests/e2e's seeded runs (`make soak`; `make test` runs the short ones).

More seeds of the chaos storm, and the thousand-file backlog on the real plan. `make soak` then
runs `make reliability` and `make fleet`, the other two long proofs, as their own commands.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from e2e import test_chaos, test_quota_economy

SEEDS = [int(s) for s in os.environ.get("EXPORTSYNC_SOAK_CHAOS_SEEDS", "7,1,2").split(",")]


@pytest.mark.timeout(240)
@pytest.mark.parametrize("seed", SEEDS)
def test_nothing_is_lost_through_more_seeded_storms(tmp_path: Path, seed: int) -> None:
    test_chaos.test_nothing_is_lost_through_a_seeded_storm(tmp_path, seed)


# A deadline, not a speed claim: a busy 2-core runner takes minutes over what is seconds alone.
@pytest.mark.timeout(600)
def test_a_thousand_file_backlog_arrives_on_at_most_three_requests(tmp_path: Path) -> None:
    test_quota_economy.backlog_arrives_on_at_most_three_requests(tmp_path, 900, 100, deadline=480)
