"""What makes a session storable: its keys, its content and its size as DynamoDB counts it.

The function refuses a session with these reasons; the daemon asks the same questions before it
spends a request, so a session the server would refuse fails locally with the server's reason.
Values are parsed JSON: ``str``, ``int`` or ``Decimal``, ``bool``, ``None``, ``list``, ``dict``,
and :class:`Unrepresentable` where a number could not be parsed.
"""

from __future__ import annotations

import decimal
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Final

from . import limits

__all__ = [
    "HASH_ATTRIBUTE",
    "HASH_BYTES",
    "Unrepresentable",
    "content_error",
    "item_size",
    "key_error",
    "parse_number",
    "size_error",
]

# The attribute the server stores each item's content hash in (a sha256, hex): no session
# may set it, and every stored item carries it.
HASH_ATTRIBUTE: Final = "exportsync_content_sha256"
HASH_BYTES: Final = 64
# DynamoDB's numbers: 38 significant digits and a bounded exponent. The context boto3 serializes
# with (boto3.dynamodb.types.DYNAMODB_CONTEXT), so what the function's store refuses is refused
# here first, with its reason.
_NUMBERS: Final = decimal.Context(
    Emin=-128,
    Emax=126,
    prec=38,
    traps=[decimal.Clamped, decimal.Overflow, decimal.Inexact, decimal.Rounded, decimal.Underflow],
)


@dataclass(frozen=True)
class Unrepresentable:
    """A JSON number no Decimal can hold (``1e9999999999999999999``), kept in its place so only
    the session holding it is refused."""

    text: str

    def __str__(self) -> str:
        return self.text


def parse_number(text: str) -> Decimal | Unrepresentable:
    """A ``json.loads`` hook for floats and constants: exact, never a binary float."""
    try:
        return Decimal(text)
    except decimal.DecimalException:
        return Unrepresentable(text)


def key_error(user_id: object, timestamp: object) -> str | None:
    """Why ``user_id`` and ``timestamp`` cannot be the item's partition and sort keys."""
    if not isinstance(user_id, str) or not user_id:
        return "invalid_user_id: user_id must be a non-empty string"
    if len(user_id.encode("utf-8", "surrogatepass")) > limits.PARTITION_KEY_BYTES:
        return "invalid_user_id: user_id is too long"
    if not isinstance(timestamp, str) or not timestamp:
        return "invalid_timestamp: timestamp must be an ISO-8601 string"
    if len(timestamp.encode("utf-8", "surrogatepass")) > limits.SORT_KEY_BYTES:
        return "invalid_timestamp: timestamp is too long"
    try:
        datetime.fromisoformat(timestamp)
    except ValueError:
        return "invalid_timestamp: timestamp is not ISO-8601"
    return None


def content_error(session: Mapping[str, object]) -> str | None:
    """Why a session's attributes cannot be stored: the reserved attribute, an empty name, a
    lone surrogate, NaN or Infinity, a number DynamoDB cannot hold, or nesting past its limit."""
    if HASH_ATTRIBUTE in session:
        return f"reserved_attribute: {HASH_ATTRIBUTE} is set by the server"
    return _walk(session, 0)


def _walk(value: object, depth: int) -> str | None:
    if depth > limits.ITEM_DEPTH:
        return f"too_deep: nesting is deeper than {limits.ITEM_DEPTH} levels"
    if isinstance(value, dict):
        for name, inner in value.items():
            if not name:
                return "invalid_attribute_name: attribute names cannot be empty"
            error = _walk(name, depth) or _walk(inner, depth + 1)
            if error:
                return error
        return None
    if isinstance(value, list):
        for inner in value:
            error = _walk(inner, depth + 1)
            if error:
                return error
        return None
    return _scalar_error(value)


def _scalar_error(value: object) -> str | None:
    if isinstance(value, Unrepresentable):
        return "number_out_of_range: a number is beyond any exact decimal"
    if isinstance(value, Decimal) and not value.is_finite():
        return "not_finite: NaN and Infinity are not allowed"
    if isinstance(value, Decimal | int) and not isinstance(value, bool):
        return None if _storable(value) else "number_out_of_range: DynamoDB cannot hold a number"
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return "invalid_string: lone surrogate in a string"
    return None


def _storable(number: Decimal | int) -> bool:
    try:
        _NUMBERS.create_decimal(number)
    except decimal.DecimalException:
        return False
    return True


def size_error(session: Mapping[str, object]) -> str | None:
    """Why a valid session is too large to store, with the hash attribute the server adds:
    our count and DynamoDB's differ near the limit, so it is held to ``ITEM_CHECKED_BYTES``."""
    size = item_size(session) + len(HASH_ATTRIBUTE) + HASH_BYTES
    if size > limits.ITEM_CHECKED_BYTES:
        return f"too_large: item is over {limits.ITEM_CHECKED_BYTES} bytes"
    return None


def item_size(item: Mapping[str, object]) -> int:
    """DynamoDB's item size rules (names + values), close enough to enforce the 400 KB cap."""
    return sum(len(name.encode("utf-8")) + _value_size(value) for name, value in item.items())


def _value_size(value: object) -> int:
    if isinstance(value, str):
        return len(value.encode("utf-8"))
    if isinstance(value, bool) or value is None:
        return 1
    if isinstance(value, int | Decimal | Unrepresentable):
        mantissa = str(value).upper().partition("E")[0]
        digits = len(mantissa.lstrip("-").replace(".", "").strip("0")) or 1
        return (digits + 1) // 2 + 1
    if isinstance(value, bytes):
        return len(value)
    if isinstance(value, Mapping):
        return 3 + sum(1 + len(str(k).encode("utf-8")) + _value_size(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return 3 + sum(1 + _value_size(v) for v in value)
    return 1
