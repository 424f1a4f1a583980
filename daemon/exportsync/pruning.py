"""Pruning old delivered items a chunk at a time, between delivery steps.

A pass over a large spool (a million delivered rows) takes many seconds; done at once it would hold
the delivery loop (and the lock the intake records through) for all of them. `Pruner.step()` does
one bounded piece: a chunk of rows deleted in one short transaction (`Spool.prune_chunk`), or, once
the rows are gone, a slice of the freed pages given back to the disk (`Spool.reclaim`). The loop
calls it once per turn while a pass is under way, and a delivery step runs between two pieces.
Passes start at start-up and then every `PRUNE_EVERY_SECONDS`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from exportsync.clock import Clock
from exportsync.logs import get_logger
from exportsync.spool import PRUNE_CHUNK, Spool

__all__ = ["PRUNE_EVERY_SECONDS", "Pruner"]

log = get_logger(__name__)

# Old delivered items are pruned at start and then this often.
PRUNE_EVERY_SECONDS = 86400.0


class Pruner:
    """One pruning pass at a time, stepped by the daemon's loop."""

    def __init__(
        self,
        spool: Callable[[], Spool],
        clock: Clock,
        *,
        keep_days: Callable[[], float],
        current: Callable[[Path], tuple[int, int, int] | None],
        chunk: int = PRUNE_CHUNK,
    ) -> None:
        self._spool = spool  # the daemon's spool as it is now (it may be rebuilt)
        self._clock = clock
        self._keep_days = keep_days  # read at each pass: a reload may change it
        self._current = current
        self._chunk = chunk
        self.next_at = clock.monotonic()  # when the next pass begins (monotonic)
        self._before: float | None = None  # the pass under way: rows delivered before this
        self._after: int | None = 0  # where its next chunk starts; None: rows done, reclaiming
        self._dropped = 0

    @property
    def busy(self) -> bool:
        """A pass is under way: the loop steps it again without waiting."""
        return self._before is not None

    def due(self, monotonic: float) -> bool:
        return self.busy or monotonic >= self.next_at

    def step(self) -> None:
        """One bounded piece of the pass (beginning one when none is under way)."""
        if self._before is None:
            self.next_at = self._clock.monotonic() + PRUNE_EVERY_SECONDS
            self._dropped = 0
            days = self._keep_days()
            if days <= 0:
                return
            self._before, self._after = self._clock.time() - days * 86400, 0
        spool = self._spool()
        if self._after is not None:
            dropped, self._after = spool.prune_chunk(
                self._before, current=self._current, after=self._after, limit=self._chunk
            )
            self._dropped += dropped
            if self._after is not None or self._dropped:
                return  # more rows next time, or the freed pages to give back
        elif not spool.reclaim():
            return
        if self._dropped:
            log.info("spool_pruned", dropped=self._dropped, keep_delivered_days=self._keep_days())
        self._before = None

    def run_pass(self) -> int:
        """A whole pass at once (tests, tools); the number of rows dropped."""
        self.step()
        while self.busy:
            self.step()
        return self._dropped
