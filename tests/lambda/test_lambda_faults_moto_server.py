"""Per-entry faults against moto's real server over HTTP: DynamoDB refusing an oversize item,
and a loopback proxy answering a throttle, an S3 SlowDown or a dropped connection for one entry."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
import requests
from apigw_events import body_of, rest_event
from flaky_proxy import DROP, DYNAMO_THROTTLE, S3_SLOW_DOWN, flaky_proxy
from lambda_support import BUCKET, REGION, TABLE, json_part, multipart_body

from exportsync_api import app
from exportsync_wire import limits

_FAULTS = {b"THROTTLE-ME": DYNAMO_THROTTLE, b"SLOW-DOWN-ME": S3_SLOW_DOWN, b"DROP-ME": DROP}


@pytest.fixture
def proxied(live: Any, moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The handler's clients go through the flaky proxy; two attempts per write."""
    with flaky_proxy(moto_endpoint, _FAULTS) as (url, server):
        monkeypatch.setenv("AWS_ENDPOINT_URL", url)
        monkeypatch.setenv("AWS_MAX_ATTEMPTS", "2")
        app.default_dependencies.cache_clear()
        yield server
        app.default_dependencies.cache_clear()


def _stored_timestamps(moto_endpoint: str) -> list[str]:
    client = boto3.client("dynamodb", endpoint_url=moto_endpoint, region_name=REGION)
    items = client.scan(TableName=TABLE)["Items"]
    return sorted(item["timestamp"]["S"] for item in items)


def test_dynamodb_validation_exception_rejects_that_item_only(
    live: Any, moto_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Lift our own size check so the store itself refuses the 406 KB item (moto refuses items
    # over 405,000 bytes; the text stays under limits.SESSION_TEXT_BYTES, so it is parsed).
    monkeypatch.setattr(limits, "ITEM_CHECKED_BYTES", 10 * 1024 * 1024)
    batch = [
        {"user_id": "alice", "timestamp": "2026-05-01T10:00:00Z", "v": 1},
        {"user_id": "alice", "timestamp": "2026-05-01T10:01:00Z", "blob": "x" * 406_000},
        {"user_id": "alice", "timestamp": "2026-05-01T10:02:00Z", "v": 3},
    ]
    response = app.lambda_handler(rest_event("/session", json.dumps({"sessions": batch})))
    assert response["statusCode"] == 200
    results = body_of(response)["results"]
    assert [r["status"] for r in results] == ["stored", "rejected", "stored"]
    assert results[1]["error"].startswith("store_refused: ValidationException")
    assert _stored_timestamps(moto_endpoint) == [
        "2026-05-01T10:00:00Z",
        "2026-05-01T10:02:00Z",
    ]


def test_throttled_and_dropped_sessions_answer_retry_the_rest_are_stored(
    proxied: Any, live: Any, moto_endpoint: str
) -> None:
    batch = [
        {"user_id": "alice", "timestamp": f"2026-05-01T10:0{i}:00Z", "note": note}
        for i, note in enumerate(["fine", "THROTTLE-ME", "DROP-ME", "also fine"])
    ]
    response = app.lambda_handler(rest_event("/session", json.dumps({"sessions": batch})))
    assert response["statusCode"] == 200
    results = body_of(response)["results"]
    assert [r["status"] for r in results] == ["stored", "retry", "retry", "stored"]
    assert results[1]["error"].startswith("throttled: ProvisionedThroughputExceededException")
    assert results[2]["error"].startswith("store_unreachable:")
    # botocore retried each once (AWS_MAX_ATTEMPTS=2) before the entry answered retry.
    assert proxied.hits[b"THROTTLE-ME"] == 2
    assert proxied.hits[b"DROP-ME"] == 2
    assert _stored_timestamps(moto_endpoint) == [
        "2026-05-01T10:00:00Z",
        "2026-05-01T10:03:00Z",
    ]


def test_s3_slow_down_on_one_file_answers_retry_for_it(proxied: Any, live: Any) -> None:
    files = [("ok.csv", b"a,b\n1,2\n"), ("slow.csv", b"a,b\nSLOW-DOWN-ME\n")]
    prepared = requests.Request(
        "POST", "http://127.0.0.1/upload", files=[("file", f) for f in files]
    ).prepare()
    assert isinstance(prepared.body, bytes)
    event = rest_event("/upload", prepared.body, content_type=prepared.headers["Content-Type"])
    response = app.lambda_handler(event)
    assert response["statusCode"] == 200
    results = body_of(response)["results"]
    assert [r["status"] for r in results] == ["stored", "retry"]
    assert results[1]["error"].startswith("throttled: SlowDown")
    listed = live.list_objects_v2(Bucket=BUCKET).get("Contents", [])
    assert [obj["Key"] for obj in listed] == [results[0]["key"]]


def test_batch_entries_fault_alone_over_http(proxied: Any, live: Any, moto_endpoint: str) -> None:
    good, slow = b"a,b\n1,2\n", b"a,b\nSLOW-DOWN-ME\n"
    sessions = [
        {"user_id": "alice", "timestamp": "2026-05-02T10:00:00Z", "note": "THROTTLE-ME"},
        {"user_id": "alice", "timestamp": "2026-05-02T10:01:00Z", "note": "fine"},
    ]
    body, content_type = multipart_body(
        [
            ("file", ("slow.csv", slow, "text/csv")),
            json_part("session", sessions),
            ("file", ("good.csv", good, "text/csv")),
        ]
    )
    event = rest_event("/batch", body, content_type=content_type)
    response = app.lambda_handler(event)
    assert response["statusCode"] == 200
    results = body_of(response)["results"]
    assert [(r["kind"], r["status"]) for r in results] == [
        ("file", "retry"),
        ("session", "retry"),
        ("session", "stored"),
        ("file", "stored"),
    ]
    assert live.get_object(Bucket=BUCKET, Key=results[3]["key"])["Body"].read() == good
    assert _stored_timestamps(moto_endpoint) == ["2026-05-02T10:01:00Z"]
