"""Entries of one request stored concurrently on a bounded thread pool, answered in order.

boto3 *clients* are thread-safe (resources are not; the stores use clients only), so the
workers share the module-scope clients. An exception from one entry's write becomes that
entry's ``retry`` or ``rejected`` answer (``faults.classify``) and never reaches the others.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from aws_lambda_powertools import Logger

from .faults import classify

__all__ = ["DEFAULT_WORKERS", "Entry", "answer", "run_entries"]

DEFAULT_WORKERS = 16

Work = Callable[[], Mapping[str, Any]]

logger = Logger(service="exportsync-api", child=True)


@dataclass(frozen=True)
class Entry:
    """One entry's answer: ``fields`` alone when it is decided already (a rejection), else
    ``fields`` plus what ``work`` (the store write) adds, usually ``status``."""

    fields: Mapping[str, Any]
    work: Work | None = field(default=None, compare=False)


def answer(entry: Entry) -> dict[str, Any]:
    """Run one entry's work; its own fault becomes its answer."""
    if entry.work is None:
        return dict(entry.fields)
    try:
        return {**entry.fields, **entry.work()}
    except Exception as exc:  # one entry's fault, whatever it is, stays with that entry
        fault = classify(exc)
        logger.warning("entry_fault", error_type=type(exc).__name__, status=fault.status)
        return {**entry.fields, "status": fault.status, "error": fault.error}


def run_entries(entries: Sequence[Entry], workers: int = DEFAULT_WORKERS) -> list[dict[str, Any]]:
    """Every entry's answer, in the order given; at most ``workers`` writes at a time."""
    pending = sum(1 for entry in entries if entry.work is not None)
    if pending <= 1 or workers <= 1:
        return [answer(entry) for entry in entries]
    with ThreadPoolExecutor(max_workers=min(workers, pending)) as pool:
        return list(pool.map(answer, entries))
