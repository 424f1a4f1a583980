"""Memory: a presigned upload streams, so its memory is one chunk, not the file.

Each case runs in its own process (bench/memory_probe.py) so peak RSS belongs to that case only:

* ``stream_large``  a large (sparse) file through `files.open_verified_stream` to a sink;
* ``stream_inline`` the same for an inline-sized file (4 MB), to show the peak does not grow
  with the file;
* ``read_inline``   the baseline: `files.read_verified` of the inline-sized file, which holds the
  whole content in memory (what inline uploads do, by design, below 4 MB).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench_common import REPO, ratio
from exportsync.fs import files

__all__ = ["run_memory"]

_PROBE = REPO / "bench" / "memory_probe.py"
INLINE_BYTES = 4_000_000


def _probe(mode: str, root: Path, snap: files.FileSnapshot) -> dict[str, int]:
    done = subprocess.run(
        [sys.executable, str(_PROBE), mode, str(root), str(snap.path), snap.sha256, str(snap.size)],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    if done.returncode != 0:
        raise RuntimeError(f"memory probe {mode} failed: {done.stderr[-2000:]}")
    result: dict[str, int] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _case(mode: str, root: Path, snap: files.FileSnapshot) -> dict[str, Any]:
    probe = _probe(mode, root, snap)
    growth = max(0, probe["rss_peak_after"] - probe["rss_peak_before"])
    return {
        "file_bytes": snap.size,
        "tracemalloc_peak_bytes": probe["tracemalloc_peak"],
        "rss_peak_before_bytes": probe["rss_peak_before"],
        "rss_peak_after_bytes": probe["rss_peak_after"],
        "rss_growth_bytes": growth,
        "tracemalloc_peak_vs_file": ratio(probe["tracemalloc_peak"], snap.size),
        "rss_growth_vs_file": ratio(growth, snap.size),
    }


def run_memory(scratch: Path, *, quick: bool) -> dict[str, Any]:
    """Create the files (the large one sparse: no disk used), measure each case."""
    root = scratch / "export-memory"
    root.mkdir(parents=True)
    large_bytes = (64 if quick else 200) * 1024 * 1024
    large = root / "large.csv"
    with large.open("wb") as handle:
        handle.write(b"id,value\n")
        handle.truncate(large_bytes)  # a hole: reads as zeros, costs no disk
    inline = root / "inline.csv"
    inline.write_bytes(os.urandom(INLINE_BYTES))
    large_snap = files.snapshot(root, large)
    inline_snap = files.snapshot(root, inline)
    cases = {
        "stream_large": _case("stream", root, large_snap),
        "stream_inline": _case("stream", root, inline_snap),
        "read_inline": _case("read", root, inline_snap),
    }
    large.unlink()
    return {
        "chunk_bytes": files.CHUNK_SIZE,
        "cases": cases,
        "stream_peak_large_vs_inline": ratio(
            cases["stream_large"]["tracemalloc_peak_bytes"],
            cases["stream_inline"]["tracemalloc_peak_bytes"],
        ),
        "file_size_large_vs_inline": ratio(large_snap.size, inline_snap.size),
        "stream_large_peak_vs_read_inline_peak": ratio(
            cases["stream_large"]["tracemalloc_peak_bytes"],
            cases["read_inline"]["tracemalloc_peak_bytes"],
        ),
    }
