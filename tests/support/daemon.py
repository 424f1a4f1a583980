"""Run `exportsync run` as a subprocess against a devstack, and read its spool and logs."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from exportsync.spool import Item, Spool
from support.devstack import DevstackInfo, wait_for

__all__ = ["DaemonProcess", "run_daemon", "write_config"]

_REPO = Path(__file__).resolve().parents[2]
_PRIORITY = re.compile(r"^<[0-7]>")  # journald's prefix, when the log is the JOURNAL_STREAM


def write_config(
    base: Path, info: DevstackInfo, *, quick_pacing: bool = True, **sections: dict[str, Any]
) -> Path:
    """Config for `base/export`, state in `base/state`, the key in a 0600 file; returns its path.

    `quick_pacing` shortens the quiet window to 0.5 s for the tests; False keeps the default.
    """
    (base / "export").mkdir(parents=True, exist_ok=True)
    key_file = base / "api_key"
    key_file.write_text(info.api_key + "\n")
    key_file.chmod(0o600)
    doc: dict[str, dict[str, Any]] = {
        "watch": {"dir": str(base / "export")},
        "api": {
            "url": info.api_url,
            "api_key_file": str(key_file),
            "user_id": info.user_id,
            "timeout_seconds": 10,
        },
        "quota": {},
        "state": {"dir": str(base / "state")},
        "log": {"format": "json", "level": "info"},
    }
    if quick_pacing:
        doc["quota"]["quiet_seconds"] = 0.5  # keeps the suite quick; the default is 2 s
    for name, values in sections.items():
        doc.setdefault(name, {}).update(values)
    lines: list[str] = []
    for name, values in doc.items():
        lines.append(f"[{name}]")
        lines += [f"{key} = {json.dumps(value)}" for key, value in values.items()]
    path = base / "exportsync.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


@dataclass
class DaemonProcess:
    config: Path
    state_dir: Path
    process: subprocess.Popen[bytes]
    log_path: Path

    def events(self) -> list[dict[str, Any]]:
        out = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            try:
                out.append(json.loads(_PRIORITY.sub("", line, count=1)))
            except ValueError:
                continue
        return out

    def saw(self, event: str, count: int = 1) -> bool:
        seen: int = sum(e.get("event") == event for e in self.events())
        return seen >= count

    def wait_ready(self, deadline: float = 30.0) -> None:
        if not wait_for(
            lambda: self.saw("daemon_ready") or self.process.poll() is not None, deadline
        ):
            raise AssertionError(f"daemon not ready in {deadline}s:\n{self.output()}")
        if self.process.poll() is not None:
            raise AssertionError(f"daemon exited ({self.process.returncode}):\n{self.output()}")

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    def terminate(self, timeout: float = 15.0) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)

    def kill(self) -> None:
        self.process.kill()
        self.process.wait(10)


def spool_items(state_dir: Path) -> list[Item]:
    with Spool.open(state_dir) as spool:
        return spool.items(limit=100_000)


def settled(state_dir: Path, expected: int) -> bool:
    """True once `expected` items are spooled and none is pending or sending."""
    items = spool_items(state_dir)
    return len(items) >= expected and all(i.state in ("delivered", "failed") for i in items)


@contextmanager
def run_daemon(
    config: Path,
    log_name: str = "daemon",
    *,
    journal: bool = False,
    clock_offset_file: Path | None = None,
) -> Iterator[DaemonProcess]:
    """`python -m exportsync run --config CONFIG`, stdout and stderr into one log file (which
    JOURNAL_STREAM names with `journal`, as systemd does for the journal's stream).

    With `clock_offset_file` the daemon runs under support.skewclock: its wall clock is real time
    plus the seconds in that file, which the test may change while it runs.
    """
    base = config.parent
    n = len(list(base.glob(f"{log_name}-*.log")))
    log_path = base / f"{log_name}-{n}.log"
    env = dict(os.environ)
    env.pop("EXPORTSYNC_API_KEY", None)
    env.pop("EXPORTSYNC_CONFIG", None)
    roots = [str(_REPO / r) for r in ("daemon", "lambda", "devstack", "tests")]
    env["PYTHONPATH"] = os.pathsep.join(roots)
    launcher = ["exportsync"]
    if clock_offset_file is not None:
        launcher = ["support.skewclock", str(clock_offset_file)]
    with log_path.open("wb") as log:
        if journal:
            info = os.fstat(log.fileno())
            env["JOURNAL_STREAM"] = f"{info.st_dev}:{info.st_ino}"
        else:
            env.pop("JOURNAL_STREAM", None)
        process = subprocess.Popen(
            [sys.executable, "-m", *launcher, "run", "--config", str(config)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
    handle = DaemonProcess(config, base / "state", process, log_path)
    try:
        yield handle
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
