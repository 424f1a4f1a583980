"""`make demo`: devstack + daemon on a demo folder; a dropped file lands; Ctrl-C stops all."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from support.devstack import wait_for

_REPO = Path(__file__).resolve().parents[2]


def test_demo_delivers_a_dropped_file_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    demo = tmp_path / "demo"
    env = {k: v for k, v in os.environ.items() if not k.startswith("EXPORTSYNC_")}
    env["PYTHONPATH"] = os.pathsep.join(str(_REPO / r) for r in ("daemon", "lambda", "devstack"))
    log = tmp_path / "demo.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "exportsync_devstack.demo", "--dir", str(demo)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,  # its own process group, like a terminal's foreground job
        )
    try:
        assert wait_for(lambda: "daemon_ready" in log.read_text(), 60), log.read_text()
        (demo / "export" / "dropped.csv").write_text("a,b\n1,2\n")

        def shown() -> str:
            done = subprocess.run(
                [sys.executable, "-m", "exportsync_devstack.show", str(demo / "devstack.json")],
                capture_output=True,
                text=True,
                env=env,
                check=True,
                timeout=30,
            )
            return done.stdout

        # The seeded sample session lands in DynamoDB, both CSVs in S3.
        assert wait_for(lambda: "(1 items)" in shown(), 60), log.read_text()
        assert wait_for(lambda: "dropped.csv" in shown(), 60), log.read_text()
        listing = shown()
        assert "activity.csv" in listing
        assert "morning-run" not in listing  # sessions go to DynamoDB, not S3
        # Ctrl-C in a terminal signals the whole foreground process group.
        os.killpg(process.pid, signal.SIGINT)
        assert process.wait(30) == 0
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    text = log.read_text()
    assert "exportsync demo stopped (daemon exit code 0)" in text
    assert (demo / "api_key").read_text().strip() not in text
