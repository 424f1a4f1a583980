"""Intake throughput: what recording a file durably costs on top of reading and hashing it.

Three steps over the same files, interleaved over several rounds:

* ``hash_only``   the baseline: open, read and SHA-256 every file (work any design must do);
* ``first_pass``  ``Intake.offer`` on a fresh spool: safe open, hash, one SQLite transaction with
  ``synchronous=FULL`` per file (an fsync of the WAL each);
* ``second_pass`` ``Intake.offer`` again on that spool, as a restart's scan does: the ``known()``
  shortcut (path, size, mtime already spooled) skips the hash.

Two file sets: many small files (per-file overhead dominates) and a few large ones (hashing
dominates, so the spool's share should shrink towards nothing).
"""

from __future__ import annotations

import hashlib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench_common import filesystem_of, ratio, time_rounds
from exportsync.clock import SystemClock
from exportsync.intake import Intake
from exportsync.matcher import FileMatcher
from exportsync.spool import Spool

__all__ = ["FileSet", "run_intake"]


@dataclass(frozen=True)
class FileSet:
    name: str
    count: int
    size: int


def _make_files(folder: Path, spec: FileSet) -> list[Path]:
    folder.mkdir(parents=True)
    paths = []
    for i in range(spec.count):
        path = folder / f"{spec.name}-{i:05d}.csv"
        # Distinct content per file (a counter prefix) over random-looking bytes.
        head = f"id,{i}\n".encode()
        path.write_bytes(head + os.urandom(max(0, spec.size - len(head))))
        paths.append(path)
    return paths


def _hash_all(paths: list[Path]) -> None:
    for path in paths:
        digest = hashlib.sha256()
        with path.open("rb") as handle:
            while chunk := handle.read(1024 * 1024):
                digest.update(chunk)
        digest.hexdigest()


def _measure(scratch: Path, spec: FileSet, rounds: int) -> dict[str, Any]:
    export = scratch / f"export-{spec.name}"
    paths = _make_files(export, spec)
    _hash_all(paths)  # warm the page cache, so no step pays for the disk reads alone
    intake_calls: dict[int, Intake] = {}
    spools: list[Spool] = []

    def hash_only(_n: int) -> None:
        _hash_all(paths)

    def first_pass(n: int) -> None:
        spool = Spool.open(scratch / f"state-{spec.name}-{n}")
        spools.append(spool)
        intake = Intake(spool, root=export, matcher=FileMatcher(), clock=SystemClock())
        intake_calls[n] = intake
        for path in paths:
            result = intake.offer(path)
            if result is None or not result.created:
                raise RuntimeError(f"intake bench: {path} was not spooled as new")

    def second_pass(n: int) -> None:
        intake = intake_calls[n]
        for path in paths:
            if intake.offer(path) is not None:  # known: neither hashed nor recorded again
                raise RuntimeError(f"intake bench: {path} was hashed again on the second pass")

    try:
        timings = time_rounds(
            rounds, {"hash_only": hash_only, "first_pass": first_pass, "second_pass": second_pass}
        )
    finally:
        for spool in spools:
            spool.close()
    base, first, second = (timings[k].median for k in ("hash_only", "first_pass", "second_pass"))
    shutil.rmtree(export, ignore_errors=True)
    return {
        "files": spec.count,
        "file_bytes": spec.size,
        "timings": {name: t.as_dict() for name, t in timings.items()},
        "files_per_s": {
            "hash_only": round(spec.count / base, 1),
            "first_pass": round(spec.count / first, 1),
            "second_pass": round(spec.count / second, 1),
        },
        "first_pass_vs_hash_only": ratio(first, base),
        "second_pass_vs_first_pass": ratio(second, first),
    }


def run_intake(scratch: Path, *, quick: bool) -> dict[str, Any]:
    """Both file sets; scratch must be on the disk the spool would really live on."""
    sets = (
        [FileSet("small", 300, 4096), FileSet("large", 4, 8 * 1024 * 1024)]
        if quick
        else [FileSet("small", 1000, 4096), FileSet("large", 8, 16 * 1024 * 1024)]
    )
    rounds = 3
    return {
        "scratch_filesystem": filesystem_of(scratch),
        "rounds": rounds,
        "sets": {spec.name: _measure(scratch, spec, rounds) for spec in sets},
    }
