"""The fleet's users: their folders and configs, and the seeded schedule of what they export.

Each export is 1-3 CSVs of seeded rows and a session file of two sessions (without user_id: the
daemon fills in its own); a user's first export also holds one session forged in the next user's
name, which the backend must refuse.
"""

from __future__ import annotations

import functools
import hashlib
import json
import random
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["FORGED_FILE", "FleetDaemon", "schedule", "write_config"]

FORGED_FILE = "forged.session.json"
_FORGED_AT = "2026-12-31T23:59:59+00:00"  # no user ever exports a session at this time


@dataclass
class FleetDaemon:
    """One user: their key, their folder, what they exported (to check against the backend)."""

    user: str
    key: str = field(repr=False)
    base: Path
    process: subprocess.Popen[bytes] | None = None
    objects: dict[str, str] = field(default_factory=dict)  # sha256 -> filename
    sessions: set[str] = field(default_factory=set)  # timestamps
    forged_file: str | None = None

    @property
    def export(self) -> Path:
        return self.base / "export"

    @property
    def config(self) -> Path:
        return self.base / "exportsync.toml"


def write_config(daemon: FleetDaemon, api_url: str) -> None:
    daemon.export.mkdir(parents=True, exist_ok=True)
    key_file = daemon.base / "api_key"
    key_file.write_text(daemon.key + "\n")
    key_file.chmod(0o600)
    doc: dict[str, dict[str, object]] = {
        "watch": {"dir": str(daemon.export)},
        "api": {
            "url": api_url,
            "api_key_file": str(key_file),
            "user_id": daemon.user,
            "timeout_seconds": 10,
        },
        # The fleet's exports all happen within a minute: every request of the day goes as soon
        # as the folder is quiet, none is held back to spread the day (the pacing's knobs).
        "quota": {
            "quiet_seconds": 1.0,
            "prompt_requests": 10,
            "reserve_requests": 0,
        },
        "state": {"dir": str(daemon.base / "state")},
        "log": {"format": "json", "level": "info"},
    }
    lines = []
    for name, values in doc.items():
        lines.append(f"[{name}]")
        lines += [f"{key} = {json.dumps(value)}" for key, value in values.items()]
    daemon.config.write_text("\n".join(lines) + "\n")


def schedule(
    daemons: list[FleetDaemon], exports: int, rng: random.Random
) -> list[tuple[float, Callable[[], None]]]:
    """(seconds from start, write one export) for every daemon's every export, in time order."""
    steps: list[tuple[float, Callable[[], None]]] = []
    for index, daemon in enumerate(daemons):
        offset, interval = rng.uniform(0.5, 3.0), rng.uniform(2.0, 6.0)
        victim = daemons[(index + 1) % len(daemons)].user if len(daemons) > 1 else None
        for number in range(exports):
            files = [
                (
                    f"export-{number}-{part}.csv",
                    "".join(
                        f"{daemon.user},{number},{part},{row},{rng.randrange(10**9)}\n"
                        for row in range(rng.randint(1, 40))
                    ).encode(),
                )
                for part in range(rng.randint(1, 3))
            ]
            forged_by = victim if number == 0 else None
            write = functools.partial(_export, daemon, number, files, forged_by)
            steps.append((offset + number * interval, write))
    return sorted(steps, key=lambda step: step[0])


def _export(
    daemon: FleetDaemon, number: int, files: list[tuple[str, bytes]], victim: str | None
) -> None:
    for name, data in files:
        (daemon.export / name).write_bytes(data)
        daemon.objects[hashlib.sha256(data).hexdigest()] = name
    stamps = [f"2026-11-2{number % 8 + 1}T{hour:02d}:00:00+00:00" for hour in range(2)]
    sessions = [
        {"timestamp": stamp, "steps": 100 * number + hour} for hour, stamp in enumerate(stamps)
    ]
    (daemon.export / f"export-{number}.session.json").write_text(json.dumps(sessions))
    daemon.sessions.update(stamps)
    if victim is not None:
        daemon.forged_file = FORGED_FILE
        forged = {"user_id": victim, "timestamp": _FORGED_AT, "steps": 1}
        (daemon.export / daemon.forged_file).write_text(json.dumps(forged))
