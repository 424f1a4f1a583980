"""Entries of one request stored concurrently on a bounded thread pool, answered in order.

boto3 *clients* are thread-safe (resources are not; the stores use clients only), so the
workers share the module-scope clients. An exception from one entry's write becomes that
entry's ``retry`` or ``rejected`` answer (``faults.classify``) and never reaches the others.
An entry not started by the pool's deadline answers ``retry`` untried, so a slow or throttled
store makes the function answer in time instead of timing out after some entries were stored.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

from aws_lambda_powertools import Logger

from exportsync_wire import (
    BatchFileResultJson,
    BatchPresignResultJson,
    BatchResultJson,
    BatchSessionResultJson,
    PresignResultJson,
    SessionResultJson,
    Status,
    UploadResultJson,
)

from .faults import classify

__all__ = ["DEFAULT_WORKERS", "LATE", "UNHURRIED", "BatchEntry", "Entry", "Pool", "Result"]

DEFAULT_WORKERS = 16
LATE = "deadline: the function ran short of time before this entry; send it again"

# The answer an entry gives: its route's result (exportsync_wire.shapes), in /batch with its kind.
Result = TypeVar(
    "Result",
    UploadResultJson,
    SessionResultJson,
    PresignResultJson,
    BatchFileResultJson,
    BatchSessionResultJson,
    BatchPresignResultJson,
)
# What /batch makes of an entry: its answer tagged with its kind.
_Tagged = TypeVar("_Tagged", BatchFileResultJson, BatchSessionResultJson, BatchPresignResultJson)
_Job = TypeVar("_Job", bound="_Laned")
_Answer = TypeVar("_Answer")

logger = Logger(service="exportsync-api", child=True)


class _Laned(Protocol):
    @property
    def lane(self) -> str | None: ...


@dataclass(frozen=True)
class Entry(Generic[Result]):
    """One entry's answer: ``fields`` when it is decided already (a rejection), else what
    ``work`` (the store write) answers. Until its write answers, an entry's status is
    ``retry``: ``fields`` then says what it answers, with why, when the write cannot run."""

    fields: Result
    work: Callable[[], Result] | None = field(default=None, compare=False)
    # Entries writing the same item or object share a lane and run one after another, in
    # request order: the last version of a session wins, as it did before writes overlapped.
    lane: str | None = None

    def answer(self, late: bool) -> Result:
        """Run the work (unless `late`); its own fault becomes its answer."""
        if self.work is None:
            return self.fields
        if late:
            return {**self.fields, "status": Status.RETRY, "error": LATE}
        try:
            return self.work()
        except Exception as exc:  # one entry's fault, whatever it is, stays with that entry
            fault = classify(exc)
            # AWS's message (it may name the account and role) goes here, never to the answer.
            logger.warning(
                "entry_fault",
                error_type=type(exc).__name__,
                status=fault.status,
                error=fault.error,
                detail=fault.detail,
            )
            return {**self.fields, "status": fault.status, "error": fault.error}

    def tagged(self, tag: Callable[[Result], _Tagged]) -> Entry[_Tagged]:
        """The same entry answering what it answers with its /batch ``kind`` (`tag` adds it)."""
        work = self.work
        return Entry(tag(self.fields), None if work is None else lambda: tag(work()), self.lane)


BatchEntry = (
    Entry[BatchFileResultJson] | Entry[BatchSessionResultJson] | Entry[BatchPresignResultJson]
)


@dataclass(frozen=True)
class Pool:
    """How one request's entries run: ``workers`` at a time, none started after ``deadline``
    (a ``clock()`` reading; None: no deadline)."""

    workers: int = DEFAULT_WORKERS
    deadline: float | None = None
    clock: Callable[[], float] = field(default=time.monotonic, compare=False)

    def run(self, entries: Sequence[Entry[Result]]) -> list[Result]:
        """Every entry's answer, in the order given."""
        return self._schedule(entries, lambda entry: entry.answer(self._late()))

    def run_batch(self, entries: Sequence[BatchEntry]) -> list[BatchResultJson]:
        """Every entry's answer, of whichever kind, in the order given."""
        return self._schedule(entries, lambda entry: entry.answer(self._late()))

    def _late(self) -> bool:
        return self.deadline is not None and self.clock() >= self.deadline

    def _schedule(
        self, entries: Sequence[_Job], answer: Callable[[_Job], _Answer]
    ) -> list[_Answer]:
        lanes: dict[object, list[int]] = {}
        for index, entry in enumerate(entries):
            lanes.setdefault(entry.lane if entry.lane is not None else index, []).append(index)
        answers: dict[int, _Answer] = {}

        def run_lane(indexes: list[int]) -> None:
            for index in indexes:
                answers[index] = answer(entries[index])

        if len(lanes) <= 1 or self.workers <= 1:
            for indexes in lanes.values():
                run_lane(indexes)
        else:
            with ThreadPoolExecutor(max_workers=min(self.workers, len(lanes))) as pool:
                list(pool.map(run_lane, lanes.values()))  # list(): re-raises nothing, answers do
        return [answers[index] for index in range(len(entries))]


# The default pool: no deadline (tests and callers that set none).
UNHURRIED = Pool()
