"""One memory measurement in a fresh process (peak RSS is per process and never goes down).

    python bench/memory_probe.py (stream|read) ROOT PATH SHA256 SIZE

Prints one JSON line: the process's peak RSS before and after the work (VmHWM; ru_maxrss off
Linux) and the tracemalloc peak during the work. `stream` sends the file through
`files.open_verified_stream` to a sink that reads CHUNK_SIZE at a time (the largest read the
stream ever makes; requests reads 16 KiB at a time, so a real upload holds less); `read` is
`files.read_verified`, the inline path, which holds the whole file.
"""

from __future__ import annotations

import json
import resource
import sys
import tracemalloc
from pathlib import Path

from exportsync.fs import files


def _peak_rss_bytes() -> int:
    """This process's peak RSS so far.

    Linux: VmHWM, because ru_maxrss survives fork+exec and would report the parent's peak.
    """
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        status = ""
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    # macOS reports ru_maxrss in bytes (Linux would in KiB).
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _stream(root: Path, path: Path, sha256: str, size: int) -> int:
    sent = 0
    with files.open_verified_stream(root, path, sha256, size) as stream:
        while chunk := stream.read(files.CHUNK_SIZE):
            sent += len(chunk)
        stream.verify()
    return sent


def _read(root: Path, path: Path, sha256: str, size: int) -> int:
    return len(files.read_verified(root, path, sha256, size))


def main(argv: list[str]) -> int:
    mode, root, path, sha256, size = argv
    work = {"stream": _stream, "read": _read}[mode]
    rss_before = _peak_rss_bytes()
    tracemalloc.start()
    handled = work(Path(root), Path(path), sha256, int(size))
    _current, traced_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    if handled != int(size):
        raise SystemExit(f"handled {handled} of {size} bytes")
    result = {
        "rss_peak_before": rss_before,
        "rss_peak_after": _peak_rss_bytes(),
        "tracemalloc_peak": traced_peak,
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
