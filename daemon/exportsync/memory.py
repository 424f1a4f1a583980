"""Memory handed back to the system once the daemon goes idle after work.

After a burst, the spool connection's page cache stays full (SQLite's default `cache_size`, about
2 MB) and glibc keeps what the intake and delivery threads freed in their malloc arenas, free but
resident: an idle daemon needs neither. `Connection.release_memory` empties the cache (SQLite
reads pages again when asked); `trim_heap` has glibc give its free pages back (`malloc_trim`),
which only pays once the cache's pages are among them. Where the C library has no
`malloc_trim` (macOS, musl) it does nothing.
"""

from __future__ import annotations

import ctypes
import functools
import sys
from collections.abc import Callable

__all__ = ["trim_heap"]


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        trim = ctypes.CDLL(None).malloc_trim  # the process's own C library
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


def trim_heap() -> bool:
    """Return the C heap's free pages to the system (every thread's arena); whether the C
    library could (glibc's `malloc_trim`; False elsewhere)."""
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True
