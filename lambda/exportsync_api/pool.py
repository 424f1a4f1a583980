"""Entries of one request stored concurrently on a bounded thread pool, answered in order.

boto3 *clients* are thread-safe (resources are not; the stores use clients only), so the
workers share the module-scope clients. An exception from one entry's write becomes that
entry's ``retry`` or ``rejected`` answer (``faults.classify``) and never reaches the others.
An entry not started by the pool's deadline answers ``retry`` untried, so a slow or throttled
store makes the function answer in time instead of timing out after some entries were stored.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from aws_lambda_powertools import Logger

from exportsync_wire import Status

from .faults import classify

__all__ = ["DEFAULT_WORKERS", "LATE", "UNHURRIED", "Entry", "Pool"]

DEFAULT_WORKERS = 16
LATE = "deadline: the function ran short of time before this entry; send it again"

Work = Callable[[], Mapping[str, Any]]

logger = Logger(service="exportsync-api", child=True)


@dataclass(frozen=True)
class Entry:
    """One entry's answer: ``fields`` alone when it is decided already (a rejection), else
    ``fields`` plus what ``work`` (the store write) adds, usually ``status``."""

    fields: Mapping[str, Any]
    work: Work | None = field(default=None, compare=False)
    # Entries writing the same item or object share a lane and run one after another, in
    # request order: the last version of a session wins, as it did before writes overlapped.
    lane: str | None = None


@dataclass(frozen=True)
class Pool:
    """How one request's entries run: ``workers`` at a time, none started after ``deadline``
    (a ``clock()`` reading; None: no deadline)."""

    workers: int = DEFAULT_WORKERS
    deadline: float | None = None
    clock: Callable[[], float] = field(default=time.monotonic, compare=False)

    def run(self, entries: Sequence[Entry]) -> list[dict[str, Any]]:
        """Every entry's answer, in the order given."""
        lanes: dict[object, list[int]] = {}
        for index, entry in enumerate(entries):
            lanes.setdefault(entry.lane if entry.lane is not None else index, []).append(index)
        answers: list[dict[str, Any]] = [{} for _ in entries]

        def run_lane(indexes: list[int]) -> None:
            for index in indexes:
                answers[index] = self.answer(entries[index])

        if len(lanes) <= 1 or self.workers <= 1:
            for indexes in lanes.values():
                run_lane(indexes)
            return answers
        with ThreadPoolExecutor(max_workers=min(self.workers, len(lanes))) as pool:
            list(pool.map(run_lane, lanes.values()))  # list(): re-raises nothing, answers do
        return answers

    def answer(self, entry: Entry) -> dict[str, Any]:
        """Run one entry's work; its own fault becomes its answer."""
        if entry.work is None:
            return dict(entry.fields)
        if self.deadline is not None and self.clock() >= self.deadline:
            return {**entry.fields, "status": Status.RETRY, "error": LATE}
        try:
            return {**entry.fields, **entry.work()}
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
            return {**entry.fields, "status": fault.status, "error": fault.error}


# The default pool: no deadline (tests and callers that set none).
UNHURRIED = Pool()
