"""Pure parsing and validation, called directly."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
import requests

from exportsync_api.errors import ApiError
from exportsync_api.form import MAX_PARTS, parse_form
from exportsync_api.keys import InvalidKeyPart, object_key, safe_user
from exportsync_api.presign import parse_presign
from exportsync_api.sessions import (
    Rejected,
    ValidSession,
    load_json,
    parse_sessions,
    validate_session,
)
from exportsync_api.settings import ConfigError, load_settings

_TS = "2026-02-17T10:00:00+00:00"


def _session(**fields: object) -> object:
    return load_json(json.dumps({"user_id": "alice", "timestamp": _TS, **fields}).encode())


def test_numbers_parse_as_exact_decimals() -> None:
    [raw] = parse_sessions(b'{"user_id":"a","timestamp":"2026-01-01","v":0.1,"n":[1e-5, 7]}')
    assert isinstance(raw, dict)
    assert raw["v"] == Decimal("0.1")
    assert raw["n"] == [Decimal("0.00001"), Decimal(7)]


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (b'{"user_id":"alice","timestamp":"2026-01-01","v":NaN}', "not_finite"),
        (b'{"user_id":"alice","timestamp":"2026-01-01","v":-Infinity}', "not_finite"),
        (b'{"user_id":"alice","timestamp":"2026-01-01","v":1e200}', "number_out_of_range"),
        (
            b'{"user_id":"alice","timestamp":"2026-01-01","v":1.23456789012345678901234567890123456789}',
            "number_out_of_range",
        ),
        (b'{"timestamp":"2026-01-01"}', "invalid_user_id"),
        (b'{"user_id":"alice","timestamp":1700000000}', "invalid_timestamp"),
        (b'{"user_id":"alice","timestamp":"yesterday"}', "invalid_timestamp"),
        (
            b'{"user_id":"alice","timestamp":"2026-01-01","exportsync_content_sha256":"x"}',
            "reserved_attribute",
        ),
        (b'{"user_id":"alice","timestamp":"2026-01-01","":1}', "invalid_attribute_name"),
    ],
)
def test_invalid_sessions_are_rejected_with_a_reason(body: bytes, error: str) -> None:
    [raw] = parse_sessions(body)
    checked = validate_session(raw, None)
    assert isinstance(checked, Rejected)
    assert checked.error.startswith(error)


def test_item_near_400kb_is_rejected_and_one_inside_the_margin_is_kept() -> None:
    assert isinstance(validate_session(_session(blob="x" * 420_000), None), Rejected)
    assert isinstance(validate_session(_session(blob="x" * 390_000), None), ValidSession)


def test_user_must_match_the_api_keys_user() -> None:
    assert isinstance(validate_session(_session(), "alice"), ValidSession)
    rejected = validate_session(_session(), "bob")
    assert isinstance(rejected, Rejected)
    # The key's user is named: a client holding someone else's key sees whose it is.
    assert rejected.error == "user_mismatch: user_id 'alice' is not the API key's user 'bob'"


def test_same_content_same_hash_different_content_different_hash() -> None:
    a, b, c = (validate_session(_session(v=x), None) for x in (1, 1, 2))
    assert isinstance(a, ValidSession)
    assert isinstance(b, ValidSession)
    assert isinstance(c, ValidSession)
    assert a.content_hash == b.content_hash != c.content_hash


@pytest.mark.parametrize(
    "body",
    [
        b"[]",
        b"not json",
        b'{"sessions": []}',
        b'{"sessions": {}}',
        json.dumps({"sessions": [{}] * 1001}).encode(),
        b"\xff",
    ],
)
def test_malformed_session_bodies_are_400(body: bytes) -> None:
    with pytest.raises(ApiError) as info:
        parse_sessions(body)
    assert info.value.status == 400


def test_requests_multipart_parses_to_the_same_bytes() -> None:
    data = bytes(range(256)) * 4
    prepared = requests.Request(
        "POST", "http://x/", files={"file": ("b.csv", data)}, data={"user_id": "alice"}
    ).prepare()
    assert isinstance(prepared.body, bytes)
    form = parse_form(prepared.body, prepared.headers["Content-Type"])
    assert [(f.filename, f.data) for f in form.files] == [("b.csv", data)]
    assert form.fields == {"user_id": "alice"}


def test_part_count_and_header_size_are_capped() -> None:
    many = b"".join(
        b'--B\r\nContent-Disposition: form-data; name="x"\r\n\r\nv\r\n'
        for _ in range(MAX_PARTS + 1)
    )
    with pytest.raises(ApiError, match="segment count"):
        parse_form(many + b"--B--\r\n", "multipart/form-data; boundary=B")
    huge = (
        b'--B\r\nContent-Disposition: form-data; name="file"; filename="'
        + b"a" * 5000
        + b'"\r\n\r\nv\r\n--B--\r\n'
    )
    with pytest.raises(ApiError, match="header length"):
        parse_form(huge, "multipart/form-data; boundary=B")


def test_duplicate_text_part_is_malformed() -> None:
    body = b'--B\r\nContent-Disposition: form-data; name="user_id"\r\n\r\na\r\n' * 2 + b"--B--\r\n"
    with pytest.raises(ApiError) as info:
        parse_form(body, "multipart/form-data; boundary=B")
    assert info.value.code == "malformed_multipart"


def test_user_segment_is_encoded_and_bounded() -> None:
    assert safe_user("alice") == "alice"
    assert safe_user("../x") == "%2E.%2Fx"
    assert safe_user("a\\b") == "a%5Cb"
    with pytest.raises(InvalidKeyPart):
        safe_user("")
    with pytest.raises(InvalidKeyPart):
        object_key("alice", "../" + "0" * 61, "a.csv")


def test_presign_request_validation() -> None:
    ok = parse_presign(
        json.dumps({"files": [{"filename": "a", "sha256": "A" * 64, "size": 3}]}).encode()
    )
    assert ok.files[0].sha256 == "a" * 64
    bad_requests: list[dict[str, object]] = [
        {"files": []},
        {"files": [{"filename": "a", "sha256": "zz", "size": 1}]},
        {"files": [{"filename": "a", "sha256": "a" * 64, "size": True}]},
    ]
    for bad in bad_requests:
        with pytest.raises(ApiError):
            parse_presign(json.dumps(bad).encode())


def test_settings_name_the_missing_variable() -> None:
    with pytest.raises(ConfigError, match="EXPORTSYNC_BUCKET"):
        load_settings({"EXPORTSYNC_TABLE": "t"})
    with pytest.raises(ConfigError, match="EXPORTSYNC_KEY_USERS"):
        load_settings(
            {"EXPORTSYNC_BUCKET": "b", "EXPORTSYNC_TABLE": "t", "EXPORTSYNC_KEY_USERS": "[1]"}
        )
    settings = load_settings({"EXPORTSYNC_BUCKET": "b", "EXPORTSYNC_TABLE": "t"})
    assert (settings.presign_seconds, dict(settings.key_users)) == (900, {})
