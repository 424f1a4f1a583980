"""Session summary files: strict parsing and exact re-encoding.

A session file holds one JSON object or a list of them. Numbers are parsed as `Decimal` and written
back digit for digit, so ``0.1`` reaches DynamoDB as ``Decimal('0.1')`` and never passes through a
binary float. A file that is not JSON at all is refused as a whole; a session that is malformed
on its own (NaN or Infinity, no timestamp, wrong types, too big, too deep) is refused alone and
the rest of the file still goes.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from exportsync.errors import FileRejected
from exportsync_wire import limits

__all__ = [
    "MAX_DEPTH",
    "MAX_SESSION_BYTES",
    "ParsedSession",
    "encode_json",
    "parse_session_file",
]

# DynamoDB's item limit; the server enforces it too, this spares a request.
MAX_SESSION_BYTES = limits.ITEM_BYTES
# DynamoDB's nesting limit (the Lambda checks the same). It also keeps the recursive encoder far
# from Python's recursion limit, which a hostile file could otherwise reach.
MAX_DEPTH = limits.ITEM_DEPTH


@dataclass(frozen=True)
class ParsedSession:
    """One entry of a session file: its encoded body, or the reason it cannot be sent."""

    index: int
    body: bytes | None
    error: str | None
    user_id: str | None
    timestamp: str | None


class _Unusable:
    """Stands in for a number that cannot be sent (NaN, Infinity, an exponent or a length that
    Decimal or int cannot hold) while parsing, so only the session holding it is refused."""

    def __init__(self, reason: str) -> None:
        self.reason = reason


def _non_finite(name: str) -> Any:
    return _Unusable(f"{name} is not a valid JSON number (DynamoDB cannot store it)")


def _decimal(literal: str) -> Any:
    try:
        return Decimal(literal)
    except (ArithmeticError, ValueError):  # decimal.InvalidOperation: exponent beyond its range
        return _Unusable(f"number {literal} is beyond what a Decimal can hold")


def _integer(literal: str) -> Any:
    try:
        return int(literal)
    except ValueError:  # longer than sys.get_int_max_str_digits()
        digits = len(literal.lstrip("-"))
        return _Unusable(f"integer of {digits} digits is too long to be a number")


def parse_session_file(data: bytes, *, default_user_id: str | None) -> list[ParsedSession]:
    """Parse a session file; raises FileRejected when the file as a whole is not usable."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise FileRejected(f"session file is not UTF-8: {exc.reason} at byte {exc.start}") from exc
    if not text.strip():
        # json's own words for this, "line 1 column 1", send people looking for a typo.
        raise FileRejected("session file is empty: it must hold one JSON object or a list of them")
    try:
        doc = json.loads(text, parse_float=_decimal, parse_int=_integer, parse_constant=_non_finite)
    except json.JSONDecodeError as exc:
        raise FileRejected(
            f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
        ) from exc
    except RecursionError:
        raise FileRejected("invalid JSON: nested too deeply") from None
    except ValueError as exc:
        raise FileRejected(f"invalid JSON: {exc}") from exc
    if isinstance(doc, dict):
        entries: list[Any] = [doc]
    elif isinstance(doc, list) and doc:
        entries = doc
    else:
        raise FileRejected("a session file holds one JSON object or a non-empty list of objects")
    return [_parse_one(i, entry, default_user_id) for i, entry in enumerate(entries)]


def _parse_one(index: int, entry: Any, default_user_id: str | None) -> ParsedSession:
    if not isinstance(entry, dict):
        return ParsedSession(index, None, "a session must be a JSON object", None, None)
    session = dict(entry)
    if session.get("user_id") is None and default_user_id is not None:
        session["user_id"] = default_user_id
    user_id = session.get("user_id")
    timestamp = session.get("timestamp")
    shown_user = user_id if isinstance(user_id, str) else None
    shown_ts = timestamp if isinstance(timestamp, str) else None
    error = _check_keys(user_id, timestamp) or _check_value(session, 0)
    if error is None:
        try:
            body = encode_json(session)
        except UnicodeEncodeError:
            return ParsedSession(
                index, None, "a string holds a lone surrogate (not UTF-8)", shown_user, shown_ts
            )
        if len(body) > MAX_SESSION_BYTES:
            error = f"session is {len(body)} bytes, over DynamoDB's {MAX_SESSION_BYTES}-byte limit"
        else:
            return ParsedSession(index, body, None, shown_user, shown_ts)
    return ParsedSession(index, None, error, shown_user, shown_ts)


def _check_value(value: object, depth: int) -> str | None:
    """An unusable number anywhere, or nesting past DynamoDB's limit (its fields are at depth 1)."""
    if isinstance(value, _Unusable):
        return value.reason
    if depth > MAX_DEPTH:
        return f"nested deeper than {MAX_DEPTH} levels (DynamoDB's limit)"
    children = (
        value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
    )
    for child in children:
        error = _check_value(child, depth + 1)
        if error:
            return error
    return None


def _check_keys(user_id: object, timestamp: object) -> str | None:
    if user_id is None:
        return "missing user_id (and api.user_id is not set)"
    if not isinstance(user_id, str) or not user_id.strip():
        return "user_id must be a non-empty string"
    if not isinstance(timestamp, str):
        return "timestamp must be an ISO-8601 string"
    try:
        dt.datetime.fromisoformat(timestamp)
    except ValueError:
        return f"timestamp {timestamp!r} is not ISO-8601"
    return None


def encode_json(value: Any) -> bytes:
    """Compact UTF-8 JSON with `Decimal` written exactly as parsed.

    Strings are written as UTF-8, not \\u-escaped, so the size checked against MAX_SESSION_BYTES
    is the size DynamoDB counts (escaping would make non-Latin text up to 3x larger). A lone
    surrogate cannot be UTF-8: UnicodeEncodeError.
    """
    return _encode(value).encode("utf-8")


def _encode(value: Any) -> str:
    if isinstance(value, Mapping):
        items = (f"{_string(str(k))}:{_encode(v)}" for k, v in value.items())
        return "{" + ",".join(items) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(_encode(v) for v in value) + "]"
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError("NaN and Infinity are not JSON")
        return str(value)
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, bool) or value is None or isinstance(value, int):
        return json.dumps(value)
    raise TypeError(f"cannot encode {type(value).__name__} as JSON")


def _string(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)
