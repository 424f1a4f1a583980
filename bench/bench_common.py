"""Shared pieces of the benchmarks: source roots on sys.path, timing, scratch space, quiet logs.

Every figure the benchmarks report is a ratio against a baseline measured in the same run, so
nothing here knows what a "fast" machine is; it only makes measurements comparable.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

__all__ = [
    "REPO",
    "Timing",
    "cpu_seconds",
    "filesystem_of",
    "quiet_daemon_logs",
    "ratio",
    "rss_bytes",
    "setup_paths",
    "time_rounds",
]

REPO = Path(__file__).resolve().parents[1]
_SOURCE_ROOTS = ("daemon", "lambda", "devstack", "tests")


def setup_paths() -> None:
    """Make the source roots (and tests/, for `support`) importable, as pytest's pythonpath does."""
    for root in reversed(_SOURCE_ROOTS):
        path = str(REPO / root)
        if path not in sys.path:
            sys.path.insert(0, path)


_devnull: TextIO | None = None


def quiet_daemon_logs() -> None:
    """Configure the daemon's logging as it runs (JSON, info) but into /dev/null.

    The log lines are still rendered, so their cost stays part of what is measured; they are just
    not printed over the summary.
    """
    global _devnull  # noqa: PLW0603 -- one handle for the whole run, closed at exit
    setup_paths()
    from exportsync.logs import configure_logging  # noqa: PLC0415 -- needs setup_paths() first

    if _devnull is None:
        _devnull = open(os.devnull, "w")  # noqa: SIM115 -- lives as long as the process
    configure_logging("json", "info", stream=_devnull)


class Timing:
    """Seconds per round for one measured thing; the median is what ratios use."""

    def __init__(self) -> None:
        self.rounds: list[float] = []

    @property
    def median(self) -> float:
        return statistics.median(self.rounds)

    def as_dict(self) -> dict[str, Any]:
        return {"median_s": round(self.median, 6), "rounds_s": [round(r, 6) for r in self.rounds]}


def time_rounds(rounds: int, steps: dict[str, Callable[[int], None]]) -> dict[str, Timing]:
    """Run each step once per round, interleaved (a, b, c, a, b, c ...), timing each call.

    Interleaving spreads slow moments of the machine (another process, a cache flush) over all
    the steps instead of one of them, which keeps the ratios between them honest.
    """
    timings = {name: Timing() for name in steps}
    for n in range(rounds):
        for name, step in steps.items():
            started = time.perf_counter()
            step(n)
            timings[name].rounds.append(time.perf_counter() - started)
    return timings


def ratio(numerator: float, denominator: float) -> float:
    """numerator / denominator, rounded for reports; infinity when the baseline took no time."""
    if denominator <= 0:
        return float("inf")
    return round(numerator / denominator, 3)


def filesystem_of(path: Path) -> str:
    """The filesystem type holding `path` (Linux /proc/mounts), or "unknown".

    fsync costs nothing on tmpfs, so the spool's overhead is only meaningful on a real disk.
    """
    try:
        mounts = Path("/proc/mounts").read_text().splitlines()
    except OSError:
        return "unknown"
    target = os.path.realpath(path)
    best, fs_type = "", "unknown"
    for line in mounts:
        fields = line.split()
        if len(fields) < 3:
            continue
        mount_point = fields[1].replace("\\040", " ")
        inside = target == mount_point or target.startswith(mount_point.rstrip("/") + "/")
        if inside and len(mount_point) > len(best):
            best, fs_type = mount_point, fields[2]
    return fs_type


def rss_bytes(pid: int) -> int:
    """A process's resident set (VmRSS) in bytes, from /proc; 0 once it has ended."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def cpu_seconds(pid: int) -> float:
    """utime + stime of a whole process (all its threads), in seconds, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
