"""Session files: strict parsing, per-entry errors, and numbers re-encoded digit for digit."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from exportsync.errors import FileRejected
from exportsync.sessions import ParsedSession, encode_json, parse_session_file
from exportsync_wire import limits
from exportsync_wire.sessions import HASH_ATTRIBUTE

TS = "2024-05-01T12:00:00+00:00"


def one(data: bytes | str, default_user_id: str | None = "alice") -> ParsedSession:
    raw = data.encode() if isinstance(data, str) else data
    [entry] = parse_session_file(raw, default_user_id=default_user_id)
    return entry


def body_of(entry: ParsedSession) -> bytes:
    assert entry.error is None, entry.error
    assert entry.body is not None
    return entry.body


def decoded(entry: ParsedSession) -> Any:
    return json.loads(body_of(entry), parse_float=Decimal)


# -- exact numbers ------------------------------------------------------------------------------


def test_point_one_is_sent_byte_for_byte() -> None:
    entry = one(f'{{"user_id":"u","timestamp":"{TS}","score":0.1}}')
    assert b'"score":0.1}' in body_of(entry)
    assert decoded(entry)["score"] == Decimal("0.1")


@pytest.mark.parametrize(
    ("literal", "expected"),
    [
        ("0.1", Decimal("0.1")),
        ("1.10", Decimal("1.10")),  # trailing zero kept: the Decimal keeps its exponent
        ("1e126", Decimal("1e126")),  # beyond a float: no overflow to inf
        ("-1e-165", Decimal("-1e-165")),  # beyond a float: no underflow to 0
        ("-0.0", Decimal("-0.0")),
        ("-0", 0),
        ("12345678901234567890123456789012345678", 12345678901234567890123456789012345678),
        ("0.30000000000000000000000000001", Decimal("0.30000000000000000000000000001")),
    ],
)
def test_numbers_keep_their_exact_value(literal: str, expected: object) -> None:
    value = decoded(one(f'{{"user_id":"u","timestamp":"{TS}","n":{literal}}}'))["n"]
    assert value == expected
    assert str(value) == str(expected)  # same digits and exponent, not just an equal value


@pytest.mark.parametrize(
    "literal", ["1e127", "-1e-166", "123456789012345678901234567890123456789", "0.1" + "1" * 38]
)
def test_a_number_dynamodb_cannot_hold_refuses_its_session(literal: str) -> None:
    entry = one(f'{{"user_id":"u","timestamp":"{TS}","n":{literal}}}')
    assert entry.body is None
    assert entry.error == "number_out_of_range: DynamoDB cannot hold a number"


def test_the_sign_of_negative_zero_decimal_survives() -> None:
    value = decoded(one(f'{{"user_id":"u","timestamp":"{TS}","n":-0.0}}'))["n"]
    assert isinstance(value, Decimal)
    assert value.is_signed()


def test_nested_objects_and_lists_are_preserved() -> None:
    doc = (
        f'{{"user_id":"u","timestamp":"{TS}",'
        '"laps":[{"t":61.25,"ok":true},{"t":null,"tags":["a","b\\"c"]}],'
        '"meta":{"device":{"fw":"1.2.3","temp":-3.5e-2},"empty":{},"none":[]}}'
    )
    entry = one(doc)
    assert decoded(entry) == json.loads(doc, parse_float=Decimal)


def test_non_ascii_text_is_sent_as_utf8_and_counted_as_such() -> None:
    entry = one(f'{{"user_id":"ü","timestamp":"{TS}","note":"Grüße 日本 🚲"}}')
    assert "Grüße 日本 🚲".encode() in body_of(entry)
    assert decoded(entry)["note"] == "Grüße 日本 🚲"


def test_a_non_ascii_session_under_400kb_in_utf8_is_not_refused() -> None:
    # ~300 KB of UTF-8; \\u-escaped it would be ~600 KB and wrongly over the limit.
    text = "日" * 100_000
    entry = one(json.dumps({"user_id": "u", "timestamp": TS, "note": text}, ensure_ascii=False))
    assert len(body_of(entry)) < limits.ITEM_CHECKED_BYTES


def test_escaped_input_is_decoded_before_it_is_sent() -> None:
    entry = one(f'{{"user_id":"u","timestamp":"{TS}","s":"\\u00e9\\n\\t\\u0000"}}')
    assert decoded(entry)["s"] == "é\n\t\x00"


def test_a_lone_surrogate_refuses_that_session_only() -> None:
    data = f'[{{"user_id":"u","timestamp":"{TS}","s":"\\ud800"}},{{"timestamp":"{TS}"}}]'
    bad, good = parse_session_file(data.encode(), default_user_id="alice")
    assert bad.body is None
    assert bad.error is not None
    assert "surrogate" in bad.error
    assert good.body is not None


# -- the file as a whole ------------------------------------------------------------------------


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_refuse_only_the_session_holding_them(constant: str) -> None:
    good = f'{{"user_id":"u","timestamp":"{TS}","x":1}}'
    bad = f'{{"user_id":"u","timestamp":"{TS}","m":{{"deep":[1,{constant}]}}}}'
    first, second = parse_session_file(f"[{good},{bad}]".encode(), default_user_id=None)
    assert first.body == good.encode()
    assert second.body is None
    assert second.error is not None
    assert constant.lstrip("-") in second.error


def test_a_null_user_id_gets_the_default() -> None:
    (entry,) = parse_session_file(
        f'{{"user_id":null,"timestamp":"{TS}"}}'.encode(), default_user_id="alice"
    )
    assert entry.body is not None
    assert json.loads(entry.body)["user_id"] == "alice"


def test_non_utf8_rejects_the_file() -> None:
    data = f'{{"user_id":"u","timestamp":"{TS}","name":"'.encode() + b'\xff\xfe"}'
    with pytest.raises(FileRejected, match="not UTF-8"):
        parse_session_file(data, default_user_id=None)


def test_a_utf8_bom_is_accepted() -> None:
    entry = one(b"\xef\xbb\xbf" + f'{{"user_id":"u","timestamp":"{TS}"}}'.encode())
    assert decoded(entry) == {"user_id": "u", "timestamp": TS}


@pytest.mark.parametrize(
    "data",
    [b"", b"{", b'{"a":1,}', b"[]", b"42", b'"text"', b"null", b"{} {}"],
    ids=["empty", "truncated", "trailing-comma", "empty-list", "number", "string", "null", "two"],
)
def test_files_that_are_not_a_session_or_a_list_are_rejected(data: bytes) -> None:
    with pytest.raises(FileRejected):
        parse_session_file(data, default_user_id="alice")


def test_invalid_json_names_the_position() -> None:
    with pytest.raises(FileRejected, match="line 2 column"):
        parse_session_file(b'{"user_id": "u",\n  timestamp: 1}', default_user_id=None)


def test_a_pathologically_nested_file_is_rejected_not_crashing() -> None:
    data = b'{"user_id":"u","timestamp":"x","a":' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    with pytest.raises(FileRejected, match="nested"):
        parse_session_file(data, default_user_id=None)


def test_nesting_beyond_dynamodb_limit_refuses_that_session_only() -> None:
    def nested(levels: int) -> str:
        # The session's own fields are level 1; each list adds one.
        return "[" * (levels - 1) + "1" + "]" * (levels - 1)

    data = (
        f'[{{"user_id":"u","timestamp":"{TS}","a":{nested(limits.ITEM_DEPTH)}}},'
        f'{{"user_id":"u","timestamp":"{TS}","a":{nested(limits.ITEM_DEPTH + 1)}}},'
        f'{{"user_id":"u","timestamp":"{TS}","a":{nested(600)}}}]'
    )
    ok, too_deep, far_too_deep = parse_session_file(data.encode(), default_user_id=None)
    assert ok.body is not None
    for entry in (too_deep, far_too_deep):
        assert entry.body is None
        assert entry.error is not None
        assert "too_deep" in entry.error


# -- per-session checks -------------------------------------------------------------------------


def test_one_bad_entry_in_a_list_does_not_stop_the_others() -> None:
    data = json.dumps(
        [
            {"user_id": "u", "timestamp": TS, "n": 1},
            {"user_id": "u", "timestamp": "yesterday"},
            "not an object",
            {"user_id": "u", "timestamp": TS, "n": 2},
        ]
    )
    entries = parse_session_file(data.encode(), default_user_id=None)
    assert [e.index for e in entries] == [0, 1, 2, 3]
    assert [e.body is not None for e in entries] == [True, False, False, True]
    assert [e.error is None for e in entries] == [True, False, False, True]
    assert entries[1].error is not None
    assert "ISO-8601" in entries[1].error
    assert entries[1].timestamp == "yesterday"
    assert entries[2].error == "a session must be a JSON object"


def test_missing_user_id_gets_the_default() -> None:
    entry = one(f'{{"timestamp":"{TS}","x":1}}', default_user_id="alice")
    assert entry.user_id == "alice"
    assert decoded(entry) == {"timestamp": TS, "x": 1, "user_id": "alice"}


def test_an_explicit_user_id_is_not_replaced_by_the_default() -> None:
    entry = one(f'{{"user_id":"bob","timestamp":"{TS}"}}', default_user_id="alice")
    assert entry.user_id == "bob"
    assert decoded(entry)["user_id"] == "bob"


def test_missing_user_id_without_a_default_is_an_error() -> None:
    entry = one(f'{{"timestamp":"{TS}"}}', default_user_id=None)
    assert entry.body is None
    assert entry.error is not None
    assert "user_id" in entry.error


@pytest.mark.parametrize("user_id", ['""', '"   "', "42", "null", '["u"]'])
def test_user_id_must_be_a_non_empty_string(user_id: str) -> None:
    entry = one(f'{{"user_id":{user_id},"timestamp":"{TS}"}}', default_user_id=None)
    assert entry.body is None
    assert entry.error is not None
    assert "user_id" in entry.error


@pytest.mark.parametrize(
    "timestamp", ['"yesterday"', '"2024-13-01"', '""', "1714564800", "null", '"12:00 01.05.2024"']
)
def test_timestamp_that_is_not_iso_8601_is_an_error(timestamp: str) -> None:
    entry = one(f'{{"user_id":"u","timestamp":{timestamp}}}')
    assert entry.body is None
    assert entry.error is not None
    assert "timestamp" in entry.error


def test_missing_timestamp_is_an_error() -> None:
    entry = one('{"user_id":"u"}')
    assert entry.error is not None
    assert "timestamp" in entry.error


@pytest.mark.parametrize(
    "timestamp", ["2024-05-01", "2024-05-01T12:00:00Z", "2024-05-01T12:00:00.123+02:00"]
)
def test_iso_timestamps_are_accepted(timestamp: str) -> None:
    entry = one(f'{{"user_id":"u","timestamp":"{timestamp}"}}')
    assert entry.timestamp == timestamp
    assert entry.error is None


def test_a_session_over_the_servers_item_count_is_an_error_and_at_it_is_not() -> None:
    # The server counts names and values, plus the content hash it adds (64 hex digits).
    fixed = len("user_id") + 1 + len("timestamp") + len(TS) + len("pad") + len(HASH_ATTRIBUTE) + 64
    head = {"user_id": "u", "timestamp": TS}
    fits = dict(head, pad="x" * (limits.ITEM_CHECKED_BYTES - fixed))
    over = dict(head, pad="x" * (limits.ITEM_CHECKED_BYTES - fixed + 1))
    data = json.dumps([fits, over]).encode()
    ok, big = parse_session_file(data, default_user_id=None)
    assert ok.body is not None
    assert big.body is None
    assert big.error == f"too_large: item is over {limits.ITEM_CHECKED_BYTES} bytes"
    assert big.user_id == "u"


def test_a_session_text_over_the_servers_limit_is_an_error() -> None:
    # Many small numbers: little for DynamoDB to count, much JSON text to send.
    session = {"user_id": "u", "timestamp": TS, "v": [0] * (limits.SESSION_TEXT_BYTES // 2)}
    [entry] = parse_session_file(json.dumps(session).encode(), default_user_id=None)
    assert entry.body is None
    assert (
        entry.error == f"too_large: a session is at most {limits.SESSION_TEXT_BYTES} bytes of JSON"
    )


# -- property: the encoder is exact -------------------------------------------------------------

_TEXT_CHARS = st.characters(exclude_categories=["Cs"])  # lone surrogates: tested above
_finite_decimals = st.decimals(allow_nan=False, allow_infinity=False)
_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**40), max_value=10**40)
    | _finite_decimals
    | st.text(_TEXT_CHARS)
)
_trees = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=5)
        | st.dictionaries(st.text(_TEXT_CHARS, max_size=8), inner, max_size=5)
    ),
    max_leaves=25,
)


def _same(parsed: object, original: object) -> bool:
    """Stricter than ==: tells Decimal('1.0') from Decimal('1.00'), and True from 1."""
    if isinstance(parsed, dict) and isinstance(original, dict):
        return parsed.keys() == original.keys() and all(
            _same(parsed[k], original[k]) for k in parsed
        )
    if isinstance(parsed, list) and isinstance(original, list):
        return len(parsed) == len(original) and all(
            _same(x, y) for x, y in zip(parsed, original, strict=True)
        )
    if isinstance(parsed, Decimal) and isinstance(original, Decimal):
        return parsed.as_tuple() == original.as_tuple()
    if type(parsed) is int and isinstance(original, Decimal):
        # An integral Decimal ("5", "-0") is written without a point and reads back as int.
        return original.as_tuple().exponent == 0 and parsed == original
    return type(parsed) is type(original) and parsed == original


@given(_trees)
def test_encode_json_round_trips_exactly(value: object) -> None:
    encoded = encode_json(value)
    parsed = json.loads(encoded, parse_float=Decimal)
    assert parsed == value
    assert _same(parsed, value)


@given(_trees)
def test_a_parsed_session_body_holds_the_same_values(extra: object) -> None:
    session = {"user_id": "u", "timestamp": TS, "extra": extra}
    entry = one(encode_json(session), default_user_id=None)
    if entry.error is not None:
        # Only what the server refuses too: nesting past its limit, an empty attribute name, a
        # number DynamoDB cannot hold.
        assert entry.error.startswith(
            ("too_deep:", "invalid_attribute_name:", "number_out_of_range:")
        )
        return
    assert json.loads(body_of(entry), parse_float=Decimal) == session


def test_encode_json_refuses_what_json_cannot_hold() -> None:
    with pytest.raises(ValueError, match="NaN"):
        encode_json({"x": Decimal("NaN")})
    with pytest.raises(ValueError, match="NaN"):
        encode_json([Decimal("-Infinity")])
    with pytest.raises(TypeError):
        encode_json({"x": 0.5})  # a float never gets here: it would have lost digits already


@pytest.mark.parametrize(
    ("literal", "said"),
    [
        ("1e9999999999999999999", "number_out_of_range"),
        ("1e-9999999999999999999", "number_out_of_range"),
        ("-2.5E+99999999999999999999", "number_out_of_range"),
        ("1" + "0" * 5000, "number_out_of_range"),
    ],
)
def test_a_number_decimal_cannot_hold_refuses_only_its_session(literal: str, said: str) -> None:
    good = f'{{"timestamp": "{TS}", "v": 1}}'
    bad = f'{{"timestamp": "{TS}", "v": {literal}}}'
    entries = parse_session_file(f"[{good}, {bad}]".encode(), default_user_id="alice")
    assert entries[0].error is None
    assert entries[1].body is None
    assert entries[1].error is not None
    assert said in entries[1].error
