"""The backlog in summary: what waits, and how many counted requests it needs.

No I/O and no imports from the rest of the daemon (only the wire contract's limits): the spool
computes it, the pacing policy and `status` read it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["ENTRY_OVERHEAD_BYTES", "Backlog", "requests_needed"]

# One POST /batch carries up to this many entries (files, sessions, presign asks).
# Part headers and the manifest line: what one more file adds to a request beyond its bytes.
ENTRY_OVERHEAD_BYTES = 400


@dataclass(frozen=True)
class Backlog:
    """What is due, as the pacing policy and `status` see it."""

    items: int
    bytes: int
    requests_needed: int
    oldest_at: float | None  # when the longest-waiting item arrived
    newest_at: float | None  # when the latest one arrived
    arrived_sum: float | None = None  # the items' arrival instants summed (None: not known)

    def held(self, now: float) -> float:
        """File-seconds the waiting items have been held so far (0 when not known)."""
        if self.arrived_sum is None:
            return 0.0
        return max(0.0, self.items * now - self.arrived_sum)


def requests_needed(
    entries: int, inline_bytes: int, *, inline_max_bytes: int, max_entries: int
) -> int:
    """Counted requests for `entries` items holding `inline_bytes` to send inline.

    Counted without reading the files: a session file as one entry, inline bytes uncompressed
    (so an upper bound where gzip pays), a large file as one presign ask.
    """
    if entries <= 0:
        return 0
    return max(1, math.ceil(entries / max_entries), math.ceil(inline_bytes / inline_max_bytes))
