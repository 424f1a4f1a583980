"""How long items sat in `sending` beyond their timeout: the `stuck` figure of `make reliability`.

A thread samples the spool (read-only, its own connection, so the daemon's locks are untouched)
twice a second and follows each item's stay in `sending`. A stay may last the request timeout
plus `margin`; what goes beyond counts, except the time the state disk was full (nothing can be
recorded then; the daemon must catch up once room returns). The figure is the seconds beyond,
summed over items (each item's longest stay).
"""

from __future__ import annotations

import sqlite3
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["SendingWatch"]

SAMPLE_SECONDS = 0.5


@dataclass
class _Stay:
    first: float
    last: float


@dataclass
class SendingWatch:
    spool: Path
    allowed: float  # the request timeout plus a margin
    stays: dict[tuple[bytes, int, float], _Stay] = field(default_factory=dict)
    full: list[tuple[float, float]] = field(default_factory=list)  # (start, end) monotonic
    _full_since: float | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="sending-watch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)

    def disk_full(self, full: bool) -> None:
        now = time.monotonic()
        if full:
            self._full_since = now
        elif self._full_since is not None:
            self.full.append((self._full_since, now))
            self._full_since = None

    def _run(self) -> None:
        while not self._stop.wait(SAMPLE_SECONDS):
            rows = self._sample()
            now = time.monotonic()
            for path, item_id, updated_at in rows:
                key = (
                    bytes(path) if isinstance(path, bytes) else str(path).encode(),
                    item_id,
                    updated_at,
                )
                stay = self.stays.setdefault(key, _Stay(now, now))
                stay.last = now

    def _sample(self) -> list[tuple[object, int, float]]:
        if not self.spool.exists():
            return []
        try:
            db = sqlite3.connect(f"file:{self.spool}?mode=ro", uri=True, timeout=1.0)
        except sqlite3.Error:
            return []
        try:
            return list(
                db.execute("SELECT path, id, updated_at FROM items WHERE state = 'sending'")
            )
        except sqlite3.Error:
            return []  # damaged, replaced, being rebuilt: the daemon's to find
        finally:
            db.close()

    def _counted(self, stay: _Stay) -> float:
        spent = stay.last - stay.first
        for start, end in self.full:
            spent -= max(0.0, min(end, stay.last) - max(start, stay.first))
        return spent

    def stuck_seconds(self) -> float:
        """Seconds beyond `allowed`, each item's longest stay, summed over items."""
        worst: dict[tuple[bytes, int], float] = {}
        for (path, item_id, _), stay in self.stays.items():
            beyond = max(0.0, self._counted(stay) - self.allowed)
            worst[(path, item_id)] = max(worst.get((path, item_id), 0.0), beyond)
        return sum(worst.values())

    def worst(self) -> list[str]:
        """The stays that went beyond, for the report."""
        return [
            f"stuck: {path.decode(errors='replace')} (item {item_id}) in sending"
            f" {self._counted(stay):.1f} s (allowed {self.allowed:g} s)"
            for (path, item_id, _), stay in self.stays.items()
            if self._counted(stay) > self.allowed
        ]
