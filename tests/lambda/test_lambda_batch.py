"""POST /batch through the handler under moto's mock: parts in any order, answers in request
order with their kind, per-entry rejections, the 1,000-entry cap, and concurrent writes."""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Mapping
from typing import Any

import pytest
from apigw_events import body_of, http_event, rest_event
from fakes import MemorySessionStore
from lambda_support import BUCKET, TABLE, Moto, anonymous, json_part, multipart_body

from exportsync_api.app import Dependencies, handle
from exportsync_api.stores import PutOutcome
from exportsync_wire import limits


def _session(n: int, **fields: object) -> dict[str, object]:
    """Session ``n`` (0 to 3599) of alice's day, one second apart from 10:00."""
    stamp = f"2026-05-01T{10 + n // 3600:02d}:{n // 60 % 60:02d}:{n % 60:02d}Z"
    return {"user_id": "alice", "timestamp": stamp, **fields}


def _batch(parts: list[Any], **kwargs: Any) -> dict[str, Any]:
    body, content_type = multipart_body(parts)
    return rest_event("/batch", body, content_type=content_type, **kwargs)


def test_mixed_parts_answer_in_request_order_with_their_kind(moto_deps: Moto) -> None:
    first, second = b"a,b\n1,2\n", b"c,d\n3,4\n"
    big = hashlib.sha256(b"big").hexdigest()
    manifest = [
        {"filename": "one.csv", "sha256": hashlib.sha256(first).hexdigest(), "size": 4 * 2},
        {"filename": "two.csv", "sha256": "0" * 64, "size": len(second)},
    ]
    event = _batch(
        [
            json_part("session", _session(0, steps=8123)),
            ("file", ("one.csv", first, "text/csv")),
            json_part("presign", {"files": [{"filename": "big.csv", "sha256": big, "size": 3}]}),
            json_part("session", [_session(1), _session(2, v=float("nan"))]),
            ("file", ("two.csv", second, "text/csv")),
            json_part("manifest", manifest),
        ]
    )
    response = handle(event, None, moto_deps.deps)
    assert response["statusCode"] == 200
    results = body_of(response)["results"]
    assert [(r["kind"], r["status"]) for r in results] == [
        ("session", "stored"),
        ("file", "stored"),
        ("presign", "upload"),
        ("session", "stored"),
        ("session", "rejected"),
        ("file", "rejected"),
    ]
    assert results[4]["error"].startswith("not_finite:")
    assert results[5]["error"].startswith("sha256_mismatch:")
    stored = moto_deps.s3.get_object(Bucket=BUCKET, Key=results[1]["key"])["Body"].read()
    assert stored == first
    assert results[2]["method"] == "PUT"
    items = moto_deps.dynamodb.scan(TableName=TABLE)["Items"]
    assert sorted(item["timestamp"]["S"] for item in items) == [
        "2026-05-01T10:00:00Z",
        "2026-05-01T10:00:01Z",
    ]

    again = body_of(handle(event, None, moto_deps.deps))["results"]
    assert [r["status"] for r in again][:4] == ["duplicate", "duplicate", "upload", "duplicate"]


def test_unreadable_json_parts_are_rejected_alone(memory_deps: Dependencies) -> None:
    event = _batch(
        [
            ("session", (None, b"{not json", "application/json")),
            ("presign", (None, b'{"files": [{"filename": "x.csv"}]}', "application/json")),
            ("presign", (None, b"[]", "application/json")),
            json_part("session", _session(3)),
        ]
    )
    response = handle(event, None, memory_deps)
    assert response["statusCode"] == 200
    results = body_of(response)["results"]
    assert [(r["kind"], r["status"]) for r in results] == [
        ("session", "rejected"),
        ("presign", "rejected"),
        ("presign", "rejected"),
        ("session", "stored"),
    ]
    assert results[0]["error"].startswith("invalid_json:")
    assert results[1] == {
        "kind": "presign",
        "filename": "x.csv",
        "key": None,
        "status": "rejected",
        "error": "invalid_body: files[0].sha256 must be 64 hex digits",
    }


def test_a_thousand_entries_are_taken_and_one_more_is_refused(memory_deps: Dependencies) -> None:
    sessions = [_session(i) for i in range(1000)]
    fine = handle(_batch([json_part("session", sessions)]), None, memory_deps)
    assert fine["statusCode"] == 200
    assert [r["status"] for r in body_of(fine)["results"]] == ["stored"] * limits.MAX_BATCH_ENTRIES
    over = _batch([json_part("session", sessions), ("file", ("x.csv", b"x", "text/csv"))])
    response = handle(over, None, memory_deps)
    assert response["statusCode"] == 400
    assert body_of(response)["error"]["code"] == "too_many_entries"


@pytest.mark.parametrize("count", [1000, 1001])
def test_session_and_presign_routes_take_up_to_a_thousand(
    count: int, memory_deps: Dependencies
) -> None:
    sessions = [_session(i) for i in range(count)]
    files = [
        {"filename": f"f{i}.csv", "sha256": hashlib.sha256(b"%d" % i).hexdigest(), "size": 1}
        for i in range(count)
    ]
    expected = 200 if count <= limits.MAX_ROUTE_ENTRIES else 400
    for path, body in (("/session", {"sessions": sessions}), ("/presign", {"files": files})):
        response = handle(rest_event(path, json.dumps(body)), None, memory_deps)
        assert response["statusCode"] == expected, path
        if expected == 200:
            statuses = {r["status"] for r in body_of(response)["results"]}
            assert statuses == {"stored" if path == "/session" else "upload"}


def test_empty_batch_is_422_and_files_without_an_owner_are_400(memory_deps: Dependencies) -> None:
    body, content_type = multipart_body([("other", (None, b"x", "text/plain"))])
    empty = handle(rest_event("/batch", body, content_type=content_type), None, memory_deps)
    assert empty["statusCode"] == 422
    # An HTTP API event has no key identity: a file needs a user_id part, a session does not.
    body, content_type = multipart_body([("file", ("a.csv", b"a", "text/csv"))])
    event = http_event("/batch", body, content_type=content_type, binary=True)
    assert handle(event, None, anonymous(memory_deps))["statusCode"] == 400
    body, content_type = multipart_body([json_part("session", _session(5))])
    event = http_event("/batch", body, content_type=content_type, binary=True)
    response = handle(event, None, anonymous(memory_deps))
    assert response["statusCode"] == 200
    assert body_of(response)["results"][0]["status"] == "stored"


class _Rendezvous(MemorySessionStore):
    """Each write waits until ``parties`` writes are in flight at once: a serial loop would
    break the barrier (its timeout), and those entries would answer ``retry``."""

    def __init__(self, parties: int) -> None:
        super().__init__()
        self.barrier = threading.Barrier(parties, timeout=10)

    def put_unless_same(self, item: Mapping[str, Any], content_hash: str) -> PutOutcome:
        self.barrier.wait()
        return super().put_unless_same(item, content_hash)


def test_writes_of_one_request_run_concurrently(memory_deps: Dependencies) -> None:
    store = _Rendezvous(parties=8)
    deps = Dependencies(memory_deps.settings, memory_deps.objects, store)
    event = _batch([json_part("session", [_session(i) for i in range(16)])])
    results = body_of(handle(event, None, deps))["results"]
    assert [r["status"] for r in results] == ["stored"] * 16
