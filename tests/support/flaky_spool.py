"""A real SQLite spool whose writes can be made to fail the way a full disk fails them.

`FlakySpool` is `Spool` itself; while `full` is set (or for the next `fail_next` writes), every
transaction runs its statements and then fails with SQLite's own "database or disk is full" before
it commits, so it is rolled back exactly as when the state disk fills mid-request.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from exportsync.spool import Spool

__all__ = ["DISK_FULL", "FlakySpool"]

DISK_FULL = "database or disk is full"


class FlakySpool(Spool):
    """A spool whose writes fail while `full` is True, or for the next `fail_next` writes."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.full = False
        self.fail_next = 0
        self.failed_writes = 0

    @classmethod
    def open(cls, state_dir: Path) -> FlakySpool:
        return cls(cls.path_in(state_dir))

    def _failing(self) -> bool:
        if self.full:
            return True
        if self.fail_next > 0:
            self.fail_next -= 1
            return True
        return False

    @contextmanager
    def _tx(self, *, sync: bool = True) -> Iterator[sqlite3.Connection]:
        with super()._tx(sync=sync) as db:
            yield db
            if self._failing():
                self.failed_writes += 1
                # Inside the transaction: Spool._tx rolls it back and raises SpoolError.
                raise sqlite3.OperationalError(DISK_FULL)
