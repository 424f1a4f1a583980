"""Sizing a JSON body before parsing it: where each session starts and ends, and how many values
it holds, found by scanning the bytes (strings and brackets only), so that no session over the
item limit, and no request over the value budget, is ever turned into Python objects.

Parsing builds an object of 50 to 250 bytes per JSON value (a ``Decimal``, a DynamoDB
``{"N": ...}`` dict): a 6 MB body of ``0,0,0,...`` held 1.25 GB. The scan holds nothing but
the spans it returns.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

__all__ = ["ScanError", "Texts", "split_list", "split_sessions", "value_count"]

_WS = re.compile(rb"[ \t\n\r]*")
# A JSON string (escapes included); unrolled so a long string is one cheap match.
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')
_TOKEN = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]')
_SCALAR = re.compile(rb"[^\s,\]}:\[{\"]+")
_OPENERS = b"[{"
_QUOTE = ord('"')


class ScanError(ValueError):
    """The body's outer structure is not JSON (unbalanced, truncated, a stray token)."""


@dataclass(frozen=True)
class Texts:
    """A body's sessions as byte spans: ``listed`` when they came from a JSON list."""

    items: list[bytes]
    listed: bool


def value_count(text: bytes) -> int:
    """About how many JSON values ``text`` holds (commas and openers, strings included: never
    fewer than the parser will build)."""
    return text.count(b",") + text.count(b"[") + text.count(b"{") + 1


def split_sessions(body: bytes, max_items: int) -> Texts:
    """``{"sessions": [...]}`` as the span of each element, else the whole body as one session.

    Raises :class:`ScanError` for a malformed outer structure, and ``OverflowError`` as soon as
    the list holds more than ``max_items`` elements (the rest is never scanned).
    """
    pos = _skip(body, 0)
    if body[pos : pos + 1] != b"{":
        return Texts([body], listed=False)
    sessions: tuple[int, int] | None = None
    pos = _skip(body, pos + 1)
    if body[pos : pos + 1] == b"}":
        return Texts([body], listed=False)
    while True:
        match = _STRING.match(body, pos)
        if match is None:
            raise ScanError("an object key must be a string")
        key = json.loads(match.group())
        pos = _skip(body, match.end())
        if body[pos : pos + 1] != b":":
            raise ScanError("':' expected after an object key")
        start = _skip(body, pos + 1)
        end = _value_end(body, start)
        if key == "sessions":
            sessions = (start, end)
        pos = _skip(body, end)
        if body[pos : pos + 1] == b"}":
            break
        if body[pos : pos + 1] != b",":
            raise ScanError("',' or '}' expected in an object")
        pos = _skip(body, pos + 1)
    if _skip(body, pos + 1) != len(body):
        raise ScanError("extra data after the body")
    if sessions is None:
        return Texts([body], listed=False)
    start, end = sessions
    if body[start : start + 1] != b"[":
        raise TypeError("'sessions' must be a list")
    return Texts(split_list(body[start:end], max_items), listed=True)


def split_list(text: bytes, max_items: int) -> list[bytes]:
    """The span of each element of the JSON list ``text`` (one value, scanned before)."""
    items: list[bytes] = []
    pos = _skip(text, 1)
    if text[pos : pos + 1] == b"]":
        return items
    while True:
        end = _value_end(text, pos)
        items.append(text[pos:end])
        if len(items) > max_items:
            raise OverflowError(f"more than {max_items} items")
        pos = _skip(text, end)
        if text[pos : pos + 1] == b"]":
            return items
        if text[pos : pos + 1] != b",":
            raise ScanError("',' or ']' expected in a list")
        pos = _skip(text, pos + 1)


def _skip(text: bytes, pos: int) -> int:
    match = _WS.match(text, pos)
    assert match is not None  # "*" always matches
    return match.end()


def _value_end(text: bytes, pos: int) -> int:
    """Where the value starting at ``pos`` ends (its inside is checked by the parser later)."""
    first = text[pos : pos + 1]
    if not first:
        raise ScanError("a value expected")
    if first[0] == _QUOTE:
        match = _STRING.match(text, pos)
        if match is None:
            raise ScanError("unterminated string")
        return match.end()
    if first[0] in _OPENERS:
        depth = 0
        for token in _TOKEN.finditer(text, pos):
            byte = text[token.start()]
            if byte == _QUOTE:
                continue
            depth += 1 if byte in _OPENERS else -1
            if depth == 0:
                return token.end()
            if depth < 0:
                break
        raise ScanError("unbalanced brackets")
    match = _SCALAR.match(text, pos)
    if match is None:
        raise ScanError("a value expected")
    return match.end()
