"""POST /session: parse session summaries exactly (Decimal, never float), validate each item."""

from __future__ import annotations

import decimal
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from boto3.dynamodb.types import TypeSerializer

from exportsync_wire import ErrorCode, ResultsJson, SessionResultJson, Status, limits
from exportsync_wire import sessions as wire_sessions
from exportsync_wire.sessions import Unrepresentable, parse_number

from .budget import Budget
from .errors import ApiError, bad_request
from .jsonscan import ScanError, Texts, split_list, split_sessions, value_count
from .pool import UNHURRIED, Entry, Pool
from .stores import SessionStore

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.type_defs import AttributeValueTypeDef

__all__ = [
    "Rejected",
    "Unrepresentable",
    "ValidSession",
    "load_json",
    "parse_sessions",
    "session_entry",
    "session_texts",
    "session_values",
    "split_part",
    "store_sessions",
    "text_entry",
    "validate_session",
]

_SERIALIZER = TypeSerializer()


@dataclass(frozen=True)
class ValidSession:
    user_id: str
    timestamp: str
    item: dict[str, AttributeValueTypeDef]
    content_hash: str


@dataclass(frozen=True)
class Rejected:
    user_id: object
    timestamp: object
    error: str


def session_texts(body: bytes) -> Texts:
    """A /session body's sessions as unparsed texts: one session object, or each element of
    ``{"sessions": [...]}`` (1..1000). 400 for a malformed outer structure or too many
    sessions, 413 for a lone session over ``limits.SESSION_TEXT_BYTES``; nothing is parsed."""
    try:
        texts = split_sessions(body, limits.MAX_ROUTE_ENTRIES)
    except ScanError:
        raise bad_request(ErrorCode.INVALID_JSON, "body is not valid UTF-8 JSON") from None
    except (TypeError, OverflowError):
        texts = Texts([], listed=True)
    if texts.listed and not 1 <= len(texts.items) <= limits.MAX_ROUTE_ENTRIES:
        raise bad_request(
            ErrorCode.INVALID_BODY,
            f"'sessions' must be a list of 1 to {limits.MAX_ROUTE_ENTRIES}",
        )
    if not texts.listed and len(body) > limits.SESSION_TEXT_BYTES:
        raise ApiError(
            413,
            ErrorCode.TOO_LARGE,
            f"a session is at most {limits.SESSION_TEXT_BYTES} bytes of JSON",
        )
    # A lone session is parsed here too (at most SESSION_TEXT_BYTES): JSON that is not an
    # object fails the request, as it always did.
    if not texts.listed and not isinstance(load_json(body), dict):
        raise bad_request(
            ErrorCode.INVALID_BODY, "body must be a session object or {'sessions': [...]}"
        )
    return texts


def parse_sessions(body: bytes) -> list[object]:
    """One session object or ``{"sessions": [...]}`` (1..1000), parsed; numbers become Decimal."""
    return [load_json(text) for text in session_texts(body).items]


def split_part(data: bytes) -> list[bytes]:
    """A /batch ``session`` part's sessions as unparsed texts: each element of a JSON list, or
    the part itself (a malformed list is one entry, rejected when it is parsed). Raises
    ``OverflowError`` past ``limits.MAX_BATCH_ENTRIES`` elements."""
    text = data.strip()
    if text[:1] != b"[":
        return [data]
    try:
        items = split_list(text, limits.MAX_BATCH_ENTRIES)
    except ScanError:
        return [data]
    return items or [data]


def session_values() -> Budget:
    """The JSON values one request's sessions may hold in all (``limits.SESSION_VALUES``)."""
    return Budget(limits.SESSION_VALUES)


def load_json(body: bytes) -> object:
    """UTF-8 JSON with exact numbers; 400 if it does not parse.

    NaN/Infinity and numbers out of Decimal's range parse (as Decimal or
    :class:`Unrepresentable`) so that the item holding them, not the batch, is rejected.
    """
    try:
        return json.loads(
            body.decode("utf-8"),
            parse_float=parse_number,
            parse_int=parse_number,
            parse_constant=parse_number,
        )
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise bad_request(ErrorCode.INVALID_JSON, "body is not valid UTF-8 JSON") from None


def validate_session(raw: object, expected_user: str | None) -> ValidSession | Rejected:
    """Pure: check keys, identity, numbers and size; build the DynamoDB item."""
    if not isinstance(raw, dict):
        return Rejected(None, None, "invalid_session: a session must be a JSON object")
    user_id, timestamp = raw.get("user_id"), raw.get("timestamp")
    error = (
        wire_sessions.key_error(user_id, timestamp)
        or _identity_error(user_id, expected_user)
        or wire_sessions.content_error(raw)
    )
    if error:
        return Rejected(user_id, timestamp, error)
    # Both checked by key_error; the asserts narrow the types.
    assert isinstance(user_id, str)
    assert isinstance(timestamp, str)
    try:
        item = {name: _SERIALIZER.serialize(value) for name, value in raw.items()}
    except decimal.DecimalException:
        return Rejected(user_id, timestamp, "number_out_of_range: DynamoDB cannot hold a number")
    except TypeError as exc:
        return Rejected(user_id, timestamp, f"unsupported_value: {exc}")
    too_large = wire_sessions.size_error(raw)
    if too_large:
        return Rejected(user_id, timestamp, too_large)
    return ValidSession(user_id, timestamp, item, _content_hash(raw))


def _identity_error(user_id: object, expected_user: str | None) -> str | None:
    if expected_user is not None and user_id != expected_user:
        # Naming the key's user lets a client see at once that its key is someone else's.
        return f"user_mismatch: user_id {user_id!r} is not the API key's user {expected_user!r}"
    return None


def _content_hash(raw: Mapping[str, object]) -> str:
    canonical = json.dumps(raw, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def session_entry(
    raw: object, expected_user: str | None, store: SessionStore
) -> Entry[SessionResultJson]:
    """One session's answer: a rejection now, or its write to run on the pool."""
    checked = validate_session(raw, expected_user)
    if isinstance(checked, Rejected):
        return _rejected(checked.user_id, checked.timestamp, checked.error)

    fields: SessionResultJson = {
        "user_id": checked.user_id,
        "timestamp": checked.timestamp,
        "status": Status.RETRY,  # until the write answers
    }

    def write() -> SessionResultJson:
        return {**fields, "status": store.put_unless_same(checked.item, checked.content_hash)}

    return Entry(fields, write, f"item:{checked.user_id}\0{checked.timestamp}")


def text_entry(
    text: bytes, expected_user: str | None, store: SessionStore, values: Budget
) -> Entry[SessionResultJson]:
    """One unparsed session's answer: refused unparsed when over the size limit, "retry" when
    the request's value budget is spent, else parsed and checked as :func:`session_entry`."""
    if len(text) > limits.SESSION_TEXT_BYTES:
        error = f"too_large: a session is at most {limits.SESSION_TEXT_BYTES} bytes of JSON"
        return _rejected(None, None, error)
    # A session alone always fits: the budget bounds a request, never refuses a session for good.
    if not values.take(min(value_count(text), limits.SESSION_VALUES)):
        error = "request_full: this request holds too many session values; send it again"
        return Entry({"user_id": None, "timestamp": None, "status": Status.RETRY, "error": error})
    try:
        raw = load_json(text)
    except ApiError as exc:
        return _rejected(None, None, f"{exc.code}: {exc.message}")
    return session_entry(raw, expected_user, store)


def _rejected(user_id: object, timestamp: object, error: str) -> Entry[SessionResultJson]:
    return Entry(
        {
            "user_id": user_id if isinstance(user_id, str) else None,
            "timestamp": timestamp if isinstance(timestamp, str) else None,
            "status": Status.REJECTED,
            "error": error,
        }
    )


def store_sessions(
    sessions: list[bytes],
    expected_user: str | None,
    store: SessionStore,
    pool: Pool = UNHURRIED,
) -> ResultsJson[SessionResultJson]:
    """Check and store each session text; valid items are stored whatever happens to others."""
    values = session_values()
    entries = [text_entry(text, expected_user, store, values) for text in sessions]
    return {"results": pool.run(entries)}
