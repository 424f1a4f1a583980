"""The handler end to end under moto's mock: REST v1 and HTTP v2 events, all three routes."""

from __future__ import annotations

import base64
import hashlib
import json
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from apigw_events import EVENTS_DIR, FAKE_API_KEY, body_of, http_event, rest_event
from lambda_support import BUCKET, TABLE, Moto, anonymous

from exportsync_api import app as app_module
from exportsync_api.app import Dependencies, handle

CURL = EVENTS_DIR / "curl-upload"


def _multipart(files: list[tuple[str, bytes]], **fields: str) -> tuple[bytes, str]:
    """A body exactly as the requests library would send it."""
    prepared = requests.Request(
        "POST",
        "http://127.0.0.1/upload",
        files=[("file", (name, data, "text/csv")) for name, data in files],
        data=fields,
    ).prepare()
    assert isinstance(prepared.body, bytes)
    return prepared.body, prepared.headers["Content-Type"]


def _object(moto: Moto, key: str) -> bytes:
    data: bytes = moto.s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
    return data


def test_curl_upload_lands_byte_identical_and_repeat_is_duplicate(moto_deps: Moto) -> None:
    body = (CURL / "body.bin").read_bytes()
    content_type = (CURL / "content-type.txt").read_text().strip()
    event = rest_event("/upload", body, content_type=content_type)

    first = handle(event, None, moto_deps.deps)
    assert first["statusCode"] == 200
    results = body_of(first)["results"]
    assert [r["status"] for r in results] == ["stored", "stored"]
    for result, name in zip(results, ["walk export.csv", "weird.csv"], strict=True):
        original = (CURL / name).read_bytes()
        assert result["filename"] == name
        assert result["sha256"] == hashlib.sha256(original).hexdigest()
        assert result["size"] == len(original)
        # The API key's user (kid-alice -> alice) wins over the user_id part.
        assert result["key"].startswith(f"uploads/alice/{result['sha256']}/")
        assert _object(moto_deps, result["key"]) == original

    second = body_of(handle(event, None, moto_deps.deps))["results"]
    assert [r["status"] for r in second] == ["duplicate", "duplicate"]
    assert [r["key"] for r in second] == [r["key"] for r in results]


def test_requests_upload_over_http_api_v2_uses_user_id_part(moto_deps: Moto) -> None:
    data = b"a,b\r\n1,\xff\x00\r\n"
    body, content_type = _multipart([("export.csv", data)], user_id="bob")
    event = http_event("/upload", body, content_type=content_type, stage="prod", binary=True)

    results = body_of(handle(event, None, anonymous(moto_deps.deps)))["results"]
    key = f"uploads/bob/{hashlib.sha256(data).hexdigest()}/export.csv"
    assert results == [
        {
            "filename": "export.csv",
            "key": key,
            "sha256": hashlib.sha256(data).hexdigest(),
            "size": len(data),
            "status": "stored",
        }
    ]
    assert _object(moto_deps, key) == data
    again = body_of(handle(event, None, anonymous(moto_deps.deps)))["results"]
    assert again[0]["status"] == "duplicate"


@pytest.mark.parametrize(
    ("filename", "expected"),
    [
        ("../../etc/passwd", "passwd"),
        ("/etc/shadow", "shadow"),
        ("C:\\Users\\x\\..\\evil.csv", "evil.csv"),
        ("..", "file"),
        ("a\x00b\x1b.csv", "ab.csv"),
        ("\u202egnp.csv", "gnp.csv"),
        ("..\uff0f..\uff0fup.csv", "up.csv"),
    ],
)
def test_hostile_filenames_stay_under_the_users_prefix(
    moto_deps: Moto, filename: str, expected: str
) -> None:
    body, content_type = _multipart([(filename, b"x")])
    result = body_of(
        handle(rest_event("/upload", body, content_type=content_type), None, moto_deps.deps)
    )
    key = result["results"][0]["key"]
    assert key == f"uploads/alice/{hashlib.sha256(b'x').hexdigest()}/{expected}"
    listed = moto_deps.s3.list_objects_v2(Bucket=BUCKET)["Contents"]
    assert [obj["Key"] for obj in listed] == [key]


def test_manifest_mismatch_rejects_that_file_and_stores_the_other(moto_deps: Moto) -> None:
    good, bad = b"good\n", b"bad\n"
    manifest = json.dumps(
        [
            {"filename": "good.csv", "sha256": hashlib.sha256(good).hexdigest(), "size": 5},
            {"filename": "bad.csv", "sha256": hashlib.sha256(b"other").hexdigest(), "size": 4},
        ]
    )
    body, content_type = _multipart([("good.csv", good), ("bad.csv", bad)], manifest=manifest)
    response = handle(rest_event("/upload", body, content_type=content_type), None, moto_deps.deps)
    results = body_of(response)["results"]
    assert [r["status"] for r in results] == ["stored", "rejected"]
    assert results[1]["error"].startswith("sha256_mismatch")


def test_nothing_valid_is_422_with_the_reasons(memory_deps: Dependencies) -> None:
    manifest = json.dumps([{"filename": "a.csv", "size": 99}])
    body, content_type = _multipart([("a.csv", b"abc")], manifest=manifest)
    response = handle(rest_event("/upload", body, content_type=content_type), None, memory_deps)
    assert response["statusCode"] == 422
    payload = body_of(response)
    assert payload["error"]["code"] == "nothing_valid"
    assert payload["results"][0]["error"].startswith("size_mismatch")


@pytest.mark.parametrize(
    ("body", "content_type", "status", "code"),
    [
        (b"garbage", "multipart/form-data; boundary=xyz", 400, "malformed_multipart"),
        (
            b'--xyz\r\nContent-Disposition: form-data; name="file"',
            "multipart/form-data; boundary=xyz",
            400,
            "malformed_multipart",
        ),
        (b"{}", "application/json", 415, "unsupported_media_type"),
        (b"x", "multipart/form-data", 400, "malformed_multipart"),
    ],
)
def test_malformed_upload_is_a_client_error(
    memory_deps: Dependencies, body: bytes, content_type: str, status: int, code: str
) -> None:
    response = handle(rest_event("/upload", body, content_type=content_type), None, memory_deps)
    assert response["statusCode"] == status
    assert body_of(response)["error"]["code"] == code


def test_session_number_comes_back_as_exact_decimal(moto_deps: Moto) -> None:
    session = '{"user_id": "alice", "timestamp": "2026-02-17T10:00:00Z", "distance": 0.1, "n": 3}'
    response = handle(rest_event("/session", session, binary=False), None, moto_deps.deps)
    assert body_of(response)["results"][0]["status"] == "stored"
    item = moto_deps.dynamodb.get_item(
        TableName=TABLE,
        Key={"user_id": {"S": "alice"}, "timestamp": {"S": "2026-02-17T10:00:00Z"}},
    )["Item"]
    assert item["distance"] == {"N": "0.1"}
    assert Decimal(item["distance"]["N"]) == Decimal("0.1")


def test_batch_stores_valid_sessions_and_rejects_the_bad_one(moto_deps: Moto) -> None:
    batch = {
        "sessions": [
            {"user_id": "alice", "timestamp": "2026-02-17T10:00:00Z", "steps": 10},
            {"user_id": "alice", "timestamp": "not a time", "steps": 11},
            {"user_id": "alice", "timestamp": "2026-02-17T12:00:00Z", "steps": 12},
        ]
    }
    event = rest_event("/session", json.dumps(batch), binary=False)
    results = body_of(handle(event, None, moto_deps.deps))["results"]
    assert [r["status"] for r in results] == ["stored", "rejected", "stored"]
    assert results[1]["error"].startswith("invalid_timestamp")
    count = moto_deps.dynamodb.scan(TableName=TABLE)["Count"]
    assert count == 2

    # Same content again: duplicate; changed content: stored (replaces the old item).
    batch["sessions"][2]["steps"] = 13
    again = body_of(handle(event | {"body": json.dumps(batch)}, None, moto_deps.deps))["results"]
    assert [r["status"] for r in again] == ["duplicate", "rejected", "stored"]


def test_session_for_another_user_is_rejected_under_an_api_key(memory_deps: Dependencies) -> None:
    session = '{"user_id": "mallory", "timestamp": "2026-02-17T10:00:00Z"}'
    results = body_of(handle(rest_event("/session", session), None, memory_deps))["results"]
    assert results[0]["status"] == "rejected"
    assert results[0]["error"].startswith("user_mismatch")


def test_presign_then_duplicate_once_the_object_exists(moto_deps: Moto) -> None:
    data = b"big,file\n"
    sha = hashlib.sha256(data).hexdigest()
    request = json.dumps({"files": [{"filename": "big.csv", "sha256": sha, "size": len(data)}]})
    event = rest_event("/presign", request, binary=False)
    first = body_of(handle(event, None, moto_deps.deps))["results"][0]
    assert first["status"] == "upload"
    assert first["method"] == "PUT"
    assert first["headers"]["Content-Length"] == str(len(data))
    # S3 wants the base64 of the raw digest here (hex is refused as InvalidRequest).
    checksum = base64.b64encode(hashlib.sha256(data).digest()).decode("ascii")
    assert first["headers"]["x-amz-checksum-sha256"] == checksum
    assert (
        "x-amz-checksum-sha256" in parse_qs(urlsplit(first["url"]).query)["X-Amz-SignedHeaders"][0]
    )
    assert first["key"] == f"uploads/alice/{sha}/big.csv"

    moto_deps.s3.put_object(Bucket=BUCKET, Key=first["key"], Body=data)
    second = body_of(handle(event, None, moto_deps.deps))["results"][0]
    assert second == {"filename": "big.csv", "key": first["key"], "status": "duplicate"}


@pytest.mark.parametrize(
    ("event", "status"),
    [
        (rest_event("/nowhere", "{}"), 404),
        (rest_event("/upload", None, method="GET"), 405),
        (http_event("/session", None, method="PUT"), 405),
        (http_event("/nowhere", "{}", stage="prod"), 404),
    ],
)
def test_unknown_route_404_and_wrong_method_405(
    memory_deps: Dependencies, event: dict[str, Any], status: int
) -> None:
    response = handle(event, None, memory_deps)
    assert response["statusCode"] == status
    assert set(body_of(response)["error"]) == {"code", "message"}


def test_api_key_value_never_reaches_output(
    memory_deps: Dependencies, capsys: pytest.CaptureFixture[str]
) -> None:
    for event in (
        rest_event("/session", '{"user_id": "alice", "timestamp": "2026-01-01"}'),
        rest_event("/session", "not json"),
        rest_event("/upload", b"junk", content_type="multipart/form-data; boundary=b"),
    ):
        response = handle(event, None, memory_deps)
        assert FAKE_API_KEY not in json.dumps(response)
    captured = capsys.readouterr()
    assert FAKE_API_KEY not in captured.out + captured.err


def test_storage_fault_of_one_entry_is_its_retry_not_a_500(memory_deps: Dependencies) -> None:
    class Broken:
        def put_unless_same(self, item: Any, content_hash: str) -> Any:
            raise RuntimeError("dynamodb is down")

    deps = Dependencies(memory_deps.settings, memory_deps.objects, Broken())
    response = handle(
        rest_event("/session", '{"user_id":"alice","timestamp":"2026-01-01"}'), None, deps
    )
    assert response["statusCode"] == 200
    [result] = body_of(response)["results"]
    assert result["status"] == "retry"
    assert result["error"].startswith("server_error: RuntimeError: ")


def test_fault_outside_any_entry_is_a_500_with_a_json_error(
    memory_deps: Dependencies, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(body: bytes) -> list[object]:
        raise RuntimeError("parser bug")

    monkeypatch.setattr(app_module, "session_texts", broken)
    response = handle(rest_event("/session", "{}"), None, memory_deps)
    assert response["statusCode"] == 500
    assert body_of(response)["error"]["code"] == "internal_error"


def test_curl_fixture_is_the_committed_capture() -> None:
    """Guard against an editor 'fixing' line endings in the captured body."""
    body = (CURL / "body.bin").read_bytes()
    assert body.count(b"\r\n") > 10
    assert (CURL / "weird.csv").read_bytes() in body
    assert Path(CURL / "content-type.txt").read_text().startswith("multipart/form-data; boundary=")
