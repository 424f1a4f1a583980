"""`bench/run.py --only live --quick` works: the harness that `make bench` measures the local side
with while delivery runs. Nothing here is about speed; only that every figure is produced."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from support.devstack import command_env

_REPO = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(600)
def test_the_live_bench_runs_quick_and_reports_every_figure(tmp_path: Path) -> None:
    out = tmp_path / "live.json"
    done = subprocess.run(
        [
            sys.executable,
            str(_REPO / "bench" / "run.py"),
            "--quick",
            "--only",
            "live",
            "--out",
            str(out),
            "--scratch",
            str(tmp_path),
        ],
        env=command_env(),
        capture_output=True,
        text=True,
        timeout=540,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    assert any(line.startswith("  live: p50 ") for line in lines), done.stdout
    live = json.loads(out.read_text())["results"]["live"]
    lat, burst, handler, idle = live["latency"], live["burst"], live["handler"], live["idle"]
    assert lat["files"] == 20
    assert lat["baseline_missed"] == 0
    assert 0 < lat["spooled_p50_ms"] <= lat["spooled_p99_ms"]
    assert 0 < lat["commit_p50_ms"] <= lat["commit_p99_ms"]
    assert lat["slowest_split_ms"]
    assert burst["missed"] == 0
    assert burst["walk_files"] >= burst["files"] == 100
    assert burst["requests"] >= 1
    assert burst["delivered_files_per_s"] > 0
    assert burst["in_requests_s"] <= burst["delivery_window_s"]
    assert handler["entries"] == 20
    assert handler["entries_per_s"] > 0
    assert idle["rss_bytes"] > idle["bare_python_rss_bytes"] > 0
    assert idle["ready_rss_bytes"] > idle["bare_python_rss_bytes"]
    catch = live["catch_up"]
    assert catch["files"] == 100
    assert catch["missed"] == 0
    assert catch["resumed_to_spooled_s"] > 0
