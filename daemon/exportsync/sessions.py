"""Session summary files: strict parsing and exact re-encoding.

A session file holds one JSON object or a list of them. Numbers are parsed as `Decimal` and written
back digit for digit, so ``0.1`` reaches DynamoDB as ``Decimal('0.1')`` and never passes through a
binary float. A file that is not JSON at all is refused as a whole; a session that is malformed
on its own (NaN or Infinity, no timestamp, wrong types, too big, too deep) is refused alone, with
the reason the server would give (both ask ``exportsync_wire.sessions``), and the rest of the file
still goes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from exportsync.errors import FileRejected
from exportsync_wire import limits
from exportsync_wire import sessions as wire_sessions
from exportsync_wire.sessions import Unrepresentable, parse_number

__all__ = ["ParsedSession", "encode_json", "parse_session_file"]


@dataclass(frozen=True)
class ParsedSession:
    """One entry of a session file: its encoded body, or the reason it cannot be sent."""

    index: int
    body: bytes | None
    error: str | None
    user_id: str | None
    timestamp: str | None


def _integer(literal: str) -> int | Unrepresentable:
    try:
        return int(literal)
    except ValueError:  # longer than sys.get_int_max_str_digits()
        return Unrepresentable(literal)


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
        doc = json.loads(
            text, parse_float=parse_number, parse_int=_integer, parse_constant=parse_number
        )
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
    """The server's checks (``exportsync_wire.sessions``), asked before a request is spent."""
    if not isinstance(entry, dict):
        return ParsedSession(index, None, "a session must be a JSON object", None, None)
    session = dict(entry)
    if session.get("user_id") is None and default_user_id is not None:
        session["user_id"] = default_user_id
    user_id = session.get("user_id")
    timestamp = session.get("timestamp")
    shown_user = user_id if isinstance(user_id, str) else None
    shown_ts = timestamp if isinstance(timestamp, str) else None
    error = (
        _local_user_error(user_id)
        or wire_sessions.key_error(user_id, timestamp)
        or wire_sessions.content_error(session)
    )
    if error is None:
        body = encode_json(session)  # content_error refused lone surrogates: it is UTF-8
        if len(body) > limits.SESSION_TEXT_BYTES:
            error = f"too_large: a session is at most {limits.SESSION_TEXT_BYTES} bytes of JSON"
        else:
            error = wire_sessions.size_error(session)
        if error is None:
            return ParsedSession(index, body, None, shown_user, shown_ts)
    return ParsedSession(index, None, error, shown_user, shown_ts)


def _local_user_error(user_id: object) -> str | None:
    """What the daemon refuses beyond the server: no user at all, or a blank one (a typo)."""
    if user_id is None:
        return "missing user_id (and api.user_id is not set)"
    if isinstance(user_id, str) and user_id and not user_id.strip():
        return "invalid_user_id: user_id is blank"
    return None


def encode_json(value: Any) -> bytes:
    """Compact UTF-8 JSON with `Decimal` written exactly as parsed.

    Strings are written as UTF-8, not \\u-escaped, so the size checked is the size the server
    counts (escaping would make non-Latin text up to 3x larger). A lone
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
