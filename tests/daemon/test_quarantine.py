"""Poison-pill quarantine with real processes: a file that kills the daemon twice is failed.

The daemon runs as `python -c WRAPPER run --config ...`: the wrapper swaps in a session parser
that ends the process with os._exit (as a crash in a C extension or the OOM killer would: no
exception, no cleanup) whenever it reads a file holding POISON, then calls the real `main`.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from exportsync.spool import MAX_CRASHES, Spool
from support.devstack import wait_for

_REPO = Path(__file__).resolve().parents[2]
_DIED = 70
_WRAPPER = f"""
import os, sys
from exportsync import batcher
real = batcher.parse_session_file
def parse(data, **kwargs):
    if b"POISON" in data:
        os._exit({_DIED})
    return real(data, **kwargs)
batcher.parse_session_file = parse
from exportsync.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _config(tmp_path: Path) -> Path:
    export = tmp_path / "export"
    export.mkdir()
    doc: dict[str, dict[str, Any]] = {
        "watch": {"dir": str(export), "settle_seconds": 0.2},
        # Nothing listens there: the healthy file simply waits, which is not what is tested.
        "api": {
            "url": "http://127.0.0.1:9/prod",
            "api_key": "k-quarantine-test-0123456789",
            "user_id": "alice",
        },
        "state": {"dir": str(tmp_path / "state")},
        "log": {"format": "json", "level": "info"},
    }
    text = "".join(
        f"[{name}]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in values.items())
        for name, values in doc.items()
    )
    path = tmp_path / "exportsync.toml"
    path.write_text(text)
    path.chmod(0o600)
    return path


def _start(config: Path, log: Path) -> subprocess.Popen[bytes]:
    env = dict(os.environ)
    env.pop("EXPORTSYNC_API_KEY", None)
    env["PYTHONPATH"] = os.pathsep.join(str(_REPO / r) for r in ("daemon", "lambda", "devstack"))
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-c", _WRAPPER, "run", "--config", str(config)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )


def _events(log: Path) -> list[dict[str, Any]]:
    out = []
    for line in log.read_text(errors="replace").splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out


def test_a_file_that_kills_the_daemon_twice_is_failed_and_the_daemon_stays_up(
    tmp_path: Path,
) -> None:
    config = _config(tmp_path)
    log = tmp_path / "daemon.log"
    export = tmp_path / "export"
    (export / "poison.session.json").write_text(
        '{"timestamp": "2026-11-25T10:00:00Z", "x": "POISON"}'
    )
    (export / "good.session.json").write_text('{"timestamp": "2026-11-25T10:00:01Z"}')

    for crash in range(1, MAX_CRASHES + 1):
        process = _start(config, log)
        assert process.wait(60) == _DIED, log.read_text()[-3000:]
        with Spool.open(tmp_path / "state") as spool:
            [poison] = [i for i in spool.items() if i.path.name == "poison.session.json"]
            assert poison.state == "pending"  # the crash is counted at the next start
            assert poison.crashes == crash - 1

    process = _start(config, log)
    try:
        assert wait_for(
            lambda: (
                any(e.get("event") == "daemon_ready" for e in _events(log))
                or process.poll() is not None
            ),
            30,
        )
        assert process.poll() is None, log.read_text()[-3000:]
        # It keeps working: the good file is parsed and tried (nothing listens, so it waits).
        assert wait_for(
            lambda: any(e.get("event") == "api_unreachable" for e in _events(log)), 30
        ), log.read_text()[-3000:]
        assert process.poll() is None
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0
    quarantined = [e for e in _events(log) if e.get("event") == "item_quarantined"]
    assert [e["crashes"] for e in quarantined] == [MAX_CRASHES]
    with Spool.open(tmp_path / "state") as spool:
        states = {i.path.name: (i.state, i.last_error) for i in spool.items()}
    assert states["poison.session.json"] == (
        "failed",
        f"stopped the daemon {MAX_CRASHES} times; not touched again",
    )
    assert states["good.session.json"][0] == "pending"
