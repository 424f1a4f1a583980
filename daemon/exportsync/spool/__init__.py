"""The durable spool: one SQLite file in the state directory that remembers every file seen.

An item is written here (path, kind, size, mtime, sha256) before anything else happens to it,
and moves ``pending → sending → delivered | failed``. The database runs in WAL mode with
``synchronous=FULL`` so a committed transition survives a power cut; an item left in ``sending``
by a crash goes back to ``pending`` at the next start, and the server's idempotency makes the
replay harmless.

The schema lives in `migrations`: opening a spool written by an older exportsync upgrades it in
place. Items are unique by (path, sha256): an identical re-save is recognised and not sent again,
while a changed file becomes a new item (a new version) that supersedes a pending older one (its
content is gone from the file, so it is never sent). The spool also holds the quota ledger's rows,
so the day's request count survives restarts together with the items it was spent on.

Scale: files are recorded in batches (`record_many`: one transaction, one fsync); a start-up scan
compares the folder against `versions()`, one query; `item_counts` is kept by triggers so `counts()`
reads four rows whatever the spool's size; `prune_delivered` drops old delivered rows except those
that still describe a file in the folder (dedupe needs them).

The connection is `spool.connection`; each table's statements are a store of their own
(`items` and their `states`, `quarantine`, `uploads`, `quota`, `meta`), and `Spool` is all of
them on one connection.
"""

from __future__ import annotations

from pathlib import Path

from exportsync.errors import SpoolCorrupt
from exportsync.spool.connection import MEMORY, set_aside
from exportsync.spool.items import (
    PRUNE_CHUNK,
    RECLAIM_PAGES,
    STATES,
    Item,
    ItemStore,
    NewVersion,
    RecordResult,
    State,
    VersionKey,
)
from exportsync.spool.meta import (
    API_KEY_REFUSED,
    API_STATE_KEY,
    API_UNREACHABLE,
    SEND_NOW_KEY,
    MetaStore,
)
from exportsync.spool.quarantine import MAX_CRASHES, QuarantineStore
from exportsync.spool.quota import QuotaStore
from exportsync.spool.states import StateStore
from exportsync.spool.uploads import UploadStore

__all__ = [
    "API_KEY_REFUSED",
    "API_STATE_KEY",
    "API_UNREACHABLE",
    "MAX_CRASHES",
    "PRUNE_CHUNK",
    "RECLAIM_PAGES",
    "SEND_NOW_KEY",
    "STATES",
    "Item",
    "NewVersion",
    "RecordResult",
    "Spool",
    "State",
    "VersionKey",
]


class Spool(ItemStore, StateStore, QuarantineStore, UploadStore, QuotaStore, MetaStore):
    """The spool database: every table's store on one connection (`Connection`)."""

    @staticmethod
    def path_in(state_dir: Path) -> Path:
        return state_dir / "spool.sqlite3"

    @classmethod
    def open(cls, state_dir: Path) -> Spool:
        """Open (creating when needed) the spool in `state_dir`."""
        return cls(cls.path_in(state_dir))

    @classmethod
    def open_or_replace(cls, state_dir: Path, *, now: float) -> tuple[Spool, Path | None]:
        """Open the spool; a damaged one is first renamed ``spool.sqlite3.corrupt-<UTC time>``
        (its WAL and SHM beside it) and a fresh one started. Returns the spool and where the
        damaged file went, None when it was healthy."""
        path = cls.path_in(state_dir)
        try:
            return cls(path), None
        except SpoolCorrupt:
            aside = set_aside(path, now)
        return cls(path), aside

    @classmethod
    def in_memory(cls) -> Spool:
        """An empty spool that touches no disk (for reporting on a state dir that has none)."""
        return cls(Path(MEMORY))

    def __enter__(self) -> Spool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
