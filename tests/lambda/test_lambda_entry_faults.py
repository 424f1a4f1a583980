"""One entry's trouble stays with that entry: numbers no Decimal holds, items the store refuses,
throttles and dropped connections answer ``rejected`` or ``retry`` for it alone, never a 5xx."""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable, Mapping
from typing import Any

import pytest
import requests
from apigw_events import body_of, rest_event
from botocore.exceptions import ClientError, EndpointConnectionError, ReadTimeoutError
from fakes import MemoryObjectStore, MemorySessionStore

from exportsync_api.app import Dependencies, handle, write_pool
from exportsync_api.faults import classify
from exportsync_api.pool import LATE, Entry, Pool
from exportsync_api.sessions import Rejected, parse_sessions, validate_session
from exportsync_api.stores import PutOutcome
from exportsync_wire import SessionResultJson, Status, limits

_TS = "2026-05-01T10:00:00Z"


def _client_error(code: str, status: int, operation: str = "PutItem") -> ClientError:
    response: Any = {
        "Error": {"Code": code, "Message": f"{code} happened"},
        "ResponseMetadata": {"HTTPStatusCode": status},
    }
    return ClientError(response, operation)


@pytest.mark.parametrize(
    ("exc", "status", "prefix"),
    [
        (_client_error("ProvisionedThroughputExceededException", 400), "retry", "throttled"),
        (_client_error("ThrottlingException", 400), "retry", "throttled"),
        (_client_error("RequestLimitExceeded", 400), "retry", "throttled"),
        (_client_error("SlowDown", 503, "PutObject"), "retry", "throttled"),
        (_client_error("InternalServerError", 500), "retry", "store_unavailable"),
        (_client_error("ServiceUnavailable", 503), "retry", "store_unavailable"),
        (_client_error("AccessDenied", 403, "PutObject"), "retry", "server_error"),
        (_client_error("ValidationException", 400), "rejected", "store_refused"),
        (EndpointConnectionError(endpoint_url="http://127.0.0.1:9"), "retry", "store_unreachable"),
        (ReadTimeoutError(endpoint_url="http://127.0.0.1:9"), "retry", "store_unreachable"),
        (RuntimeError("boom"), "retry", "server_error"),
    ],
)
def test_classify_names_the_entry_answer(exc: Exception, status: str, prefix: str) -> None:
    fault = classify(exc)
    assert fault.status == status
    assert fault.error.startswith(prefix + ": ")


@pytest.mark.parametrize(
    "number",
    [
        "1e9999999999999999999",  # beyond Decimal's exponent range: InvalidOperation
        "-1e9999999999999999999",
        "1e-9999999999999999999",  # underflow of the exponent
        "1" + "0" * 5000,  # 10^5000: a Decimal, but not one DynamoDB holds
        "1e200",
        "1e-200",
    ],
)
def test_numbers_no_store_can_hold_reject_that_session_alone(
    number: str, memory_deps: Dependencies
) -> None:
    bad = f'{{"user_id":"alice","timestamp":"{_TS}","v":{number}}}'
    good = '{"user_id":"alice","timestamp":"2026-05-01T11:00:00Z","v":1}'
    event = rest_event("/session", f'{{"sessions":[{bad},{good}]}}')
    response = handle(event, None, memory_deps)
    assert response["statusCode"] == 200
    results = body_of(response)["results"]
    assert [r["status"] for r in results] == ["rejected", "stored"]
    assert results[0]["error"].startswith("number_out_of_range:")
    assert results[0]["timestamp"] == _TS


def test_a_398_kb_item_is_refused_before_the_store_sees_it() -> None:
    # 398 KB is under the nominal 400 KB, but over what DynamoDB accepts once it counts
    # names, values and the server's hash attribute its own way.
    raw = parse_sessions(
        json.dumps({"user_id": "alice", "timestamp": _TS, "blob": "x" * (398 * 1024)}).encode()
    )[0]
    checked = validate_session(raw, None)
    assert isinstance(checked, Rejected)
    assert checked.error.startswith("too_large:")
    just_under = "x" * (limits.ITEM_CHECKED_BYTES - 1024)
    raw = parse_sessions(
        json.dumps({"user_id": "alice", "timestamp": _TS, "blob": just_under}).encode()
    )[0]
    assert not isinstance(validate_session(raw, None), Rejected)


class ScriptedSessions(MemorySessionStore):
    """Raises the scripted exception for the item whose ``v`` names it; stores the rest."""

    def __init__(self, faults: Mapping[str, Exception]) -> None:
        super().__init__()
        self.faults = faults

    def put_unless_same(self, item: Mapping[str, Any], content_hash: str) -> PutOutcome:
        fault = self.faults.get(item.get("v", {}).get("S", ""))
        if fault is not None:
            raise fault
        return super().put_unless_same(item, content_hash)


class ScriptedObjects(MemoryObjectStore):
    """Raises the scripted exception for an object whose bytes name it."""

    def __init__(self, faults: Mapping[bytes, Exception]) -> None:
        super().__init__()
        self.faults = faults

    def put_if_absent(self, key: str, data: bytes, sha256_hex: str) -> PutOutcome:
        if data in self.faults:
            raise self.faults[data]
        return super().put_if_absent(key, data, sha256_hex)

    def stored_etag(self, key: str) -> str | None:
        # The listing behind every "is it there?" (ListObjectsV2).
        for data, fault in self.faults.items():
            if hashlib.sha256(data).hexdigest() in key:
                raise fault
        return super().stored_etag(key)


def test_store_refusal_and_throttle_answer_per_session(memory_deps: Dependencies) -> None:
    store = ScriptedSessions(
        {
            "refused": _client_error("ValidationException", 400),
            "throttled": _client_error("ProvisionedThroughputExceededException", 400),
            "unreachable": EndpointConnectionError(endpoint_url="http://127.0.0.1:9"),
        }
    )
    deps = Dependencies(memory_deps.settings, memory_deps.objects, store)
    sessions = [
        {"user_id": "alice", "timestamp": f"2026-05-01T10:0{i}:00Z", "v": v}
        for i, v in enumerate(["ok", "refused", "throttled", "unreachable", "ok too"])
    ]
    response = handle(rest_event("/session", json.dumps({"sessions": sessions})), None, deps)
    assert response["statusCode"] == 200
    results = body_of(response)["results"]
    assert [r["status"] for r in results] == ["stored", "rejected", "retry", "retry", "stored"]
    assert "ValidationException" in results[1]["error"]
    assert results[2]["error"].startswith("throttled: ProvisionedThroughputExceededException")
    assert results[3]["error"].startswith("store_unreachable:")
    assert [r["timestamp"] for r in results] == [s["timestamp"] for s in sessions]
    assert len(store.items) == 2


def test_s3_faults_answer_per_file_in_upload(memory_deps: Dependencies) -> None:
    objects = ScriptedObjects(
        {b"slow\n": _client_error("SlowDown", 503, "PutObject"), b"gone\n": RuntimeError("x")}
    )
    deps = Dependencies(memory_deps.settings, objects, memory_deps.sessions)
    prepared = requests.Request(
        "POST",
        "http://127.0.0.1/upload",
        files=[("file", (f"{n}.csv", n.encode() + b"\n")) for n in ("fine", "slow", "gone")],
    ).prepare()
    assert isinstance(prepared.body, bytes)
    event = rest_event("/upload", prepared.body, content_type=prepared.headers["Content-Type"])
    response = handle(event, None, deps)
    assert response["statusCode"] == 200
    results = body_of(response)["results"]
    assert [r["status"] for r in results] == ["stored", "retry", "retry"]
    assert all(r["key"].startswith("uploads/alice/") for r in results)
    assert list(objects.objects.values()) == [b"fine\n"]


def test_s3_fault_answers_per_file_in_presign(memory_deps: Dependencies) -> None:
    objects = ScriptedObjects({b"slow": _client_error("InternalError", 500, "ListObjectsV2")})
    deps = Dependencies(memory_deps.settings, objects, memory_deps.sessions)
    files = [
        {"filename": f"{d.decode()}.csv", "sha256": hashlib.sha256(d).hexdigest(), "size": 4}
        for d in (b"fast", b"slow")
    ]
    response = handle(rest_event("/presign", json.dumps({"files": files})), None, deps)
    assert response["statusCode"] == 200
    results = body_of(response)["results"]
    assert [r["status"] for r in results] == ["upload", "retry"]
    assert results[1]["error"].startswith("store_unavailable: InternalError")


class _FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_entries_not_started_by_the_deadline_answer_retry_untried() -> None:
    clock = _FakeClock()
    written: list[int] = []

    def write(n: int) -> Callable[[], SessionResultJson]:
        def run() -> SessionResultJson:
            written.append(n)
            clock.now += 1.0  # each write takes a second
            return {**_pending(str(n)), "status": Status.STORED}

        return run

    pool = Pool(workers=1, deadline=2.5, clock=clock)
    results = pool.run([Entry(_pending(str(n)), write(n)) for n in range(5)])
    assert [r["status"] for r in results] == ["stored"] * 3 + ["retry"] * 2
    assert results[3]["error"] == LATE
    assert written == [0, 1, 2]


class _Context:
    def __init__(self, remaining_ms: int) -> None:
        self.remaining_ms = remaining_ms

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


def test_the_deadline_follows_the_functions_remaining_time(memory_deps: Dependencies) -> None:
    settings = memory_deps.settings
    assert write_pool(settings, None, clock=lambda: 100.0).deadline == 100.0 + 18
    assert write_pool(settings, _Context(12_000), clock=lambda: 100.0).deadline == 104.0
    # With 8 s left, no write may start: every entry answers retry, the request still 200.
    body = json.dumps({"user_id": "alice", "timestamp": _TS})
    response = handle(rest_event("/session", body), _Context(8_000), memory_deps)
    assert response["statusCode"] == 200
    [result] = body_of(response)["results"]
    assert (result["status"], result["error"]) == ("retry", LATE)


def test_writes_to_one_item_keep_request_order_while_others_overlap() -> None:
    """A and B write the same item (one lane), C another. A waits for C to start, so C must
    overlap A; B must not start before A is done (else the older version could win)."""
    c_started = threading.Event()
    order: list[str] = []

    def a() -> SessionResultJson:
        assert c_started.wait(10), "C never ran beside A"
        order.append("A done")
        return {**_pending("x"), "status": Status.STORED}

    def b() -> SessionResultJson:
        order.append("B start")
        return {**_pending("x"), "status": Status.STORED}

    def c() -> SessionResultJson:
        c_started.set()
        return {**_pending("y"), "status": Status.STORED}

    x, y = _pending("x"), _pending("y")
    entries = [Entry(x, a, "item:x"), Entry(x, b, "item:x"), Entry(y, c, "item:y")]
    results = Pool(workers=2).run(entries)
    assert [r["status"] for r in results] == ["stored"] * 3
    assert order == ["A done", "B start"]


def test_a_session_sent_twice_in_one_request_ends_as_its_last_version(
    memory_deps: Dependencies,
) -> None:
    first = {"user_id": "alice", "timestamp": _TS, "v": 1}
    sessions = [first, {**first, "v": 2}] * 20  # many writes of one item, and then version 2
    response = handle(rest_event("/session", json.dumps({"sessions": sessions})), None, memory_deps)
    assert body_of(response)["results"][-1]["status"] == "stored"
    assert isinstance(memory_deps.sessions, MemorySessionStore)
    [(item, _hash)] = memory_deps.sessions.items.values()
    assert item["v"] == {"N": "2"}


def _pending(user_id: str) -> SessionResultJson:
    return {"user_id": user_id, "timestamp": _TS, "status": Status.RETRY}
