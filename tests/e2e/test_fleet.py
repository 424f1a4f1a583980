"""A short seeded `make fleet`: three real daemons, their own keys and folders, one devstack
with faults on; users stay apart, no key goes past its plan, nothing is lost."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest

from exportsync_devstack.fleet import FleetOptions, run_fleet


# Deadlines against a hang, not a speed claim: under `make test`'s parallel workers on a busy
# 2-core runner, the spools' last "delivered" can lag the last object by more than 22 s (90 / 4).
@pytest.mark.timeout(300)
def test_three_daemons_stay_apart_within_their_plans_and_lose_nothing(tmp_path: Path) -> None:
    out = io.StringIO()
    options = FleetOptions(
        workdir=tmp_path,
        daemons=3,
        exports=2,
        seed=7,
        fault_rate=0.1,
        deadline=180.0,
        measure_requests=10,
    )
    report = run_fleet(options, out)
    assert report.problems == []
    assert (report.refused, report.lost, report.forged) == (0, 0, 3)
    assert report.files >= 3 * (2 * 2 + 1)  # per export a CSV or more and a session file
    lines = out.getvalue().splitlines()
    assert re.fullmatch(
        r"fleet: 3 daemons, \d+ requests, \d+ files, refused 0, lost 0, isolation ok", lines[-1]
    )
    assert any("/session x100" in line and "entries/s per core" in line for line in lines)
