"""`python -m support.skewclock OFFSET_FILE ARGS...`: `exportsync ARGS...` under a jumping clock.

The number of seconds in OFFSET_FILE (re-read at most every 0.1 s) is added to `time.time()`, as
an NTP step or a suspended laptop would move the wall clock; `time.monotonic()` is untouched, as
the kernel keeps it. A test changes the file while the daemon runs to make the clock jump.
"""

from __future__ import annotations

import contextlib
import sys
import time
from pathlib import Path

from exportsync.cli import main as exportsync_main

__all__ = ["main", "set_offset"]

_REREAD = 0.1


def set_offset(path: Path, seconds: float) -> None:
    """Jump the wall clock of every daemon started with `path` to real time + `seconds`."""
    temp = path.with_suffix(".tmp")
    temp.write_text(f"{seconds}\n")
    temp.replace(path)


def _install(path: Path) -> None:
    real_time = time.time
    state = {"offset": 0.0, "read_at": -_REREAD}

    def offset() -> float:
        now = time.monotonic()
        if now - state["read_at"] >= _REREAD:
            state["read_at"] = now
            # A file being replaced keeps the last offset.
            with contextlib.suppress(OSError, ValueError):
                state["offset"] = float(path.read_text().strip() or 0)
        return state["offset"]

    def skewed_time() -> float:
        return real_time() + offset()

    time.time = skewed_time


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args:
        print("usage: python -m support.skewclock OFFSET_FILE ARGS...", file=sys.stderr)
        return 2
    _install(Path(args[0]))  # every clock read goes through time.time, so this is enough
    return exportsync_main(args[1:])


if __name__ == "__main__":
    sys.exit(main())
