"""The handler's throughput per core: real events through the real handler, CPU time counted.

The handler runs in this process against the devstack's moto over HTTP, as a Lambda runs against
S3 and DynamoDB; moto's own work happens in the devstack's process, so this process's CPU time
(`time.process_time()`, which also counts any threads the handler writes from) is what one
function instance would spend (routing, parsing, hashing, boto3) and nothing of the storage. Call
it from a process doing nothing else meanwhile. Requests per CPU-second is requests per second
per core.
"""

from __future__ import annotations

import itertools
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import requests

from exportsync_wire import routes

from .events import ApiIdentity, IncomingRequest, build_rest_event

__all__ = ["RouteRate", "measure_routes"]

Handler = Callable[[dict[str, Any], Any], Any]

_EPOCH = datetime(2027, 1, 1, tzinfo=UTC)
_TAGS = itertools.count(1)


@dataclass(frozen=True)
class RouteRate:
    label: str
    requests: int
    entries: int
    cpu_seconds: float

    @property
    def requests_per_core(self) -> float:
        return self.requests / self.cpu_seconds if self.cpu_seconds else 0.0

    @property
    def entries_per_core(self) -> float:
        return self.entries / self.cpu_seconds if self.cpu_seconds else 0.0

    def line(self) -> str:
        return (
            f"{self.label}: {self.requests_per_core:,.0f} requests/s, "
            f"{self.entries_per_core:,.0f} entries/s per core"
        )


def _session_body(user: str, count: int, tag: int) -> tuple[bytes, str]:
    start = _EPOCH + timedelta(seconds=tag * 1000)  # every request its own timestamps
    sessions = [
        {"user_id": user, "timestamp": (start + timedelta(seconds=n)).isoformat(), "steps": n}
        for n in range(count)
    ]
    return json.dumps({"sessions": sessions}).encode(), "application/json"


_Part = tuple[str, tuple[str | None, bytes, str]]


def _csv_parts(count: int, size: int, tag: int) -> list[_Part]:
    """`count` distinct CSV `file` parts of `size` bytes."""
    return [
        ("file", (f"part-{n}.csv", (f"{tag},{n}\n" * (size // 4 + 1)).encode()[:size], "text/csv"))
        for n in range(count)
    ]


def _upload_body(count: int, size: int, tag: int) -> tuple[bytes, str]:
    files = _csv_parts(count, size, tag)
    prepared = requests.Request("POST", "http://127.0.0.1/upload", files=files).prepare()
    assert isinstance(prepared.body, bytes)
    return prepared.body, str(prepared.headers["Content-Type"])


def _batch_body(user: str, files: int, sessions: int, tag: int) -> tuple[bytes, str]:
    """One export as /batch carries it: `files` CSVs and one `session` part with a list."""
    parts = _csv_parts(files, 2048, tag)
    session, _ = _session_body(user, sessions, tag)
    listed = json.loads(session)["sessions"]
    parts.append(("session", (None, json.dumps(listed).encode(), "application/json")))
    prepared = requests.Request("POST", "http://127.0.0.1/batch", files=parts).prepare()
    assert isinstance(prepared.body, bytes)
    return prepared.body, str(prepared.headers["Content-Type"])


def serves_batch(handler: Handler, identity: ApiIdentity, user: str) -> bool:
    """Whether this handler serves /batch (it answers 404 where it does not)."""
    event = _event(routes.BATCH, *_batch_body(user, 1, 1, next(_TAGS)), identity)
    status = int(handler(event, None)["statusCode"])
    if status not in (200, 404):
        raise RuntimeError(f"/batch: the handler answered {status}")
    return status == 200


def _event(path: str, body: bytes, content_type: str, identity: ApiIdentity) -> dict[str, Any]:
    request = IncomingRequest("POST", path, headers=(("Content-Type", content_type),), body=body)
    return build_rest_event(
        request, identity, stage="fleet", request_id=str(uuid.uuid4()), epoch=time.time()
    )


def _measure(
    handler: Handler,
    *,
    label: str,
    path: str,
    make_body: Callable[[int], tuple[bytes, str]],
    identity: ApiIdentity,
    count: int,
    entries_per_request: int,
) -> RouteRate:
    # Events are built before the clock starts: the gateway builds them, not the function.
    events = [_event(path, *make_body(next(_TAGS)), identity) for _ in range(count)]
    started = time.process_time()
    for event in events:
        answer = handler(event, None)
        if answer["statusCode"] != 200:
            raise RuntimeError(f"{label}: the handler answered {answer['statusCode']}")
    spent = time.process_time() - started
    return RouteRate(label, count, count * entries_per_request, spent)


def measure_routes(
    handler: Handler, identity: ApiIdentity, user: str, count: int
) -> list[RouteRate]:
    """/batch with 10 files and 10 sessions where it is served; /session with 1 and 100
    sessions per request, /upload with 10 files of 2 KB."""
    for _ in range(3):  # warm: imports, clients, connection pools, the registry cache
        handler(_event(routes.SESSION, *_session_body(user, 1, next(_TAGS)), identity), None)
    plans: list[tuple[str, str, Callable[[int], tuple[bytes, str]], int, int]] = [
        ("/session x1", routes.SESSION, lambda tag: _session_body(user, 1, tag), count, 1),
        (
            "/session x100",
            routes.SESSION,
            lambda tag: _session_body(user, 100, tag),
            max(1, count // 10),
            100,
        ),
        (
            "/upload 10 x 2 KB",
            routes.UPLOAD,
            lambda tag: _upload_body(10, 2048, tag),
            max(1, count // 5),
            10,
        ),
    ]
    if serves_batch(handler, identity, user):
        plans.insert(
            0,
            (
                "/batch 10 files + 10 sessions",
                routes.BATCH,
                lambda tag: _batch_body(user, 10, 10, tag),
                max(1, count // 5),
                20,
            ),
        )
    return [
        _measure(
            handler,
            label=label,
            path=path,
            make_body=make_body,
            identity=identity,
            count=n,
            entries_per_request=entries,
        )
        for label, path, make_body, n, entries in plans
    ]
