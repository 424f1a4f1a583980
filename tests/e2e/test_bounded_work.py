"""Bounded work per request (CONTRACT §3b), measured: the worst request of every route goes
through the devstack and the function holds at most 256 MiB above idle, for at most 10 s.

Memory is the devstack process's resident peak (VmHWM, reset before each request by the admin
port) above its resident size just before; requests go one at a time, so the figure bounds
what the function held (moto's and the S3 front's share counts too). Time is the CPU time the
process spent on the request (the function's own, moto's and the front's), which other work on
a loaded machine does not inflate; the wall time only has to stay within the 28 s timeout.
``EXPORTSYNC_BOUNDED_REPORT=path`` writes the worst case seen (``make fuzz`` prints it).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from exportsync_wire import limits
from support.devstack import DevstackInfo, start_devstack

MIB = 1024 * 1024
MAX_GROWTH = 256 * MIB
# CPU seconds of the devstack process (function, moto and S3 front) over the request: what
# "10 s on one core" means, and not inflated by other processes on a loaded machine. The wall
# time only has to stay within the function's own timeout.
MAX_SECONDS = 10.0
MAX_WALL_SECONDS = 28.0
# A body the gateway passes to the function: under the 6 MB event even when base64-encoded.
BODY = 4_300_000
_TS = "2026-05-01T10:00:00Z"


@pytest.fixture(scope="module")
def devstack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevstackInfo]:
    with start_devstack(tmp_path_factory.mktemp("bounded"), "--rate", "0", "--quota", "0") as info:
        yield info


def _admin(info: DevstackInfo, path: str, method: str = "GET") -> dict[str, Any]:
    response = requests.request(method, f"{info.admin_url}{path}", timeout=30)
    response.raise_for_status()
    value: dict[str, Any] = response.json()
    return value


def _session(n: int, **fields: object) -> dict[str, object]:
    timestamp = f"2026-05-01T{n // 60:02d}:{n % 60:02d}:00Z"
    return {"user_id": "devstack-user", "timestamp": timestamp, **fields}


def _numbers(count: int) -> str:
    return "[" + ",".join(["0"] * count) + "]"


def _json_body(text: str) -> tuple[bytes, str]:
    return text.encode(), "application/json"


def _form(parts: list[tuple[str, tuple[str | None, bytes, str]]]) -> tuple[bytes, str]:
    prepared = requests.Request("POST", "http://127.0.0.1/", files=parts).prepare()
    assert isinstance(prepared.body, bytes)
    return prepared.body, prepared.headers["Content-Type"]


def _one_huge_session() -> tuple[bytes, str]:
    head = f'{{"user_id": "devstack-user", "timestamp": "{_TS}", "x": '
    return _json_body(head + _numbers((BODY - len(head)) // 2) + "}")


def _many_number_sessions() -> tuple[bytes, str]:
    per = BODY // limits.MAX_ROUTE_ENTRIES
    sessions = [
        json.dumps(_session(n))[:-1] + f', "x": {_numbers(per // 2 - 40)}}}'
        for n in range(limits.MAX_ROUTE_ENTRIES)
    ]
    return _json_body('{"sessions": [' + ",".join(sessions) + "]}")


def _many_list_sessions() -> tuple[bytes, str]:
    per = BODY // limits.MAX_ROUTE_ENTRIES
    inner = "[" + ",".join(["[]"] * (per // 3 - 30)) + "]"
    sessions = [
        json.dumps(_session(n))[:-1] + f', "x": {inner}}}' for n in range(limits.MAX_ROUTE_ENTRIES)
    ]
    return _json_body('{"sessions": [' + ",".join(sessions) + "]}")


def _deepest_session() -> tuple[bytes, str]:
    depth = BODY // 2 - 100
    head = f'{{"user_id": "devstack-user", "timestamp": "{_TS}", "x": '
    return _json_body(head + "[" * depth + "]" * depth + "}")


def _deep_sessions() -> tuple[bytes, str]:
    nested = "[" * limits.ITEM_DEPTH + "0" + "]" * limits.ITEM_DEPTH
    sessions = [
        json.dumps(_session(n))[:-1] + f', "x": [{",".join([nested] * 60)}]}}'
        for n in range(limits.MAX_ROUTE_ENTRIES)
    ]
    return _json_body('{"sessions": [' + ",".join(sessions) + "]}")


def _many_presign() -> tuple[bytes, str]:
    files = [
        {
            "filename": f"{n:04d}-" + "x" * 150 + ".csv",
            "sha256": hashlib.sha256(str(n).encode()).hexdigest(),
            "size": 10,
        }
        for n in range(limits.MAX_ROUTE_ENTRIES)
    ]
    return _json_body(json.dumps({"files": files}))


def _most_parts_presign() -> tuple[bytes, str]:
    files = [
        {
            "filename": f"big-{n}.csv",
            "sha256": hashlib.sha256(str(n).encode()).hexdigest(),
            "size": limits.PARTS_PER_FILE * limits.PART_MIN_BYTES,
            "parts": limits.PARTS_PER_FILE,
        }
        for n in range(3)
    ]
    return _json_body(json.dumps({"files": files}))


def _most_file_parts() -> tuple[bytes, str]:
    data = b"a,b\n" * ((BODY // limits.MAX_BATCH_ENTRIES - 300) // 4)
    return _form(
        [("file", (f"{n}.csv", data, "text/csv")) for n in range(limits.MAX_BATCH_ENTRIES)]
    )


def _largest_file() -> tuple[bytes, str]:
    return _form([("file", ("big.csv", os.urandom(BODY - 1000), "text/csv"))])


def _worst_gzip() -> tuple[bytes, str]:
    """Parts that inflate as far as one request may (limits.INFLATED_BYTES), plus a bomb."""
    parts: list[tuple[str, tuple[str | None, bytes, str]]] = []
    manifest: list[dict[str, object]] = []
    size = limits.INFLATED_BYTES // 4
    for n in range(4):
        raw = bytes([48 + n]) * size
        parts.append(("file", (f"g{n}.csv", _gzip(raw), "application/gzip")))
        sha = hashlib.sha256(raw).hexdigest()
        manifest.append({"filename": f"g{n}.csv", "sha256": sha, "size": size, "encoding": "gzip"})
    bomb = _gzip(b"0" * (4 * limits.INFLATED_BYTES))
    parts.append(("file", ("bomb.csv", bomb, "application/gzip")))
    manifest.append({"filename": "bomb.csv", "sha256": "0" * 64, "size": 10, "encoding": "gzip"})
    parts.append(("manifest", (None, json.dumps(manifest).encode(), "application/json")))
    return _form(parts)


def _gzip(data: bytes) -> bytes:
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", compresslevel=9, mtime=0) as stream:
        stream.write(data)
    return out.getvalue()


def _compact(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def _batch_sessions() -> tuple[bytes, str]:
    body, _ = _many_number_sessions()
    listed = json.loads(body)["sessions"]
    half = len(listed) // 2
    return _form(
        [
            ("session", (None, _compact(listed[:half]), "application/json")),
            ("session", (None, _compact(listed[half:]), "application/json")),
        ]
    )


WORST: dict[str, tuple[str, Callable[[], tuple[bytes, str]]]] = {
    "session-one-huge": ("/session", _one_huge_session),
    "session-1000-numbers": ("/session", _many_number_sessions),
    "session-1000-lists": ("/session", _many_list_sessions),
    "session-deepest": ("/session", _deepest_session),
    "session-1000-deep": ("/session", _deep_sessions),
    "presign-1000": ("/presign", _many_presign),
    "presign-most-parts": ("/presign", _most_parts_presign),
    "upload-1000-parts": ("/upload", _most_file_parts),
    "upload-largest": ("/upload", _largest_file),
    "batch-worst-gzip": ("/batch", _worst_gzip),
    "batch-1000-sessions": ("/batch", _batch_sessions),
}
_SEEN: dict[str, dict[str, float]] = {}


@pytest.mark.parametrize("name", list(WORST))
def test_the_worst_request_of_each_route_is_bounded(devstack: DevstackInfo, name: str) -> None:
    route, build = WORST[name]
    body, content_type = build()
    before = _admin(devstack, "/memory/reset", "POST")
    if before["peak_bytes"] is None or not before["reset"]:
        pytest.skip("no /proc/self/clear_refs here: the peak cannot be measured")
    started = time.monotonic()
    response = requests.post(
        f"{devstack.api_url}{route}",
        data=body,
        headers={"x-api-key": devstack.api_key, "Content-Type": content_type},
        timeout=120,
    )
    wall = time.monotonic() - started
    after = _admin(devstack, "/memory")
    growth = after["peak_bytes"] - before["rss_bytes"]
    # The function's own CPU time (its thread); moto and the S3 front run in this process too.
    seconds = after["handler_cpu_seconds"] - before["handler_cpu_seconds"]
    _record(name, growth, seconds, response.status_code)
    assert response.status_code < 500, response.text[:500]
    assert growth <= MAX_GROWTH, f"{name}: {growth / MIB:.0f} MiB above idle"
    assert seconds <= MAX_SECONDS, f"{name}: {seconds:.1f} s of CPU"
    assert wall <= MAX_WALL_SECONDS, f"{name}: {wall:.1f} s"


def _record(name: str, growth: int, seconds: float, status: int) -> None:
    _SEEN[name] = {"mib": round(growth / MIB, 1), "seconds": round(seconds, 2), "status": status}
    report = os.environ.get("EXPORTSYNC_BOUNDED_REPORT")
    if not report:
        return
    worst_memory = max(_SEEN.items(), key=lambda item: item[1]["mib"])
    worst_time = max(_SEEN.items(), key=lambda item: item[1]["seconds"])
    Path(report).write_text(
        f"bounded work, {len(_SEEN)} worst requests: most memory {worst_memory[1]['mib']} MiB "
        f"({worst_memory[0]}), longest {worst_time[1]['seconds']} s ({worst_time[0]}); "
        f"limits {MAX_GROWTH // MIB} MiB, {MAX_SECONDS:.0f} s\n"
        + json.dumps(_SEEN, sort_keys=True)
        + "\n",
        encoding="utf-8",
    )
