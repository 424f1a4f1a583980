"""The devstack process's resident memory, for bounded-work tests: ``VmRSS`` now and ``VmHWM``
(the peak) since the last reset, and its CPU time. Linux only (``/proc/self``); elsewhere the
memory figures are None.

The function runs in this process (as one Lambda container runs one request), so the peak
growth over a request, requests sent one at a time, bounds what the function held; moto and
the S3 front count too, which only makes the figure larger.
"""

from __future__ import annotations

import resource
from pathlib import Path

__all__ = ["memory_report", "reset_peak"]

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


def _field(name: str) -> int | None:
    try:
        text = _STATUS.read_text(encoding="ascii")
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith(f"{name}:"):
            return int(line.split()[1]) * 1024  # kB
    return None


def memory_report() -> dict[str, float | None]:
    """``{"rss_bytes", "peak_bytes", "cpu_seconds"}``: resident memory now, its peak since the
    reset, and the CPU time the process has used (all threads; a loaded machine's waits are
    not in it, so a bound on it is not flaky)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "rss_bytes": _field("VmRSS"),
        "peak_bytes": _field("VmHWM"),
        "cpu_seconds": usage.ru_utime + usage.ru_stime,
    }


def reset_peak() -> bool:
    """Start the peak afresh from the current resident size ("5" resets VmHWM, Linux 4.0+)."""
    try:
        _CLEAR_REFS.write_text("5", encoding="ascii")
    except OSError:
        return False
    return True
