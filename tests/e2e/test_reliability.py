"""The short seeded version of `make reliability` (tests/support/reliability.py; `make soak` runs
the long one).

Real `exportsync run` processes against a devstack failing a fifth of its requests: a few kill -9
aimed at a request, a presigned PUT or a spool write, a third of the hostile corpus before the
start and while running, CSVs deleted, truncated and rewritten mid-send, the spool overwritten
with garbage between two runs, a full state dir (as root) and wall-clock jumps. Nothing may be lost
or duplicated, every bad input must be `failed` with a reason and no daemon may exit by itself.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from support.reliability import Options, run

SEED = int(os.environ.get("EXPORTSYNC_RELIABILITY_SEED", "20261129"))
KILLS = 3


@pytest.mark.timeout(300)
def test_a_short_torture_run_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    options = Options(
        seed=SEED,
        kills=KILLS,
        operations=60,
        corpus_every=3,
        settle_deadline=120.0,
        base=tmp_path / "run",
        keep=True,
    )
    outcome = run(options)
    report = "\n".join([*outcome.notes, *outcome.verdict.all(), outcome.last_line()])
    assert outcome.ok, report
    assert outcome.kills == KILLS, report
    assert outcome.bad_inputs >= 30, report  # two rounds of a third of the corpus, and mid-send
