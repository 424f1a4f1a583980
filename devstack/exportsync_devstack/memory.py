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

__all__ = ["count_handler_cpu", "memory_report", "reset_peak"]

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


# CPU seconds the function itself ran (its own thread, per request): moto's and the S3 front's
# share of the process is AWS's work, not the function's.
_handler_cpu = [0.0]


def count_handler_cpu(seconds: float) -> None:
    """Add one invocation's thread CPU time (the gateway runs one request at a time)."""
    _handler_cpu[0] += seconds


def memory_report() -> dict[str, float | None]:
    """``{"rss_bytes", "peak_bytes", "cpu_seconds", "handler_cpu_seconds"}``: resident memory
    now, its peak since the reset, the CPU time the process has used (all threads), and the part
    of it the function's own invocations used. CPU time leaves out a loaded machine's waits, so
    a bound on it is not flaky."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "rss_bytes": _field("VmRSS"),
        "peak_bytes": _field("VmHWM"),
        "cpu_seconds": usage.ru_utime + usage.ru_stime,
        "handler_cpu_seconds": _handler_cpu[0],
    }


def reset_peak() -> bool:
    """Start the peak afresh from the current resident size ("5" resets VmHWM, Linux 4.0+)."""
    try:
        _CLEAR_REFS.write_text("5", encoding="ascii")
    except OSError:
        return False
    return True
